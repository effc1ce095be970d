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
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CircuitBreakerOptionsError } from "./CircuitBreakerError.ts"

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
  readonly maxConcurrent: number
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

interface Waiter {
  readonly slot: Deferred.Deferred<void>
  /** A releasing call handed it its slot. */
  granted: boolean
}

const DEFAULT_QUEUE_TIMEOUT = 1_000
/** The weight of the newest call time in the mean used for `retryAfter`. */
const SMOOTHING = 0.2

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
    const name = o.name
    const waiters: Array<Waiter> = []
    let inFlight = 0
    let admitted = 0
    let rejected = 0
    let queueTimeouts = 0
    // The mean call time (ms), for `retryAfter`; `queueTimeout` until a call has finished.
    let meanMillis = Duration.toMillis(queueTimeout)

    /** A slot is free: the oldest waiter gets it, or the count goes down. */
    const release = () => {
      const next = waiters.shift()
      if (next === undefined) {
        inFlight--
        return
      }
      next.granted = true
      Deferred.doneUnsafe(next.slot, Effect.void)
    }

    const reject = (reason: RejectionReason) => {
      rejected++
      if (reason === "QueueTimeout") queueTimeouts++
      const rounds = Math.ceil((waiters.length + 1) / maxConcurrent)
      return Effect.fail(
        new BulkheadRejectedError({
          circuit: name,
          reason,
          inFlight,
          queued: waiters.length,
          retryAfter: Duration.millis(Math.max(1, Math.round(meanMillis * rounds)))
        })
      )
    }

    /** Waits for a slot: `true` once it has one, `false` after `queueTimeout`. */
    const wait = (restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const waiter: Waiter = { slot: Deferred.makeUnsafe<void>(), granted: false }
        waiters.push(waiter)
        const waited = yield* Effect.exit(restore(Effect.timeoutOption(Deferred.await(waiter.slot), queueTimeout)))
        // Granted at the instant it timed out or was interrupted: the slot is its own either way.
        if (waited._tag === "Success" && (Option.isSome(waited.value) || waiter.granted)) return true
        if (waiter.granted) release()
        else waiters.splice(waiters.indexOf(waiter), 1)
        if (waited._tag === "Failure") return yield* Effect.failCause(waited.cause)
        return false
      })

    const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadRejectedError, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (inFlight < maxConcurrent) inFlight++
          else if (waiters.length >= maxQueued) return yield* reject("QueueFull")
          else if (!(yield* wait(restore))) return yield* reject("QueueTimeout")
          admitted++
          const start = yield* Clock.currentTimeMillis
          return yield* restore(effect).pipe(
            Effect.ensuring(Effect.flatMap(Clock.currentTimeMillis, (end) =>
              Effect.sync(() => {
                meanMillis += SMOOTHING * (Math.max(0, end - start) - meanMillis)
                release()
              })))
          )
        })
      )

    const stats = (): Stats => ({
      maxConcurrent,
      maxQueued,
      inFlight,
      queued: waiters.length,
      admitted,
      rejected,
      queueTimeouts
    })

    return { name, run, stats }
  })

/**
 * Runs an effect through a bulkhead (`bulkhead.run` as a pipeable combinator).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withBulkhead =
  (bulkhead: Bulkhead) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadRejectedError, R> =>
    bulkhead.run(effect)
