/**
 * The readers' side of a breaker: its state, snapshot and totals read
 * synchronously (`breaker.view`, and `breaker.state` / `breaker.snapshot`
 * through `Effect.sync`). Reading never admits or settles a call.
 *
 * @internal
 */
import type { Listener, Snapshot, State, Totals, View } from "../CircuitBreaker.ts"
import type { BreakerImpl } from "./breaker.ts"
import * as Machine from "./machine.ts"

/** The current state; an elapsed open period is ended first, so it reads (and moves to) HALF_OPEN. @internal */
export const currentState = (breaker: BreakerImpl): State => {
  const phase = breaker.phase.current
  if (phase._tag === "Open") Machine.expire(breaker.machine, phase.generation, breaker.now())
  return breaker.phase.current._tag
}

/** @internal */
export const totals = (breaker: BreakerImpl): Totals => ({
  successes: breaker.successes,
  failures: breaker.failures,
  slow: breaker.slow,
  ignored: breaker.ignored,
  rejected: breaker.rejected,
  trips: breaker.trips
})

/** The state and counts now; an elapsed open period is ended first. @internal */
export const takeSnapshot = (breaker: BreakerImpl): Snapshot => {
  const at = breaker.now()
  Machine.expire(breaker.machine, breaker.phase.current.generation, at)
  const phase = breaker.phase.current
  return {
    name: breaker.name,
    state: phase._tag,
    mode: phase.mode,
    failureMode: breaker.failureMode,
    failures: Machine.failures(breaker.machine, at),
    retryAfterMillis: Machine.retryAfter(breaker.machine, at),
    since: phase.since,
    totals: totals(breaker),
    lastError: breaker.lastErrorMessage()
  }
}

/** `breaker.view`: made on a breaker's first read, a class so its methods live once on the prototype. @internal */
export class ViewImpl implements View {
  readonly breaker: BreakerImpl
  constructor(breaker: BreakerImpl) {
    this.breaker = breaker
  }
  state(): State {
    return currentState(this.breaker)
  }
  snapshot(): Snapshot {
    return takeSnapshot(this.breaker)
  }
  totals(): Totals {
    return totals(this.breaker)
  }
  subscribe(listener: Listener): void {
    this.breaker.subscribe(listener)
  }
  unsubscribe(listener: Listener): void {
    this.breaker.unsubscribe(listener)
  }
}
