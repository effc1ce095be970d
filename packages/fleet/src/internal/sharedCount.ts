/**
 * The shared count (`Fleet.Options.shareCounts`): each replica reads the
 * count of each breaker whose policy offers one (`TripPolicy.shareableCount`:
 * the consecutive policy's) off the call path and reports changes; the `count`
 * script trips the fleet when the sum reaches the policy's `shareableCount`.
 *
 * @internal
 */
import { Remote } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import { adoptReply } from "./adopt.ts"
import type * as Circuit from "./circuit.ts"
import { command, type Replica } from "./replica.ts"
import * as Scripts from "./scripts.ts"

/** Reports one circuit's count when it changed (a CLOSED breaker whose policy has a `shareableCount` only). */
const report = (r: Replica, c: Circuit.Circuit): Effect.Effect<void> => {
  const count = Remote.sharedCount(c.breaker)
  if (count === undefined) {
    c.reported = 0
    return Effect.void
  }
  const { failMax: threshold, failures, firstOpenMillis: duration } = count
  if (failures === c.reported) return Effect.void
  c.reported = failures
  return command(
    r,
    "COUNT",
    () =>
      r.client.eval(
        Scripts.count,
        3,
        c.stateKey,
        c.leaseKey,
        c.countsKey,
        r.channel,
        r.pod,
        failures,
        threshold,
        duration,
        c.breaker.name,
        Math.max(10 * r.countInterval, 1000)
      )
  ).pipe(Effect.flatMap(adoptReply(r)), Effect.ignore)
}

/** Every `countInterval` while connected: reports each circuit's count. */
export const countLoop = (r: Replica): Effect.Effect<void> =>
  Effect.suspend(() =>
    r.connected ? Effect.forEach(Array.from(r.circuits.values()), (c) => report(r, c), { discard: true }) : Effect.void
  ).pipe(Effect.andThen(Effect.sleep(r.countInterval)), Effect.forever)
