/**
 * A bulkhead: at most `maxConcurrent` calls of one circuit in flight, at most
 * `maxQueued` more waiting for a slot (each for at most `queueTimeout`), and
 * every other call rejected at once with a `BulkheadRejectedError` that says
 * when to try again. It bounds what a slow dependency can hold of the service
 * (sockets, memory, fibers) where a breaker alone lets every call in until
 * enough of them have failed.
 *
 * Compose it with the breaker in either order; the usual one is the bulkhead
 * outside (`effect.pipe(withBreaker(breaker), withBulkhead(bulkhead))`): a
 * call the breaker refuses leaves its slot at once, and a call the bulkhead
 * refuses never reaches the breaker, so it is not counted as the dependency's
 * failure. Time comes from `Clock`, so `TestClock` drives the queue timeout.
 *
 * **Example**
 *
 * ```ts
 * import { Bulkhead } from "@neural-hive/resilience"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ name: "temporal_client", maxConcurrent: 20, maxQueued: 50, queueTimeout: "2 seconds" })
 *   return yield* Effect.succeed("started").pipe(Bulkhead.withBulkhead(bulkhead))
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CircuitBreakerOptionsError } from "./CircuitBreakerError.ts"
import { makeSlots } from "./internal/slots.ts"
import * as Vegas from "./internal/vegas.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The circuit's name, as in metrics and errors. */
  readonly name: string
  /** Calls in flight at most (a positive integer). */
  readonly maxConcurrent: number
  /** Calls waiting for a slot at most; beyond it a call is rejected at once. Default 0 (no queue). */
  readonly maxQueued?: number | undefined
  /** How long a call may wait in the queue before it is rejected. Default 1 second. */
  readonly queueTimeout?: Duration.Input | undefined
}

/**
 * Why a call did not run: `QueueFull` (every slot and queue place taken: rejected at once) or
 * `QueueTimeout` (it waited `queueTimeout` without getting a slot).
 *
 * @since 0.1.0
 * @category errors
 */
export type RejectionReason = "QueueFull" | "QueueTimeout"

/**
 * The call was rejected without running. `retryAfter` is an estimate of when a slot frees up: the
 * recent mean call time for each round of calls ahead of this one.
 *
 * @since 0.1.0
 * @category errors
 */
export class BulkheadRejectedError extends Data.TaggedError("BulkheadRejectedError")<{
  readonly circuit: string
  readonly reason: RejectionReason
  /** Calls in flight when it was rejected. */
  readonly inFlight: number
  /** Calls waiting when it was rejected. */
  readonly queued: number
  readonly retryAfter: Duration.Duration
}> {
  /** `retryAfter` in milliseconds. */
  get retryAfterMillis(): number {
    return Duration.toMillis(this.retryAfter)
  }

  override get message(): string {
    return `bulkhead "${this.circuit}" rejected the call (${this.reason}: ${this.inFlight} in flight, ${this.queued} queued); retry after ${
      Duration.format(this.retryAfter)
    }`
  }
}

/**
 * What a bulkhead holds and has done since it was made.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Calls in flight at most now: `maxConcurrent`, or an adaptive limit's current value. */
  readonly limit: number
  /** The least the limit can be: `maxConcurrent`, or an adaptive limit's `minLimit`. */
  readonly minLimit: number
  /** The most the limit can be: `maxConcurrent`, or an adaptive limit's `maxLimit`. */
  readonly maxLimit: number
  readonly maxQueued: number
  readonly inFlight: number
  readonly queued: number
  /** Calls that got a slot (at once or after waiting). */
  readonly admitted: number
  /** Calls rejected, for either reason. */
  readonly rejected: number
  /** Of `rejected`, those that waited `queueTimeout` in vain. */
  readonly queueTimeouts: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Bulkhead {
  readonly name: string
  /** Runs `effect` in a slot, waiting for one if the queue has room; `BulkheadRejectedError` otherwise. */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejectedError, R>
  /** The counters now (a synchronous read, for metrics and health). */
  readonly stats: () => Stats
}

const DEFAULT_QUEUE_TIMEOUT = 1_000

const options = (o: Options): Effect.Effect<
  { readonly maxConcurrent: number; readonly maxQueued: number; readonly queueTimeout: Duration.Duration },
  CircuitBreakerOptionsError
> => {
  const circuit = typeof o?.name === "string" ? o.name : "?"
  const bad = (option: string, value: unknown, expected: string) =>
    Effect.fail(new CircuitBreakerOptionsError({ circuit, option, value, expected }))
  if (typeof o?.name !== "string" || o.name.trim() === "") return bad("name", o?.name, "a non-empty circuit name")
  if (!Number.isSafeInteger(o.maxConcurrent) || o.maxConcurrent < 1) {
    return bad("maxConcurrent", o.maxConcurrent, "an integer of at least 1")
  }
  const maxQueued = o.maxQueued ?? 0
  if (!Number.isSafeInteger(maxQueued) || maxQueued < 0) {
    return bad("maxQueued", o.maxQueued, "an integer of at least 0")
  }
  const queueTimeout = o.queueTimeout === undefined
    ? Option.some(Duration.millis(DEFAULT_QUEUE_TIMEOUT))
    : Duration.fromInput(o.queueTimeout)
  if (Option.isNone(queueTimeout) || !Duration.isFinite(queueTimeout.value)) {
    return bad("queueTimeout", o.queueTimeout, "a finite duration, e.g. \"2 seconds\"")
  }
  return Effect.succeed({ maxConcurrent: o.maxConcurrent, maxQueued, queueTimeout: queueTimeout.value })
}

/**
 * Makes a bulkhead; a bad option is a `CircuitBreakerOptionsError` naming it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (o: Options): Effect.Effect<Bulkhead, CircuitBreakerOptionsError> =>
  Effect.map(options(o), ({ maxConcurrent, maxQueued, queueTimeout }) => {
    const slots = makeSlots({
      name: o.name,
      limit: () => maxConcurrent,
      minLimit: maxConcurrent,
      maxLimit: maxConcurrent,
      maxQueued,
      queueTimeout
    })
    return { name: o.name, ...slots }
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface AdaptiveOptions {
  /** The circuit's name, as in metrics and errors. */
  readonly name: string
  /** The limit to start from. Default 20. */
  readonly initialLimit?: number | undefined
  /** The limit never goes below this. Default 1. */
  readonly minLimit?: number | undefined
  /** The limit never goes above this. Default 200. */
  readonly maxLimit?: number | undefined
  /** Calls waiting for a slot at most. Default 0 (no queue). */
  readonly maxQueued?: number | undefined
  /** How long a call may wait in the queue. Default 1 second. */
  readonly queueTimeout?: Duration.Input | undefined
  /**
   * Which failures mean the dependency is overloaded (the limit drops by a tenth). Default: a timeout (an
   * error tagged `CircuitBreakerTimeoutError`, or with `reason: "Timeout"` or `"DeadlineExceeded"` as the integrations' errors have).
   */
  readonly isDrop?: ((error: unknown) => boolean) | undefined
}

const isTimeout = (error: unknown): boolean =>
  typeof error === "object" && error !== null &&
  ((error as { _tag?: unknown })._tag === "CircuitBreakerTimeoutError" ||
    (error as { reason?: unknown }).reason === "Timeout" ||
    (error as { reason?: unknown }).reason === "DeadlineExceeded")

/**
 * The message of the log line an adaptive limit writes when it moves (annotations `circuit`, `from`,
 * `to`, `minLimit`, `maxLimit`, `reason`): at once for a move of more than a tenth since the last line
 * or onto `minLimit` or `maxLimit`, at most once per `LOG_EVERY_MILLIS` for smaller ones; a warning when
 * it reaches `minLimit`.
 *
 * @since 0.1.0
 * @category constants
 */
export const LIMIT_CHANGED = "bulkhead_limit_changed"

/**
 * Small moves of an adaptive limit are logged at most once per this many milliseconds (10 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const LOG_EVERY_MILLIS = 10_000

/**
 * Makes an adaptive bulkhead: the limit of calls in flight follows the dependency's latency (Vegas, as
 * Netflix's concurrency-limits describes it). It grows while calls take about the least time seen,
 * shrinks when they take longer (a queue forms at the dependency) and drops by a tenth on a timeout. Under
 * a dependency that hangs no call finishes, so the limit stays where it was: calls in flight stay at
 * about what the dependency served before it slowed. `stats().limit` is the limit now; its moves are
 * logged (`LIMIT_CHANGED`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const adaptive = (o: AdaptiveOptions): Effect.Effect<Bulkhead, CircuitBreakerOptionsError> => {
  const minLimit = o?.minLimit ?? 1
  const maxLimit = o?.maxLimit ?? 200
  const initialLimit = o?.initialLimit ?? Math.min(20, maxLimit)
  const circuit = typeof o?.name === "string" ? o.name : "?"
  const bad = (option: string, value: unknown, expected: string) =>
    Effect.fail(new CircuitBreakerOptionsError({ circuit, option, value, expected }))
  if (!Number.isSafeInteger(minLimit) || minLimit < 1) return bad("minLimit", o.minLimit, "an integer of at least 1")
  if (!Number.isSafeInteger(maxLimit) || maxLimit < minLimit) {
    return bad("maxLimit", o.maxLimit, `an integer of at least minLimit (${minLimit})`)
  }
  if (!Number.isSafeInteger(initialLimit) || initialLimit < minLimit || initialLimit > maxLimit) {
    return bad("initialLimit", o.initialLimit, `an integer from minLimit (${minLimit}) to maxLimit (${maxLimit})`)
  }
  const isDrop = o.isDrop ?? isTimeout
  return Effect.map(
    options({ name: o.name, maxConcurrent: initialLimit, maxQueued: o.maxQueued, queueTimeout: o.queueTimeout }),
    ({ maxQueued, queueTimeout }) => {
      const settings = { minLimit, maxLimit, probeEvery: 1_000 }
      let state = Vegas.initial(initialLimit)
      let logged = { limit: initialLimit, at: Number.NEGATIVE_INFINITY }
      const slots = makeSlots({
        name: o.name,
        limit: () => Math.floor(state.limit),
        minLimit,
        maxLimit,
        maxQueued,
        queueTimeout,
        onSample: ({ end, exit, inFlight, millis }) => {
          const drop = exit._tag === "Failure" && exit.cause.reasons.some((r) => r._tag === "Fail" && isDrop(r.error))
          // An interrupted call (its caller gave up) says nothing about the dependency.
          if (exit._tag === "Failure" && !drop && exit.cause.reasons.every((r) => r._tag === "Interrupt")) return
          state = Vegas.update(settings, state, { millis, inFlight, drop })
          // Logged when it moved by more than a tenth since the last line or reached a bound; else once per LOG_EVERY_MILLIS.
          const limit = Math.floor(state.limit)
          if (limit === logged.limit) return
          const bound = limit === minLimit || limit === maxLimit
          if (!bound && Math.abs(limit - logged.limit) <= logged.limit * 0.1 && end - logged.at < LOG_EVERY_MILLIS) {
            return
          }
          const from = logged.limit
          logged = { limit, at: end }
          return Effect.annotateLogs(
            limit === minLimit ? Effect.logWarning(LIMIT_CHANGED) : Effect.logInfo(LIMIT_CHANGED),
            {
              circuit: o.name,
              from,
              to: limit,
              minLimit,
              maxLimit,
              reason: drop ? "timeout" : limit > from ? "latency_near_minimum" : "latency_rising"
            }
          )
        }
      })
      return { name: o.name, ...slots }
    }
  )
}

/**
 * Runs an effect through a bulkhead (`bulkhead.run` as a pipeable combinator).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withBulkhead =
  (bulkhead: Bulkhead) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadRejectedError, R> =>
    bulkhead.run(effect)
