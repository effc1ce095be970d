/**
 * The count-based failure-rate policy: the ratio over the last `size` calls.
 *
 * @since 0.1.0
 */
import * as Check from "../internal/policyChecks.ts"
import type { PolicyProblem, Schema, TripCounter, TripPolicy } from "../TripPolicy.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface FailureRateOptions {
  /** Failure ratio in (0, 1] at which the breaker opens. */
  readonly threshold: number
  /** How many of the most recent calls are looked at. */
  readonly size: number
  /** No decision before this many calls were recorded (default: `size`). */
  readonly minimumCalls?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FailureRate extends TripPolicy {
  readonly _tag: "FailureRate"
  readonly threshold: number
  readonly size: number
  readonly minimumCalls: number
}

/**
 * Open when the failure ratio over the last `size` calls reaches `threshold`,
 * once at least `minimumCalls` calls were recorded. The ratio is checked after
 * every recorded call, success or failure.
 *
 * @since 0.1.0
 * @category constructors
 */
export const failureRate = (options: FailureRateOptions): FailureRate =>
  new FailureRatePolicy(options.threshold, options.size, options.minimumCalls ?? options.size)

class FailureRatePolicy implements FailureRate {
  readonly _tag = "FailureRate"
  readonly usesClock = false
  readonly threshold: number
  readonly size: number
  readonly minimumCalls: number
  constructor(threshold: number, size: number, minimumCalls: number) {
    this.threshold = threshold
    this.size = size
    this.minimumCalls = minimumCalls
  }
  check(): PolicyProblem | undefined {
    const { minimumCalls, size, threshold } = this
    return Check.first(
      Check.ratio("threshold", threshold),
      Check.integer("size", size, 1),
      Check.integer("minimumCalls", minimumCalls, 1),
      minimumCalls > size
        ? { option: "minimumCalls", value: minimumCalls, expected: `an integer between 1 and size (${size})` }
        : undefined
    )
  }
  counter(): TripCounter {
    const { minimumCalls, size, threshold } = this
    // A ring of the last `size` outcomes (1 = failure); `recorded` saturates at `size`.
    const ring = new Uint8Array(size)
    let next = 0
    let recorded = 0
    let failed = 0
    const push = (isFailure: 0 | 1) => {
      if (recorded === size) failed -= ring[next]!
      else recorded++
      ring[next] = isFailure
      failed += isFailure
      next = next + 1 === size ? 0 : next + 1
      return recorded >= minimumCalls && failed >= threshold * recorded
    }
    return {
      success: () => push(0),
      failure: () => push(1),
      // The ring needs no clearing: once `recorded` is back to 0 a slot is written before it is read again.
      reset: () => {
        next = 0
        recorded = 0
        failed = 0
      },
      failures: () => failed
    }
  }
}

/**
 * `policy: failureRate`: `threshold` (default 0.5), `size` (default 100),
 * `minimumCalls` (default `size`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const failureRateSchema: Schema = {
  name: "failureRate",
  tag: "FailureRate",
  keys: {
    threshold: { _tag: "Ratio", option: "threshold", default: 0.5 },
    size: { _tag: "Integer", option: "size", max: 1_000_000, default: 100 },
    minimumCalls: { _tag: "Integer", option: "minimumCalls", max: 1_000_000 }
  },
  make: (values) =>
    failureRate({
      threshold: values.threshold as number,
      size: values.size as number,
      minimumCalls: values.minimumCalls as number | undefined
    })
}
