/**
 * The connection to the fleet: a heartbeat checks it (and publishes this
 * replica's view), a drop falls back to the local breakers, and a
 * reconnection reconciles each circuit with the stored state.
 *
 * @internal
 */
import { Remote } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import { adoptDecision } from "./adopt.ts"
import { unshareAll } from "./budget.ts"
import * as Circuit from "./circuit.ts"
import { publishDecision } from "./publish.ts"
import { command, type Replica } from "./replica.ts"
import * as Scripts from "./scripts.ts"
import * as Views from "./views.ts"

/** Reads the stored state, adopts it when newer, and publishes what this replica decided while apart. */
export const reconcile = (r: Replica, c: Circuit.Circuit): Effect.Effect<void> =>
  command(r, "READ", () => r.client.eval(Scripts.read, 1, c.stateKey, c.breaker.name)).pipe(
    Effect.flatMap((reply) =>
      Effect.suspend(() => {
        const stored = Scripts.parse(reply)
        const dirty = c.dirty
        c.dirty = false
        if (stored !== undefined && stored.epoch > c.epoch) adoptDecision(r, stored)
        if (!dirty) return Effect.void
        // Decided while apart: publish it; the script fences it against the stored state.
        const local = Remote.status(c.breaker)
        if (local.mode === "ForcedOpen") return publishDecision(r, c, "admin", "forced", 0, local.openings)
        if (local.mode === "Disabled") return publishDecision(r, c, "admin", "disabled", 0, 0)
        if (local.state === "Open") return publishDecision(r, c, "trip", "open", local.remainingMillis, local.openings)
        if (local.state === "Closed" && stored?.kind === "open" && stored.remaining === 0) {
          return publishDecision(r, c, "probe", "closed", 0, 0)
        }
        return Effect.void
      })
    ),
    Effect.catch(() => Effect.void)
  )

/** Records a change of connection: down, back to local breakers (one log line); up, reconciles every circuit. */
export const setConnected = (r: Replica, up: boolean): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (up === r.connected || r.closed) return Effect.void
    const { group, pod, service } = r
    r.connected = up
    r.gauge?.set({ service, group }, up ? 1 : 0)
    if (!up) {
      // Back to local budgets, and local breakers: no hold past the fleet's own period, no lease loop.
      unshareAll(r)
      for (const c of r.circuits.values()) {
        Circuit.stopLoop(c)
        const local = Remote.status(c.breaker)
        if (local.state === "Open" && local.mode === "Normal" && !Number.isNaN(c.fleetUntil)) {
          Circuit.adopt(c, {
            _tag: "Open",
            remainingMillis: Math.max(0, c.fleetUntil - r.now()),
            openings: local.openings
          })
        }
      }
      return Effect.logWarning("circuit_breaker_fleet_disconnected").pipe(
        Effect.annotateLogs({ service, group, pod, fallback: "local breakers" })
      )
    }
    return Effect.logInfo("circuit_breaker_fleet_connected").pipe(
      Effect.annotateLogs({ service, group, pod }),
      Effect.andThen(Effect.forEach(Array.from(r.circuits.values()), (c) => reconcile(r, c), { discard: true }))
    )
  })

/** Both connections ready and a PING answered within `timeout`. */
const healthy = (r: Replica): Effect.Effect<boolean> =>
  Effect.suspend(() =>
    r.subscriber.status !== "ready" || r.client.status !== "ready"
      ? Effect.succeed(false)
      : command(r, "PING", () => r.client.ping()).pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false)))
  )

/** Every `heartbeat`: checks the connection, then publishes this replica's view (for the board's fleet view). */
export const heartbeatLoop = (r: Replica): Effect.Effect<void> => {
  // Each replica's view of its circuits rides on the heartbeat (off the call path).
  const viewTtl = Math.max(3 * r.heartbeat + r.timeout, 2000)
  const publishView: Effect.Effect<void> = Effect.suspend(() =>
    r.connected
      ? command(r, "VIEW", () => Views.publish(r.client, r.prefix, r.pod, viewTtl, Views.localStates(r))).pipe(
        Effect.ignore
      )
      : Effect.void
  )
  return Effect.flatMap(healthy(r), (up) => setConnected(r, up)).pipe(
    Effect.andThen(publishView),
    Effect.andThen(Effect.sleep(r.heartbeat)),
    Effect.forever
  )
}
