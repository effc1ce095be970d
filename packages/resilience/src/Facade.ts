/**
 * Circuit breakers for code outside Effect: wrap a synchronous function or a
 * Promise-returning function so it throws, or rejects with, `CircuitBreakerError`
 * while the breaker is open. The Orchestrator Dynamic's breakers guarded both
 * kinds of calls. Every path classifies as `withBreaker` does: the breaker's
 * `isFailure` and the facade's `isFailure` must both say an error counts.
 *
 * **Example** (Guarding a Promise-returning client call)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Facade } from "@neural-hive/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "legacy_api" })
 *   const fetchUser = Facade.wrapPromise(breaker, (id: string) => Promise.resolve({ id }))
 *   return yield* Effect.promise(() => fetchUser("42"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type { CircuitBreaker } from "./CircuitBreaker.ts"
import { BreakerImpl } from "./internal/breaker.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface FacadeOptions {
  /** Which thrown values count against the dependency (default: all); narrows the breaker's own `isFailure`. */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
}

/**
 * Wraps a synchronous function. A call while the breaker is open throws
 * `CircuitBreakerError` without running `fn`; what `fn` throws is rethrown
 * after the breaker counted it. `callTimeout` does not apply: synchronous code
 * cannot be interrupted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const wrapSync = <Args extends ReadonlyArray<unknown>, A>(
  breaker: CircuitBreaker,
  fn: (...args: Args) => A,
  options?: FacadeOptions
): (...args: Args) => A => {
  const { unsafe } = breaker
  const isFailure = options?.isFailure
  return (...args) => {
    const generation = unsafe.admit()
    if (typeof generation !== "number") throw generation
    const startedAt = callStart(breaker)
    let result: A
    try {
      result = fn(...args)
    } catch (error) {
      throw unsafe.settleFailure(generation, startedAt, error, isFailure)
    }
    unsafe.settle(generation, startedAt, "success")
    return result
  }
}

/**
 * Runs one Promise-returning call through the breaker. Rejects with
 * `CircuitBreakerError` while the breaker is open, or with what `fn` rejected
 * with, after the breaker counted it. With a `callTimeout` the call runs
 * through `withBreaker`: the `AbortSignal` passed to `fn` is aborted when the
 * call times out, and the call rejects with `CircuitBreakerTimeoutError`. Without one it
 * runs on the breaker directly (no Effect runtime, a signal that never aborts).
 *
 * @since 0.1.0
 * @category constructors
 */
export const execute = <A>(
  breaker: CircuitBreaker,
  fn: (signal: AbortSignal) => PromiseLike<A>,
  options?: FacadeOptions
): Promise<A> => {
  const { unsafe } = breaker
  const isFailure = options?.isFailure
  if (unsafe.callTimeoutMillis !== undefined) {
    return Effect.runPromiseExit(
      breaker.protect(Effect.tryPromise({ try: fn, catch: (error) => error }), isFailure)
    ).then((exit) => {
      if (exit._tag === "Success") return exit.value
      throw Cause.squash(exit.cause)
    })
  }
  const generation = unsafe.admit()
  if (typeof generation !== "number") return Promise.reject(generation)
  const startedAt = callStart(breaker)
  let pending: PromiseLike<A>
  try {
    pending = fn(neverAborted)
  } catch (error) {
    return Promise.reject(unsafe.settleFailure(generation, startedAt, error, isFailure))
  }
  return settleWhenDone(unsafe, generation, startedAt, pending, isFailure)
}

// Durations are read only when something uses them (a time-based policy, slow calls, a listener).
const callStart = (breaker: CircuitBreaker): number =>
  !(breaker instanceof BreakerImpl) || breaker.timed ? breaker.unsafe.now() : NaN

// One `then` with two small closures: the fewest allocations a Promise settled later allows.
const settleWhenDone = <A>(
  unsafe: CircuitBreaker["unsafe"],
  generation: number,
  startedAt: number,
  pending: PromiseLike<A>,
  isFailure: ((error: unknown) => boolean) | undefined
): Promise<A> =>
  Promise.resolve(pending).then((value) => {
    unsafe.settle(generation, startedAt, "success")
    return value
  }, (error) => {
    throw unsafe.settleFailure(generation, startedAt, error, isFailure)
  })

// Handed to calls that cannot time out.
const neverAborted = new AbortController().signal

/**
 * Wraps a Promise-returning function with `execute`; use `execute` directly to
 * receive the `AbortSignal`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const wrapPromise = <Args extends ReadonlyArray<unknown>, A>(
  breaker: CircuitBreaker,
  fn: (...args: Args) => PromiseLike<A>,
  options?: FacadeOptions
): (...args: Args) => Promise<A> => {
  const unsafe = breaker.unsafe
  const isFailure = options?.isFailure
  return (...args) => {
    // With a `callTimeout` the call runs through the Effect runtime, which `execute` sets up.
    if (unsafe.callTimeoutMillis !== undefined) return execute(breaker, () => fn(...args), options)
    // The rest as in `execute`, without a closure per call.
    const generation = unsafe.admit()
    if (typeof generation !== "number") return Promise.reject(generation)
    const startedAt = callStart(breaker)
    let pending: PromiseLike<A>
    try {
      pending = fn(...args)
    } catch (error) {
      return Promise.reject(unsafe.settleFailure(generation, startedAt, error, isFailure))
    }
    return settleWhenDone(unsafe, generation, startedAt, pending, isFailure)
  }
}
