/**
 * The registry knows every breaker of the program, and the policies
 * (bulkhead, retry budget, hedge) of each circuit. `CircuitBreaker.make`
 * registers into it when it is in the context, and `GuardedClient.make`
 * registers the policies it composes around its breaker; observability wires
 * every breaker it holds, including ones made later, through `listenEach`,
 * and every circuit's policies through `onRegisterPolicies`.
 *
 * **Example** (Listing the breakers of a program)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 *
 * const program = Effect.gen(function*() {
 *   yield* CircuitBreaker.make({ name: "kafka_producer" })
 *   const registry = yield* Registry.Registry
 *   return (yield* registry.snapshots).map((snapshot) => `${snapshot.name}: ${snapshot.state}`)
 * }).pipe(Effect.scoped, Effect.provide(Registry.layer))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { CircuitBreaker, Listener, Snapshot } from "./CircuitBreaker.ts"
import { CircuitBreakerOptionsError } from "./CircuitBreakerError.ts"
import type { Policies } from "./ResilienceConfig.ts"

/**
 * The policies of one circuit as the registry holds them: the circuit's name
 * and its policies (`ResilienceConfig.Policies`, each absent when not used).
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitPolicies {
  readonly circuit: string
  readonly policies: Policies
}

/**
 * @since 0.1.0
 * @category registry
 */
export class Registry extends Context.Service<Registry, {
  /** Adds a breaker under its name for the life of the scope; a name already taken fails. */
  readonly register: (breaker: CircuitBreaker) => Effect.Effect<void, CircuitBreakerOptionsError, Scope.Scope>
  readonly breakers: Effect.Effect<ReadonlyArray<CircuitBreaker>>
  /** The breaker registered under `name`, if any. */
  readonly get: (name: string) => Effect.Effect<Option.Option<CircuitBreaker>>
  readonly snapshots: Effect.Effect<ReadonlyArray<Snapshot>>
  /**
   * Runs `f` for every breaker registered now and later, until the scope
   * closes. A function `f` returns is run when that breaker leaves the registry
   * (its scope closed) or when this subscription ends.
   */
  readonly onRegister: (f: (breaker: CircuitBreaker) => void | (() => void)) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Attaches the listener `f` makes to every breaker registered now and later
   * (`undefined`: none for that breaker), until the scope closes or the breaker
   * leaves the registry.
   */
  readonly listenEach: (f: (breaker: CircuitBreaker) => Listener | undefined) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Adds the policies of `circuit` for the life of the scope (`GuardedClient.make` does it for the policies it
   * composes); a circuit whose policies are registered already fails, as a breaker's name taken does.
   */
  readonly registerPolicies: (
    circuit: string,
    policies: Policies
  ) => Effect.Effect<void, CircuitBreakerOptionsError, Scope.Scope>
  /** The policies of every circuit that registered some, in the order they came. */
  readonly policies: Effect.Effect<ReadonlyArray<CircuitPolicies>>
  /**
   * Runs `f` for the policies of every circuit registered now and later, until the scope closes; a function
   * `f` returns is run when they leave the registry or this subscription ends (as `onRegister` for breakers).
   */
  readonly onRegisterPolicies: (
    f: (entry: CircuitPolicies) => void | (() => void)
  ) => Effect.Effect<void, never, Scope.Scope>
}>()("@neural-hive/resilience/CircuitBreaker/Registry") {}

/**
 * A new, empty registry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Registry["Service"]> = Effect.sync(() => {
  const breakers = catalog<CircuitBreaker>(
    (breaker) => breaker.name,
    "name",
    "a name no other breaker of the registry uses"
  )
  const policies = catalog<CircuitPolicies>(
    (entry) => entry.circuit,
    "policies",
    "one set of policies per circuit: this circuit registered its policies already"
  )
  return Registry.of({
    register: breakers.add,
    breakers: Effect.sync(() => Array.from(breakers.byName.values())),
    get: (name) => Effect.sync(() => Option.fromNullishOr(breakers.byName.get(name))),
    snapshots: Effect.sync(() => Array.from(breakers.byName.values(), (breaker) => breaker.view.snapshot())),
    onRegister: breakers.subscribe,
    listenEach: (f) =>
      breakers.subscribe((breaker) => {
        const listener = f(breaker)
        if (listener === undefined) return
        // Removed when the breaker leaves the registry or the subscription ends: no scope per breaker.
        breaker.view.subscribe(listener)
        return () => breaker.view.unsubscribe(listener)
      }),
    registerPolicies: (circuit, given) => policies.add({ circuit, policies: given }),
    policies: Effect.sync(() => Array.from(policies.byName.values())),
    onRegisterPolicies: policies.subscribe
  })
})

/** Items by name for the life of their scopes, and the subscriptions that follow them. */
const catalog = <T>(nameOf: (item: T) => string, option: string, expected: string) => {
  const byName = new Map<string, T>()
  type Hook = (item: T) => void | (() => void)
  // For each subscription, the cleanups it returned, by name.
  const hooks = new Map<Hook, Map<string, () => void>>()
  const attach = (hook: Hook, cleanups: Map<string, () => void>, item: T) => {
    const cleanup = hook(item)
    if (typeof cleanup === "function") cleanups.set(nameOf(item), cleanup)
  }
  const subscribe = (f: Hook) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const cleanups = new Map<string, () => void>()
        hooks.set(f, cleanups)
        for (const item of byName.values()) attach(f, cleanups, item)
        return cleanups
      }),
      (cleanups) =>
        Effect.sync(() => {
          hooks.delete(f)
          for (const cleanup of cleanups.values()) cleanup()
        })
    )
  const add = (item: T): Effect.Effect<void, CircuitBreakerOptionsError, Scope.Scope> =>
    Effect.gen(function*() {
      const name = nameOf(item)
      if (byName.has(name)) {
        return yield* new CircuitBreakerOptionsError({ circuit: name, option, value: name, expected })
      }
      byName.set(name, item)
      for (const [hook, cleanups] of hooks) attach(hook, cleanups, item)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          byName.delete(name)
          for (const cleanups of hooks.values()) {
            cleanups.get(name)?.()
            cleanups.delete(name)
          }
        })
      )
    })
  return { byName, subscribe, add }
}

/**
 * Provides a new `Registry`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Registry> = Layer.effect(Registry, make)
