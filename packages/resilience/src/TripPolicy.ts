/**
 * Trip policies: when a CLOSED breaker opens.
 *
 * A policy is a small immutable description; `counter()` makes the mutable
 * counter one breaker keeps. Nothing here uses Effect, so the policies are
 * tested directly and cost no allocation per call.
 *
 * @since 0.1.0
 */

/**
 * The mutable counter a breaker keeps for its policy while CLOSED.
 *
 * @since 0.1.0
 * @category models
 */
export interface TripCounter {
  /** Records a successful call. */
  success(now: number): void
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
  readonly _tag: "Consecutive" | "FailureRate" | "FailureRateOverTime"
  /** Whether the counter needs the current time (the breaker reads the Clock only then). */
  readonly usesClock: boolean
  /** Makes the counter of one breaker. */
  counter(): TripCounter
}

/**
 * The seed's policy: open after `failMax` consecutive counted failures; a success
 * starts the count again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const consecutive = (failMax: number): TripPolicy => ({
  _tag: "Consecutive",
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
 * Open when the failure ratio over the last `size` calls reaches `threshold`,
 * once at least `minimumCalls` calls were recorded.
 *
 * @since 0.1.0
 * @category constructors
 */
export const failureRate = (options: FailureRateOptions): TripPolicy => {
  const { size, threshold } = options
  const minimumCalls = options.minimumCalls ?? size
  return {
    _tag: "FailureRate",
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
      }
      return {
        success: () => push(0),
        failure: () => {
          push(1)
          return recorded >= minimumCalls && failed >= threshold * recorded
        },
        reset: () => {
          ring.fill(0)
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
  /** The sliding window, in milliseconds. */
  readonly windowMillis: number
  /** No decision before this many calls fell inside the window. */
  readonly minimumCalls: number
  /** How many buckets divide the window (default 10); more is finer and larger. */
  readonly buckets?: number | undefined
}

/**
 * Open when the failure ratio over the last `windowMillis` reaches `threshold`,
 * once at least `minimumCalls` calls fell inside the window. The window slides
 * bucket by bucket, so it spans between `windowMillis * (1 - 1/buckets)` and
 * `windowMillis`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const failureRateOverTime = (options: FailureRateOverTimeOptions): TripPolicy => {
  const { minimumCalls, threshold, windowMillis } = options
  const bucketCount = options.buckets ?? 10
  const bucketMillis = windowMillis / bucketCount
  return {
    _tag: "FailureRateOverTime",
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
        // Clear the buckets that the new head reuses (at most all of them); fresh counters are already zero.
        if (head >= 0) {
          for (let i = 0, stale = Math.min(index - head, bucketCount); i < stale; i++) {
            const slot = (index - i) % bucketCount
            totalCalls -= calls[slot]!
            totalFails -= fails[slot]!
            calls[slot] = 0
            fails[slot] = 0
          }
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
      return {
        success: (now) => {
          advance(now)
          calls[head % bucketCount]!++
          totalCalls++
        },
        failure: (now) => {
          advance(now)
          const slot = head % bucketCount
          calls[slot]!++
          fails[slot]!++
          totalCalls++
          totalFails++
          return totalCalls >= minimumCalls && totalFails >= threshold * totalCalls
        },
        reset,
        failures: (now) => {
          advance(now)
          return totalFails
        }
      }
    }
  }
}
