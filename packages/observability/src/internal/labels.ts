/**
 * How breaker states and modes are written in labels, logs, spans and `/health`.
 *
 * @internal
 */
import type { CircuitBreaker } from "@neural-hive/resilience"
import type { BreakerStatus } from "../Http.ts"

/** @internal */
export type StateLabel = "closed" | "open" | "half_open"

/** @internal */
export const stateLabel: Record<CircuitBreaker.State, StateLabel> = {
  Closed: "closed",
  Open: "open",
  HalfOpen: "half_open"
}

/** The gauge encoding fixed by the Orchestrator Dynamic's metrics: CLOSED 0, OPEN 1, HALF_OPEN 2. @internal */
export const stateValue: Record<CircuitBreaker.State, 0 | 1 | 2> = {
  Closed: 0,
  Open: 1,
  HalfOpen: 2
}

/** @internal */
export type ModeLabel = "normal" | "forced_open" | "disabled"

/** @internal */
export const modeLabel: Record<CircuitBreaker.Mode, ModeLabel> = {
  Normal: "normal",
  ForcedOpen: "forced_open",
  Disabled: "disabled"
}

/** A snapshot in label form: the part `/health` and the board share (`Http.BreakerStatus`). @internal */
export const breakerStatus = (snapshot: CircuitBreaker.Snapshot): BreakerStatus => ({
  name: snapshot.name,
  state: stateLabel[snapshot.state],
  mode: modeLabel[snapshot.mode],
  failureMode: snapshot.failureMode,
  failures: snapshot.failures,
  trips: snapshot.totals.trips
})

/** Milliseconds to seconds; `null` for the unbounded wait of a forced-open breaker. @internal */
export const seconds = (millis: number): number | null => Number.isFinite(millis) ? millis / 1000 : null

/** A transition's reason as logs and the board show it (snake case, as the Python service's events). @internal */
export const reasonLabel: Record<CircuitBreaker.Transition["reason"], string> = {
  Tripped: "tripped",
  ProbeFailed: "probe_failed",
  OpenElapsed: "open_elapsed",
  ProbesSucceeded: "probes_succeeded",
  ForcedOpen: "forced_open",
  Disabled: "disabled",
  Reset: "reset",
  Remote: "remote"
}
