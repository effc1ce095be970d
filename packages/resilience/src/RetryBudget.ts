/**
 * Retries that cannot multiply an outage. A `RetryBudget` lets a circuit's
 * retries be at most `ratio` of its calls over a sliding `window`, plus a small
 * reserve (`minPerSecond`) so that a quiet circuit can still retry. `withRetry`
 * retries an effect through an Effect `Schedule` (jittered exponential by
 * default), only for errors its `isRetryable` accepts, never while the
 * circuit's breaker is not CLOSED, and only while the budget has room: during a
 * full outage the dependency sees at most `1 + ratio` times the offered calls
 * (plus the reserve) instead of `1 + maxRetries` times.
 *
 * The window's counts are kept in ten buckets; time comes from `Clock`, so
 * `TestClock` drives both the window and the schedule's delays.
 *
 * **Example**
 *
 * ```ts
 * import { CircuitBreaker, RetryBudget, withBreaker } from "@neural-hive/resilience"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "redis_client", failMax: 5 })
 *   const budget = yield* RetryBudget.make({ name: "redis_client", ratio: 0.1 })
 *   const get = Effect.succeed("value").pipe(withBreaker(breaker))
 *   return yield* get.pipe(RetryBudget.withRetry({ budget, breaker, maxRetries: 2 }))
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type { CircuitBreaker } from "./CircuitBreaker.ts"
import { CircuitBreakerError, CircuitBreakerOptionsError } from "./CircuitBreakerError.ts"
import * as BudgetShare from "./internal/budgetShare.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The circuit's name, as in metrics and errors. */
  readonly name: string
  /** Retries allowed per call over the window, between 0 and 1. Default 0.1 (retries ≤ 10 % of calls). */
  readonly ratio?: number | undefined
  /**
   * Retries allowed per second of the window whatever the calls (the reserve). Default 1. Shared by a
   * fleet (`@neural-hive/fleet`), it is the fleet's reserve, not each replica's.
   */
  readonly minPerSecond?: number | undefined
  /** How far back calls and retries count. Default 10 seconds. */
  readonly window?: Duration.Input | undefined
}

/**
 * What the budget counted over its window, and since it was made.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Calls in the window. */
  readonly calls: number
  /** Retries in the window. */
  readonly retries: number
  /** Retries the budget allows now (0 when exhausted). */
  readonly available: number
  /** Retries refused for want of budget, since it was made. */
  readonly denied: number
  /** Calls counted since it was made. */
  readonly callsTotal: number
  /** Retries granted since it was made (hedges taken from the budget included). */
  readonly retriesTotal: number
  /**
   * The other replicas' calls and retries in their windows, which `available` counts too: a fleet-wide
   * budget (`@neural-hive/fleet` shares them through Redis). `undefined` while the budget counts alone.
   */
  readonly shared?: { readonly calls: number; readonly retries: number; readonly replicas: number } | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RetryBudget {
  readonly name: string
  /** Counts one call (not its retries): each call adds `ratio` of a retry to the budget. */
  readonly recordCall: Effect.Effect<void>
  /** Takes one retry from the budget: `true` when there was room (the retry is counted), `false` when not. */
  readonly tryRetry: Effect.Effect<boolean>
  /** The counts as of the last call or retry (a synchronous read, for metrics and health). */
  readonly stats: () => Stats
}

const BUCKETS = 10

const granted = Effect.succeed(true)
const refused = Effect.succeed(false)

/**
 * The message of the warning a budget logs when it refuses a retry: once per window while it stays
 * exhausted (annotations `circuit`, `calls` and `retries` in the window, `denied` since the last line,
 * `ratio`, `minPerSecond`, `windowSeconds`).
 *
 * @since 0.1.0
 * @category constants
 */
export const EXHAUSTED = "retry_budget_exhausted"

const validated = (o: Options) => {
  const circuit = typeof o?.name === "string" ? o.name : "?"
  const bad = (option: string, value: unknown, expected: string) =>
    Effect.fail(new CircuitBreakerOptionsError({ circuit, option, value, expected }))
  if (typeof o?.name !== "string" || o.name.trim() === "") return bad("name", o?.name, "a non-empty circuit name")
  const ratio = o.ratio ?? 0.1
  if (typeof ratio !== "number" || !(ratio >= 0 && ratio <= 1)) return bad("ratio", o.ratio, "a number from 0 to 1")
  const minPerSecond = o.minPerSecond ?? 1
  if (typeof minPerSecond !== "number" || !(minPerSecond >= 0 && Number.isFinite(minPerSecond))) {
    return bad("minPerSecond", o.minPerSecond, "a finite number of at least 0")
  }
  const window = o.window === undefined ? Option.some(Duration.seconds(10)) : Duration.fromInput(o.window)
  if (Option.isNone(window) || !Duration.isFinite(window.value) || Duration.toMillis(window.value) < BUCKETS) {
    return bad("window", o.window, `a finite duration of at least ${BUCKETS} ms, e.g. "10 seconds"`)
  }
  return Effect.succeed({ ratio, minPerSecond, windowMillis: Duration.toMillis(window.value) })
}

/**
 * Makes a retry budget; a bad option is a `CircuitBreakerOptionsError` naming it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (o: Options): Effect.Effect<RetryBudget, CircuitBreakerOptionsError> =>
  Effect.map(validated(o), ({ minPerSecond, ratio, windowMillis }) => {
    const bucketMillis = windowMillis / BUCKETS
    const reserve = minPerSecond * windowMillis / 1000
    // Ring of buckets: the bucket number each slot holds, and its counts.
    const epochs = Array.from({ length: BUCKETS }, () => -1)
    const calls = Array.from({ length: BUCKETS }, () => 0)
    const retries = Array.from({ length: BUCKETS }, () => 0)
    let denied = 0
    let callsTotal = 0
    let retriesTotal = 0
    // When the last exhaustion line was written, and the denials counted in it.
    let loggedAt = Number.NEGATIVE_INFINITY
    let deniedLogged = 0
    let lastEpoch = 0
    // The other replicas' windows (a fleet-wide budget), as the coordination backend last gave them.
    let shared: BudgetShare.Shared | undefined

    /** The slot of `now`'s bucket, emptied when it held an older one. */
    const slot = (now: number): number => {
      const epoch = Math.floor(now / bucketMillis)
      lastEpoch = Math.max(lastEpoch, epoch)
      const i = epoch % BUCKETS
      if (epochs[i] !== epoch) {
        epochs[i] = epoch
        calls[i] = 0
        retries[i] = 0
      }
      return i
    }
    const local = (): BudgetShare.Window => {
      let c = 0
      let r = 0
      for (let i = 0; i < BUCKETS; i++) {
        if (epochs[i]! > lastEpoch - BUCKETS) {
          c += calls[i]!
          r += retries[i]!
        }
      }
      return { calls: c, retries: r }
    }
    // Shared, the ratio and the reserve apply to the fleet's calls and retries: N replicas together retry
    // as one budget would, with one reserve for the fleet, not N.
    const sums = () => {
      const { calls: c, retries: r } = local()
      const allCalls = c + (shared?.calls ?? 0)
      const allRetries = r + (shared?.retries ?? 0)
      return { calls: c, retries: r, available: Math.max(0, Math.floor(ratio * allCalls + reserve) - allRetries) }
    }

    const recordCall = Effect.map(Clock.currentTimeMillis, (now) => {
      calls[slot(now)]!++
      callsTotal++
    })
    const tryRetry = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const i = slot(now)
      if (sums().available >= 1) {
        retries[i]!++
        retriesTotal++
        return granted
      }
      denied++
      // One line per window while it stays exhausted; the denials in between are counted in it.
      if (now - loggedAt < windowMillis) return refused
      loggedAt = now
      const deniedSince = denied - deniedLogged
      deniedLogged = denied
      const { calls, retries: inWindow } = sums()
      return Effect.as(
        Effect.annotateLogs(Effect.logWarning(EXHAUSTED), {
          circuit: o.name,
          calls,
          retries: inWindow,
          denied: deniedSince,
          ratio,
          minPerSecond,
          windowSeconds: windowMillis / 1000
        }),
        false
      )
    })
    const stats = (): Stats => ({ ...sums(), denied, callsTotal, retriesTotal, shared })
    const budget: RetryBudget = { name: o.name, recordCall, tryRetry, stats }
    BudgetShare.attach(budget, {
      local,
      share: (next) => {
        shared = next
      }
    })
    return budget
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions<E> {
  readonly budget: RetryBudget
  /** When given, no retry while it is not CLOSED (a retry into an open or probing circuit only adds load). */
  readonly breaker?: CircuitBreaker | undefined
  /** Retries per call at most (after the first attempt). Default 2. */
  readonly maxRetries?: number | undefined
  /** The delays between attempts. Default: exponential from 100 ms (×2), jittered (0.8 to 1.2). */
  readonly schedule?: Schedule.Schedule<unknown, E> | undefined
  /**
   * Which failures are worth a retry (transient ones: a timeout, a lost connection; the circuit's
   * classifier is a good start). Default: every failure but a `CircuitBreakerError` (the call did not run).
   */
  readonly isRetryable?: ((error: E) => boolean) | undefined
}

const defaultSchedule = Schedule.jittered(Schedule.exponential("100 millis"))

/**
 * Retries an effect within a retry budget: counts the call once, then on each failure retries only if
 * the error is retryable, the breaker (when given) is CLOSED, fewer than `maxRetries` retries were made
 * and the budget has room. Otherwise the last failure is the result.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withRetry =
  <E0>(options: RetryOptions<E0>) => <A, E extends E0, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const { breaker, budget } = options
    const maxRetries = options.maxRetries ?? 2
    const isRetryable = options.isRetryable ?? ((error: E0) => !(error instanceof CircuitBreakerError))
    const schedule = options.schedule ?? defaultSchedule
    return Effect.suspend(() => {
      let made = 0
      const worthIt = (error: E): Effect.Effect<boolean> => {
        if (made >= maxRetries || !isRetryable(error)) return Effect.succeed(false)
        const closed = breaker === undefined ? Effect.succeed(true) : Effect.map(breaker.state, (s) => s === "Closed")
        return Effect.flatMap(closed, (ok) =>
          ok
            ? Effect.map(budget.tryRetry, (granted) => {
              if (granted) made++
              return granted
            })
            : Effect.succeed(false))
      }
      return Effect.andThen(budget.recordCall, Effect.retry(effect, { schedule, while: worthIt }))
    })
  }
