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
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import {
  type CircuitBreaker,
  type Listener,
  make as CircuitBreakerMake,
  type Options as CircuitBreakerOptions,
  type Snapshot,
  type State
} from "./CircuitBreaker.ts"
import type { CircuitBreakerOptionsError } from "./CircuitBreakerError.ts"
import * as Admission from "./internal/admission.ts"
import { liveUnrefClock } from "./internal/unrefClock.ts"
import * as Registries from "./Registry.ts"
import { Registry } from "./Registry.ts"

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
  const impl = Admission.of(breaker)
  const isFailure = options?.isFailure
  return (...args) => {
    const generation = Admission.admit(impl)
    if (typeof generation !== "number") throw generation
    const startedAt = Admission.start(impl)
    let result: A
    try {
      result = fn(...args)
    } catch (error) {
      throw Admission.fail(impl, generation, startedAt, error, isFailure)
    }
    Admission.succeed(impl, generation, startedAt)
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
  const impl = Admission.of(breaker)
  const isFailure = options?.isFailure
  if (impl.callTimeoutMillis !== undefined) {
    return Effect.runPromiseExit(
      breaker.protect(Effect.tryPromise({ try: fn, catch: (error) => error }), isFailure)
    ).then((exit) => {
      if (exit._tag === "Success") return exit.value
      throw Cause.squash(exit.cause)
    })
  }
  const generation = Admission.admit(impl)
  if (typeof generation !== "number") return Promise.reject(generation)
  const startedAt = Admission.start(impl)
  let pending: PromiseLike<A>
  try {
    pending = fn(neverAborted)
  } catch (error) {
    return Promise.reject(Admission.fail(impl, generation, startedAt, error, isFailure))
  }
  return settleWhenDone(impl, generation, startedAt, pending, isFailure)
}

// One `then` with two small closures: the fewest allocations a Promise settled later allows.
const settleWhenDone = <A>(
  impl: Admission.Breaker,
  generation: number,
  startedAt: number,
  pending: PromiseLike<A>,
  isFailure: ((error: unknown) => boolean) | undefined
): Promise<A> =>
  Promise.resolve(pending).then((value) => {
    Admission.succeed(impl, generation, startedAt)
    return value
  }, (error) => {
    throw Admission.fail(impl, generation, startedAt, error, isFailure)
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
  const impl = Admission.of(breaker)
  const isFailure = options?.isFailure
  return (...args) => {
    // With a `callTimeout` the call runs through the Effect runtime, which `execute` sets up.
    if (impl.callTimeoutMillis !== undefined) return execute(breaker, () => fn(...args), options)
    // The rest as in `execute`, without a closure per call.
    const generation = Admission.admit(impl)
    if (typeof generation !== "number") return Promise.reject(generation)
    const startedAt = Admission.start(impl)
    let pending: PromiseLike<A>
    try {
      pending = fn(...args)
    } catch (error) {
      return Promise.reject(Admission.fail(impl, generation, startedAt, error, isFailure))
    }
    return settleWhenDone(impl, generation, startedAt, pending, isFailure)
  }
}

/**
 * What `make` takes: a breaker's options, with a `probe` that may also be a
 * Promise-returning function (the dependency's cheap health check).
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerOptions extends Omit<CircuitBreakerOptions, "probe"> {
  /** The dependency's health check, run as the trial of an idle HALF_OPEN breaker (see `CircuitBreaker.Options.probe`). */
  readonly probe?: (() => PromiseLike<unknown>) | Effect.Effect<unknown, unknown> | undefined
}

/**
 * A breaker for code outside Effect, made by `make` or by a `PromiseRegistry`:
 * guards Promise-returning and synchronous calls, reads its state, and owns its
 * background work (the open-period timer and the probe loop), which `close`
 * stops. Its timers never keep the process alive, so a program that forgets
 * `close` still exits when its own work is done.
 *
 * After `close` the breaker keeps guarding calls (an elapsed open period still
 * reads as HALF_OPEN and admits a trial call); only the background work has
 * stopped: no probe runs and no transition happens without a call.
 *
 * @since 0.1.0
 * @category models
 */
export interface PromiseBreaker extends AsyncDisposable, Disposable {
  readonly name: string
  /** The breaker as Effect code sees it: for `withBreaker`, `Metrics`, a `Registry`. */
  readonly breaker: CircuitBreaker
  /** Runs one call through the breaker (see the module function `execute`). */
  readonly execute: <A>(fn: (signal: AbortSignal) => PromiseLike<A>, options?: FacadeOptions) => Promise<A>
  /** A guarded version of a Promise-returning function (see `wrapPromise`). */
  readonly wrap: <Args extends ReadonlyArray<unknown>, A>(
    fn: (...args: Args) => PromiseLike<A>,
    options?: FacadeOptions
  ) => (...args: Args) => Promise<A>
  /** A guarded version of a synchronous function (see `wrapSync`). */
  readonly wrapSync: <Args extends ReadonlyArray<unknown>, A>(
    fn: (...args: Args) => A,
    options?: FacadeOptions
  ) => (...args: Args) => A
  /** The current state (an elapsed open period reads as HALF_OPEN). */
  readonly state: () => State
  /** The state and counts now. */
  readonly snapshot: () => Snapshot
  /**
   * Runs `listener` for every transition and call until the returned function
   * is called or the breaker is closed.
   */
  readonly listen: (listener: Listener) => () => void
  /** Holds the breaker OPEN until `reset`; `false` when it already was. */
  readonly forceOpen: () => boolean
  /** Lets every call through, still measured, until `reset`; `false` when it already was. */
  readonly disable: () => boolean
  /** Back to CLOSED with every count forgotten; `false` when it was already CLOSED. */
  readonly reset: () => boolean
  /** Stops the background work and the listeners; idempotent. `await using` calls it. */
  readonly close: () => Promise<void>
  /** Whether `close` was called. */
  readonly closed: boolean
}

/**
 * Makes a breaker for Promise code in one line, with no Effect code in sight.
 * Bad options throw `CircuitBreakerOptionsError` naming the option. Close it
 * with `close()` (or `await using`) when the dependency goes away; its timers
 * never hold the process open either way.
 *
 * **Example** (A breaker around `fetch`)
 *
 * ```ts
 * import { Facade } from "@neural-hive/resilience"
 *
 * const breaker = Facade.make({ name: "users_api", failMax: 5, recoveryTimeout: "30 seconds" })
 * const getUser = breaker.wrap((id: string) => fetch(`http://127.0.0.1:8080/users/${id}`))
 *
 * export const handler = async (id: string): Promise<number> => (await getUser(id)).status
 * export const shutdown = (): Promise<void> => breaker.close()
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: BreakerOptions): PromiseBreaker => makeIn(options, undefined)

/**
 * A set of Promise breakers with unique names, closed together; its
 * `registry` is the Effect `Registry.Registry` service holding them, so
 * `@neural-hive/observability`'s metrics and health routes can be given it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PromiseRegistry extends AsyncDisposable, Disposable {
  /** Makes a breaker registered here; a name already taken throws `CircuitBreakerOptionsError`. */
  readonly make: (options: BreakerOptions) => PromiseBreaker
  /** The breaker named `name`, if this registry made it and it is not closed. */
  readonly get: (name: string) => PromiseBreaker | undefined
  /** Every open breaker of the registry, in creation order. */
  readonly breakers: () => ReadonlyArray<PromiseBreaker>
  /** The `Registry.Registry` service of these breakers, for Effect code (`Layer.succeed(Registry.Registry, registry.registry)`). */
  readonly registry: Registry["Service"]
  /** Closes every breaker; idempotent. */
  readonly close: () => Promise<void>
}

/**
 * Makes a `PromiseRegistry`.
 *
 * **Example** (Two breakers closed together)
 *
 * ```ts
 * import { Facade } from "@neural-hive/resilience"
 *
 * await using breakers = Facade.makeRegistry()
 * const users = breakers.make({ name: "users_api" })
 * const orders = breakers.make({ name: "orders_api", failMax: 3 })
 * console.log(users.state(), orders.state(), breakers.breakers().length)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (): PromiseRegistry => {
  const registry = Effect.runSync(Registries.make)
  const made = new Map<string, PromiseBreaker>()
  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    closing ??= Promise.all([...made.values()].map((breaker) => breaker.close())).then(() => made.clear())
  return {
    registry,
    make: (options) => {
      const breaker = makeIn(options, registry)
      made.set(breaker.name, breaker)
      return breaker
    },
    get: (name) => {
      const breaker = made.get(name)
      return breaker === undefined || breaker.closed ? undefined : breaker
    },
    breakers: () => [...made.values()].filter((breaker) => !breaker.closed),
    close,
    [Symbol.asyncDispose]: close,
    [Symbol.dispose]: () => void close()
  }
}

/** A manual control of the breaker as a plain function. */
const sync = <A>(effect: Effect.Effect<A>) => () => Effect.runSync(effect)

const makeIn = (options: BreakerOptions, registry: Registry["Service"] | undefined): PromiseBreaker => {
  const scope = Scope.makeUnsafe()
  const probe = options.probe
  const effectOptions: CircuitBreakerOptions = {
    ...options,
    probe: typeof probe === "function"
      ? Effect.tryPromise({ try: () => probe(), catch: (error) => error })
      : probe
  }
  let made: Effect.Effect<CircuitBreaker, CircuitBreakerOptionsError, Scope.Scope> = CircuitBreakerMake(effectOptions)
  if (registry !== undefined) made = Effect.provideService(made, Registry, registry)
  const exit = Effect.runSyncExit(made.pipe(Scope.provide(scope), Effect.provideService(Clock.Clock, liveUnrefClock)))
  if (exit._tag === "Failure") {
    Effect.runSync(Scope.close(scope, Exit.void))
    throw Cause.squash(exit.cause)
  }
  const breaker = exit.value
  const { view } = breaker
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => closing ??= Effect.runPromise(Scope.close(scope, Exit.void))
  // The open subscriptions of `listen`, ended with the breaker (one finalizer, however many come and go).
  const subscriptions = new Set<Scope.Closeable>()
  Effect.runSync(Scope.addFinalizer(
    scope,
    Effect.sync(() => {
      for (const subscription of subscriptions) Effect.runSync(Scope.close(subscription, Exit.void))
      subscriptions.clear()
    })
  ))
  return {
    name: breaker.name,
    breaker,
    execute: (fn, callOptions) => execute(breaker, fn, callOptions),
    wrap: (fn, callOptions) => wrapPromise(breaker, fn, callOptions),
    wrapSync: (fn, callOptions) => wrapSync(breaker, fn, callOptions),
    state: () => view.state(),
    snapshot: () => view.snapshot(),
    listen: (listener) => {
      if (closing !== undefined) return () => {}
      const subscription = Scope.makeUnsafe()
      Effect.runSync(breaker.listen(listener).pipe(Scope.provide(subscription)))
      subscriptions.add(subscription)
      return () => {
        if (subscriptions.delete(subscription)) Effect.runSync(Scope.close(subscription, Exit.void))
      }
    },
    forceOpen: sync(breaker.forceOpen),
    disable: sync(breaker.disable),
    reset: sync(breaker.reset),
    close,
    get closed() {
      return closing !== undefined
    },
    [Symbol.asyncDispose]: close,
    [Symbol.dispose]: () => void close()
  }
}
