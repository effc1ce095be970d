/**
 * The board's recent history, kept in memory by the process that serves it.
 *
 * Per circuit, a ring of `BUCKETS` buckets of `BUCKET_MILLIS` each (five
 * minutes): the calls of each outcome and a small fixed latency histogram.
 * `record` runs on the call path (from the breaker's `onCall` listener): it
 * picks the bucket from the Clock's milliseconds and increments two counters,
 * with no allocation; a bucket whose time has passed is zeroed when it is
 * reused. `summary` reads the ring at most once a second, off the call path.
 *
 * Beside it, a ring of the service's last transitions with their reason and
 * who caused them (a trip, a probe, an operator, another replica).
 *
 * @internal
 */
import type { CircuitBreaker } from "@neural-hive/resilience"
import { reasonLabel, type StateLabel, stateLabel } from "./labels.ts"

/** The width of one bucket. @internal */
export const BUCKET_MILLIS = 5_000

/** The buckets of the ring: five minutes. @internal */
export const BUCKETS = 60

/** The latency histogram's upper bounds in milliseconds (a last bucket holds everything slower). @internal */
export const LATENCY_BOUNDS: ReadonlyArray<number> = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]

/** The outcomes counted, in the order of a bucket's first counters. @internal */
export const OUTCOMES = ["success", "failure", "slow", "ignored", "rejected"] as const satisfies ReadonlyArray<
  CircuitBreaker.CallOutcome
>

const SUCCESS = 0
const FAILURE = 1
const SLOW = 2
const IGNORED = 3
const REJECTED = 4
const LATENCY = OUTCOMES.length
const WIDTH = LATENCY + LATENCY_BOUNDS.length + 1
/** The buckets the latency percentiles read: the last minute. */
const LATENCY_BUCKETS = Math.ceil(60_000 / BUCKET_MILLIS)
/** The buckets of the current rate: the last ten seconds at least. */
const RATE_BUCKETS = Math.ceil(10_000 / BUCKET_MILLIS)

/**
 * What the board shows of one circuit's recent calls.
 *
 * @internal
 */
export interface CircuitStats {
  /** Calls per second (every outcome, rejections included) per bucket, oldest first; the last is the bucket so far. */
  readonly rate: ReadonlyArray<number>
  /** Error % per bucket (failures and slow calls over the calls that ran), `null` where no call ran. */
  readonly errors: ReadonlyArray<number | null>
  /** Calls per second over the last ten seconds or so. */
  readonly callsPerSecond: number
  /** Error % over the same span, `null` when no call ran. */
  readonly errorPercent: number | null
  /** Latency percentiles in milliseconds over the last minute (from the histogram), `null` before any timed call. */
  readonly p50: number | null
  readonly p99: number | null
  /** Calls per outcome over the whole ring (five minutes). */
  readonly outcomes: Readonly<Record<(typeof OUTCOMES)[number], number>>
}

/** The ring of one circuit. @internal */
export class CircuitHistory {
  /** `BUCKETS` rows of `WIDTH` counters: the outcomes, then the latency histogram. */
  readonly counts = new Uint32Array(BUCKETS * WIDTH)
  /** The bucket number (`floor(millis / BUCKET_MILLIS)`) each row holds; -1: never used. */
  readonly numbers = new Float64Array(BUCKETS).fill(-1)

  /** On the call path: two increments, no allocation. */
  record(outcome: CircuitBreaker.CallOutcome, durationMillis: number, now: number): void {
    const base = this.row(Math.floor(now / BUCKET_MILLIS))
    const counts = this.counts
    switch (outcome) {
      case "success":
        counts[base + SUCCESS]!++
        break
      case "failure":
        counts[base + FAILURE]!++
        break
      case "slow":
        counts[base + SLOW]!++
        break
      case "ignored":
        counts[base + IGNORED]!++
        break
      case "rejected":
        counts[base + REJECTED]!++
        // A rejection ran nothing: no latency.
        return
    }
    // A call admitted before the listener was not timed (NaN).
    if (!(durationMillis >= 0)) return
    let i = 0
    while (i < LATENCY_BOUNDS.length && durationMillis > LATENCY_BOUNDS[i]!) i++
    counts[base + LATENCY + i]!++
  }

  /** The first counter of bucket `number`'s row, zeroed first when the row held an older bucket. */
  private row(number: number): number {
    const slot = number % BUCKETS
    const base = slot * WIDTH
    if (this.numbers[slot] !== number) {
      this.counts.fill(0, base, base + WIDTH)
      this.numbers[slot] = number
    }
    return base
  }

  /** The row of bucket `number`, or -1 when the ring no longer (or not yet) holds it. */
  private rowOf(number: number): number {
    const slot = number % BUCKETS
    return this.numbers[slot] === number ? slot * WIDTH : -1
  }

  /** The history at `now`, or `undefined` when no call at all fell in the ring's five minutes. */
  summary(now: number): CircuitStats | undefined {
    const current = Math.floor(now / BUCKET_MILLIS)
    const counts = this.counts
    const rate: Array<number> = []
    const errors: Array<number | null> = []
    const outcomes = { success: 0, failure: 0, slow: 0, ignored: 0, rejected: 0 }
    const latency = new Float64Array(LATENCY_BOUNDS.length + 1)
    let recentCalls = 0
    let recentRan = 0
    let recentErrors = 0
    let recentMillis = 0
    for (let number = current - BUCKETS + 1; number <= current; number++) {
      const base = this.rowOf(number)
      // The bucket so far is divided by the time it has run (at least a second, so one call is not 200/s).
      const millis = number === current ? Math.max(1000, now - current * BUCKET_MILLIS) : BUCKET_MILLIS
      if (base === -1) {
        rate.push(0)
        errors.push(null)
        if (current - number < RATE_BUCKETS) recentMillis += millis
        continue
      }
      const success = counts[base + SUCCESS]!
      const failure = counts[base + FAILURE]!
      const slow = counts[base + SLOW]!
      const ignored = counts[base + IGNORED]!
      const rejected = counts[base + REJECTED]!
      outcomes.success += success
      outcomes.failure += failure
      outcomes.slow += slow
      outcomes.ignored += ignored
      outcomes.rejected += rejected
      const calls = success + failure + slow + ignored + rejected
      const ran = success + failure + slow
      rate.push(round(calls / (millis / 1000)))
      errors.push(ran === 0 ? null : round((100 * (failure + slow)) / ran))
      if (current - number < RATE_BUCKETS) {
        recentCalls += calls
        recentRan += ran
        recentErrors += failure + slow
        recentMillis += millis
      }
      if (current - number < LATENCY_BUCKETS) {
        for (let i = 0; i < latency.length; i++) latency[i]! += counts[base + LATENCY + i]!
      }
    }
    const total = outcomes.success + outcomes.failure + outcomes.slow + outcomes.ignored + outcomes.rejected
    if (total === 0) return undefined
    return {
      rate,
      errors,
      callsPerSecond: round(recentCalls / (recentMillis / 1000)),
      errorPercent: recentRan === 0 ? null : round((100 * recentErrors) / recentRan),
      p50: quantile(latency, 0.5),
      p99: quantile(latency, 0.99),
      outcomes
    }
  }
}

/**
 * The `q` quantile of a histogram with `LATENCY_BOUNDS`, interpolated inside its bucket as Prometheus's
 * `histogram_quantile` does; the last bound for the open-ended bucket; `null` when it is empty.
 *
 * @internal
 */
export const quantile = (counts: ArrayLike<number>, q: number): number | null => {
  let total = 0
  for (let i = 0; i < counts.length; i++) total += counts[i]!
  if (total === 0) return null
  const rank = q * total
  let seen = 0
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i]!
    if (count > 0 && seen + count >= rank) {
      if (i >= LATENCY_BOUNDS.length) return LATENCY_BOUNDS[LATENCY_BOUNDS.length - 1]!
      const lower = i === 0 ? 0 : LATENCY_BOUNDS[i - 1]!
      return round(lower + (LATENCY_BOUNDS[i]! - lower) * ((rank - seen) / count))
    }
    seen += count
  }
  return LATENCY_BOUNDS[LATENCY_BOUNDS.length - 1]!
}

const round = (n: number): number => Math.round(n * 100) / 100

// -----------------------------------------------------------------------------
// timeline
// -----------------------------------------------------------------------------

/**
 * Who caused a transition: the trip policy (`trip`), a probe or the end of the
 * open period (`probe`), an operator through the admin routes (`admin`), or
 * another replica of the fleet (`remote`).
 *
 * @internal
 */
export type Cause = "trip" | "probe" | "admin" | "remote"

/** @internal */
export const causeOf: Record<CircuitBreaker.Transition["reason"], Cause> = {
  Tripped: "trip",
  ProbeFailed: "probe",
  OpenElapsed: "probe",
  ProbesSucceeded: "probe",
  ForcedOpen: "admin",
  Disabled: "admin",
  Reset: "admin",
  Remote: "remote"
}

/**
 * One line of the timeline.
 *
 * @internal
 */
export interface TimelineEntry {
  readonly circuit: string
  readonly from: StateLabel
  readonly to: StateLabel
  readonly reason: string
  readonly by: Cause
  /** ISO 8601, UTC. */
  readonly at: string
}

/** @internal */
export const timelineEntry = (transition: CircuitBreaker.Transition): TimelineEntry => ({
  circuit: transition.circuit,
  from: stateLabel[transition.from],
  to: stateLabel[transition.to],
  reason: reasonLabel[transition.reason],
  by: causeOf[transition.reason],
  at: new Date(transition.at).toISOString()
})

/** The last `size` transitions of every circuit, oldest first. @internal */
export class Timeline {
  private readonly items: Array<TimelineEntry> = []
  readonly size: number
  constructor(size: number) {
    this.size = size
  }
  push(entry: TimelineEntry): void {
    this.items.push(entry)
    if (this.items.length > this.size) this.items.shift()
  }
  entries(): ReadonlyArray<TimelineEntry> {
    return this.items.slice()
  }
}
