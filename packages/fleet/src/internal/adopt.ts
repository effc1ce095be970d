/**
 * Adopting the fleet's decisions: a decision newer than what this replica knows
 * (fencing by epoch) is applied to the local breaker; at the end of a fleet
 * open period one replica wins the probe lease and probes while the others
 * hold, and the winner renews its lease while its probe runs.
 *
 * @internal
 */
import { Remote } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Circuit from "./circuit.ts"
import { command, type Replica } from "./replica.ts"
import * as Scripts from "./scripts.ts"

/** Adopts `answer` when it is newer than what this replica knows (fencing by epoch). */
export const adoptDecision = (r: Replica, answer: Scripts.Answer): void => {
  const c = r.circuits.get(answer.circuit)
  if (c === undefined || answer.epoch <= c.epoch || r.closed) return
  c.epoch = answer.epoch
  Circuit.stopLoop(c)
  switch (answer.kind) {
    case "open": {
      c.fleetUntil = r.now() + answer.remaining
      // Held past the fleet's period while this replica asks for the lease; the lease decides who probes.
      Circuit.adopt(c, { _tag: "Open", remainingMillis: answer.remaining + r.hold, openings: answer.openings })
      c.loop = r.run(Effect.andThen(Effect.sleep(answer.remaining), leaseLoop(r, c, answer.epoch)))
      return
    }
    case "closed":
      c.fleetUntil = NaN
      Circuit.adopt(c, { _tag: "Closed" })
      return
    case "forced":
      c.fleetUntil = NaN
      Circuit.adopt(c, { _tag: "ForcedOpen" })
      return
    case "disabled":
      c.fleetUntil = NaN
      Circuit.adopt(c, { _tag: "Disabled" })
      return
  }
}

/** Adopts a script's reply when it carries a decision. */
export const adoptReply = (r: Replica) => (reply: unknown): Effect.Effect<void> =>
  Effect.sync(() => {
    const answer = Scripts.parse(reply)
    if (answer !== undefined) adoptDecision(r, answer)
  })

/** At the end of the open period: one replica wins the lease and probes; the others hold until the outcome. */
const leaseLoop = (r: Replica, c: Circuit.Circuit, epoch: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    // Only a breaker holding the fleet's opening asks for the probe (not one forced open or disabled here).
    const local = Remote.status(c.breaker)
    if (c.epoch !== epoch || !r.connected || local.state !== "Open" || local.mode !== "Normal") return Effect.void
    const holder = `${r.pod}:${epoch}`
    return command(r, "SET", () => r.client.set(c.leaseKey, holder, "PX", r.lease, "NX")).pipe(
      Effect.flatMap((won) => {
        if (c.epoch !== epoch) return Effect.void
        if (won === "OK") {
          Circuit.adopt(c, { _tag: "HalfOpen" })
          return renewLoop(r, c, epoch, holder, r.now())
        }
        return command(r, "PTTL", () => r.client.pttl(c.leaseKey)).pipe(
          Effect.flatMap((ttl) => {
            if (c.epoch !== epoch) return Effect.void
            const wait = Math.max(ttl, 50)
            Circuit.adopt(c, { _tag: "Open", remainingMillis: wait + r.hold, openings: Circuit.openings(c) })
            return Effect.andThen(Effect.sleep(wait), leaseLoop(r, c, epoch))
          })
        )
      }),
      // Redis failed: the hold runs out and the breaker probes locally; the heartbeat reports the outage.
      Effect.ignore
    )
  })

/** Renews the lease while this replica's probe runs; an idle winner gives the turn back. */
const renewLoop = (
  r: Replica,
  c: Circuit.Circuit,
  epoch: number,
  holder: string,
  since: number
): Effect.Effect<void> =>
  Effect.andThen(
    Effect.sleep(Math.max(Math.floor(r.lease / 3), 10)),
    Effect.suspend(() => {
      const status = Remote.status(c.breaker)
      if (c.epoch !== epoch || status.state !== "HalfOpen") return Effect.void
      const idle = status.permitsHeld === 0 && r.now() - since >= r.lease
      if (idle) {
        // No call and no probe took the permit for a whole lease: hold again and let another replica try.
        Circuit.adopt(c, { _tag: "Open", remainingMillis: r.lease + r.hold, openings: status.openings })
        return Effect.andThen(Effect.sleep(r.lease), leaseLoop(r, c, epoch))
      }
      return command(r, "RENEW", () => r.client.eval(Scripts.renew, 1, c.leaseKey, holder, r.lease)).pipe(
        Effect.flatMap((renewed) => renewed === 1 ? renewLoop(r, c, epoch, holder, since) : Effect.void),
        Effect.ignore
      )
    })
  )
