/**
 * The sliding-window count policy: `failures` failures within the last `window`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Check from "../internal/policyChecks.ts"
import type { PolicyProblem, Schema, TripCounter, TripPolicy } from "../TripPolicy.ts"

/** Bounds the counter's memory: 8 bytes a failure. */
const MAX_FAILURES = 10_000

/**
 * @since 0.1.0
 * @category models
 */
export interface FailuresInWindowOptions {
  /** Counted failures within `window` that open the breaker (1 to 10,000). */
  readonly failures: number
  /** How far back a failure counts (a `Duration.Input`: "60 seconds", milliseconds, ...). */
  readonly window: Duration.Input
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FailuresInWindow extends TripPolicy {
  readonly _tag: "FailuresInWindow"
  readonly failures: number
  /** The window in milliseconds (NaN when `window` is not a duration; the breaker refuses such a policy). */
  readonly windowMillis: number
}

/**
 * Open when `failures` counted failures happened within the last `window`
 * (by the breaker's `Clock`): a failure `window` old or older no longer
 * counts. A success forgets nothing (failures leave the count only by
 * ageing out); the count starts again when the breaker closes or is reset.
 * Exact, not bucketed: the counter keeps the times of the last `failures`
 * failures, so a call costs the same whatever the window.
 *
 * **Example**
 *
 * ```ts
 * import { CircuitBreaker, TripPolicy } from "@neural-hive/resilience"
 *
 * const breaker = CircuitBreaker.make({
 *   name: "payments_api",
 *   policy: TripPolicy.failuresInWindow({ failures: 5, window: "60 seconds" })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const failuresInWindow = (options: FailuresInWindowOptions): FailuresInWindow =>
  new FailuresInWindowPolicy(options.failures, Check.toMillis(options.window))

class FailuresInWindowPolicy implements FailuresInWindow {
  readonly _tag = "FailuresInWindow"
  readonly usesClock = true
  readonly failures: number
  readonly windowMillis: number
  constructor(failures: number, windowMillis: number) {
    this.failures = failures
    this.windowMillis = windowMillis
  }
  check(): PolicyProblem | undefined {
    return Check.first(
      Check.integer("failures", this.failures, 1, MAX_FAILURES),
      Check.window("window", this.windowMillis)
    )
  }
  counter(): TripCounter {
    return new FailuresInWindowCounter(this.failures, this.windowMillis)
  }
}

// The times of the last `max` failures, in a ring; `next` is the oldest once the ring is full.
class FailuresInWindowCounter implements TripCounter {
  readonly times: Float64Array
  readonly max: number
  readonly windowMillis: number
  next = 0
  recorded = 0
  constructor(max: number, windowMillis: number) {
    this.times = new Float64Array(max)
    this.max = max
    this.windowMillis = windowMillis
  }
  success() {
    return false
  }
  failure(now: number) {
    this.times[this.next] = now
    this.next = this.next + 1 === this.max ? 0 : this.next + 1
    if (this.recorded < this.max) this.recorded++
    // Full: the oldest of the last `max` failures decides.
    return this.recorded === this.max && now - this.times[this.next]! < this.windowMillis
  }
  reset() {
    this.next = 0
    this.recorded = 0
  }
  failures(now: number) {
    let inside = 0
    for (let i = 0; i < this.recorded; i++) if (now - this.times[i]! < this.windowMillis) inside++
    return inside
  }
}

/**
 * `policy: failuresInWindow`: `failures` (default 5) and `windowSeconds`
 * (default 60).
 *
 * @since 0.1.0
 * @category schemas
 */
export const failuresInWindowSchema: Schema = {
  name: "failuresInWindow",
  tag: "FailuresInWindow",
  keys: {
    failures: { _tag: "Integer", option: "failures", max: MAX_FAILURES, default: 5 },
    windowSeconds: { _tag: "Seconds", option: "window", default: Duration.seconds(60) }
  },
  make: (values) =>
    failuresInWindow({ failures: values.failures as number, window: values.windowSeconds as Duration.Duration })
}
