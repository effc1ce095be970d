/**
 * Publishing this replica's decisions: a local transition (a trip, a probe's
 * outcome, an admin action) goes through the `decide` script, which fences it
 * by epoch and answers the fleet's decision; a decision that cannot be
 * published (Redis down) leaves the circuit dirty, for reconciliation.
 *
 * @internal
 */
import { type CircuitBreaker, Remote } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import { adoptReply } from "./adopt.ts"
import * as Circuit from "./circuit.ts"
import { command, type Replica } from "./replica.ts"
import * as Scripts from "./scripts.ts"

/** Publishes a decision of this replica and adopts the fleet's answer; on failure the circuit is left dirty. */
export const publishDecision = (
  r: Replica,
  c: Circuit.Circuit,
  rule: Circuit.Rule,
  kind: Scripts.Answer["kind"],
  duration: number,
  openings: number
): Effect.Effect<void> =>
  command(
    r,
    "DECIDE",
    () =>
      r.client.eval(
        Scripts.decide,
        3,
        c.stateKey,
        c.leaseKey,
        c.countsKey,
        r.channel,
        rule,
        kind,
        Math.max(0, Math.round(duration)),
        openings,
        r.pod,
        c.breaker.name
      )
  ).pipe(
    Effect.flatMap(adoptReply(r)),
    Effect.catch((error) =>
      Effect.sync(() => {
        c.dirty = true
      }).pipe(
        Effect.andThen(Effect.logDebug("fleet_publish_failed")),
        Effect.annotateLogs({ group: r.group, pod: r.pod, circuit: c.breaker.name, error: error.message })
      )
    )
  )

/**
 * The breaker's local transitions (`Remote.observe` leaves out the decisions it adopted): publishes this
 * replica's own decisions. `applying` also skips the HALF_OPEN a won lease adopts (reported as `OpenElapsed`).
 */
export const onTransition = (r: Replica, c: Circuit.Circuit) => (transition: CircuitBreaker.Transition): void => {
  if (c.applying || r.closed) return
  if (!r.connected) {
    if (transition.reason !== "OpenElapsed") c.dirty = true
    return
  }
  switch (transition.reason) {
    case "Tripped":
    case "ProbeFailed": {
      const local = Remote.status(c.breaker)
      if (local.state === "Open") {
        r.run(publishDecision(r, c, "trip", "open", transition.retryAfterMillis, local.openings))
      }
      return
    }
    case "ProbesSucceeded":
      r.run(publishDecision(r, c, "probe", "closed", 0, 0))
      return
    case "ForcedOpen":
      r.run(publishDecision(r, c, "admin", "forced", 0, Circuit.openings(c)))
      return
    case "Disabled":
      r.run(publishDecision(r, c, "admin", "disabled", 0, 0))
      return
    case "Reset":
      r.run(publishDecision(r, c, "admin", "closed", 0, 0))
      return
    default:
      return
  }
}
