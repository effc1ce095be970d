/**
 * Trip policies: when a CLOSED breaker opens.
 *
 * A policy is a small immutable value carrying its parameters; `counter()`
 * makes the mutable counter one breaker keeps. Pass one as the breaker's
 * `policy` option. Nothing here uses Effect, so the policies are tested
 * directly and cost no allocation per call. A policy of your own is any object
 * with a `_tag` of its own and a `counter()` function.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/**
 * The mutable counter a breaker keeps for its policy while CLOSED.
 *
 * @since 0.1.0
 * @category models
 */
export interface TripCounter {
  /**
   * Records a successful call; returns `true` when the breaker must open (a rate
   * policy decides on every recorded outcome). `void` reads as `false`.
   */
  success(now: number): boolean | void
  /** Records a counted failure; returns `true` when the breaker must open. */
  failure(now: number): boolean
  /** Forgets everything (the breaker closed or was reset). */
  reset(): void
  /** The failures the policy currently holds against the dependency. */
  failures(now: number): number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TripPolicy {
  /** `Consecutive`, `FailureRate` and `FailureRateOverTime` are the built-in ones; give yours a tag of its own. */
  readonly _tag: string
  /** Whether the counter needs the current time (the breaker reads the Clock only then). */
  readonly usesClock: boolean
  /** Makes the counter of one breaker. */
  counter(): TripCounter
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Consecutive extends TripPolicy {
  readonly _tag: "Consecutive"
  readonly failMax: number
}

/**
 * The Orchestrator Dynamic policy (pybreaker's): open after `failMax`
 * consecutive counted failures; a success starts the count again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const consecutive = (failMax: number): Consecutive => ({
  _tag: "Consecutive",
  failMax,
  usesClock: false,
  counter: () => new ConsecutiveCounter(failMax)
})

// A class, not closures: one small object per breaker.
class ConsecutiveCounter implements TripCounter {
  readonly failMax: number
  count = 0
  constructor(failMax: number) {
    this.failMax = failMax
  }
  success() {
    this.count = 0
    return false
  }
  failure() {
    return ++this.count >= this.failMax
  }
  reset() {
    this.count = 0
  }
  failures() {
    return this.count
  }
}

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
export const failureRate = (options: FailureRateOptions): FailureRate => {
  const { size, threshold } = options
  const minimumCalls = options.minimumCalls ?? size
  return {
    _tag: "FailureRate",
    threshold,
    size,
    minimumCalls,
    usesClock: false,
    counter: () => {
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
}

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
export const failureRateOverTime = (options: FailureRateOverTimeOptions): FailureRateOverTime => {
  const { minimumCalls, threshold } = options
  const windowMillis = toMillis(options.window)
  const bucketCount = options.buckets ?? 10
  const bucketMillis = windowMillis / bucketCount
  return {
    _tag: "FailureRateOverTime",
    threshold,
    windowMillis,
    minimumCalls,
    buckets: bucketCount,
    usesClock: true,
    counter: () => {
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
}

const toMillis = (input: Duration.Input): number => {
  const decoded = Duration.fromInput(input)
  return Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
}
