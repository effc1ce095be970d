/**
 * The time-based failure-rate policy: the ratio over a sliding window of time.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Check from "../internal/policyChecks.ts"
import type { PolicyProblem, Schema, TripCounter, TripPolicy } from "../TripPolicy.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface FailureRateOverTimeOptions {
  /** Failure ratio in (0, 1] at which the breaker opens. */
  readonly threshold: number
  /** The sliding window (a `Duration.Input`: "1 minute", milliseconds, ...). */
  readonly window: Duration.Input
  /** No decision before this many calls fell inside the window. */
  readonly minimumCalls: number
  /** How many buckets divide the window (default 10); more is finer and larger. */
  readonly buckets?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FailureRateOverTime extends TripPolicy {
  readonly _tag: "FailureRateOverTime"
  readonly threshold: number
  /** The window in milliseconds (NaN when `window` is not a duration; the breaker refuses such a policy). */
  readonly windowMillis: number
  readonly minimumCalls: number
  readonly buckets: number
}

/**
 * Open when the failure ratio over the last `window` reaches `threshold`,
 * once at least `minimumCalls` calls fell inside the window. The ratio is
 * checked after every recorded call, success or failure. The window slides
 * bucket by bucket, so it spans between `window * (1 - 1/buckets)` and
 * `window`; the work per call does not grow with the window.
 *
 * @since 0.1.0
 * @category constructors
 */
export const failureRateOverTime = (options: FailureRateOverTimeOptions): FailureRateOverTime =>
  new FailureRateOverTimePolicy(
    options.threshold,
    Check.toMillis(options.window),
    options.minimumCalls,
    options.buckets ?? 10
  )

class FailureRateOverTimePolicy implements FailureRateOverTime {
  readonly _tag = "FailureRateOverTime"
  readonly usesClock = true
  readonly threshold: number
  readonly windowMillis: number
  readonly minimumCalls: number
  readonly buckets: number
  constructor(threshold: number, windowMillis: number, minimumCalls: number, buckets: number) {
    this.threshold = threshold
    this.windowMillis = windowMillis
    this.minimumCalls = minimumCalls
    this.buckets = buckets
  }
  check(): PolicyProblem | undefined {
    return Check.first(
      Check.ratio("threshold", this.threshold),
      Check.window("window", this.windowMillis),
      Check.integer("minimumCalls", this.minimumCalls, 1),
      Check.integer("buckets", this.buckets, 1),
      this.buckets > 1000
        ? { option: "buckets", value: this.buckets, expected: "an integer between 1 and 1000" }
        : undefined
    )
  }
  counter(): TripCounter {
    const { buckets: bucketCount, minimumCalls, threshold } = this
    const bucketMillis = this.windowMillis / bucketCount
    const calls = new Float64Array(bucketCount)
    const fails = new Float64Array(bucketCount)
    // The absolute index (floor(now / bucketMillis)) of the newest bucket in use.
    let head = -1
    let totalCalls = 0
    let totalFails = 0
    const advance = (now: number) => {
      const index = Math.floor(now / bucketMillis)
      if (index <= head) return
      // Clear the buckets that the new head reuses (at most all of them).
      for (let i = 0, stale = Math.min(index - head, bucketCount); i < stale; i++) {
        const slot = (index - i) % bucketCount
        totalCalls -= calls[slot]!
        totalFails -= fails[slot]!
        calls[slot] = 0
        fails[slot] = 0
      }
      head = index
    }
    const reset = () => {
      calls.fill(0)
      fails.fill(0)
      head = -1
      totalCalls = 0
      totalFails = 0
    }
    const record = (now: number, failed: 0 | 1) => {
      advance(now)
      const slot = head % bucketCount
      calls[slot]!++
      fails[slot]! += failed
      totalCalls++
      totalFails += failed
      return totalCalls >= minimumCalls && totalFails >= threshold * totalCalls
    }
    return {
      success: (now) => record(now, 0),
      failure: (now) => record(now, 1),
      reset,
      failures: (now) => {
        advance(now)
        return totalFails
      }
    }
  }
}

/**
 * `policy: failureRateOverTime`: `threshold` (default 0.5), `windowSeconds`
 * (default 60), `minimumCalls` (default 10), `buckets` (default 10).
 *
 * @since 0.1.0
 * @category schemas
 */
export const failureRateOverTimeSchema: Schema = {
  name: "failureRateOverTime",
  tag: "FailureRateOverTime",
  keys: {
    threshold: { _tag: "Ratio", option: "threshold", default: 0.5 },
    windowSeconds: { _tag: "Seconds", option: "window", default: Duration.seconds(60) },
    minimumCalls: { _tag: "Integer", option: "minimumCalls", max: 1_000_000, default: 10 },
    buckets: { _tag: "Integer", option: "buckets", max: 1000 }
  },
  make: (values) =>
    failureRateOverTime({
      threshold: values.threshold as number,
      window: values.windowSeconds as Duration.Duration,
      minimumCalls: values.minimumCalls as number,
      buckets: values.buckets as number | undefined
    })
}
