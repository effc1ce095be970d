/**
 * The registry knows every breaker of the program. `CircuitBreaker.make`
 * registers into it when it is in the context; observability wires every
 * breaker it holds, including ones made later, through `listenEach`.
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
}>()("@neural-hive/resilience/CircuitBreaker/Registry") {}

/**
 * A new, empty registry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Registry["Service"]> = Effect.sync(() => {
  const byName = new Map<string, CircuitBreaker>()
  type Hook = (breaker: CircuitBreaker) => void | (() => void)
  // For each subscription, the cleanups it returned, by breaker name.
  const hooks = new Map<Hook, Map<string, () => void>>()
  const attach = (hook: Hook, cleanups: Map<string, () => void>, breaker: CircuitBreaker) => {
    const cleanup = hook(breaker)
    if (typeof cleanup === "function") cleanups.set(breaker.name, cleanup)
  }
  const onRegister = (f: Hook) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const cleanups = new Map<string, () => void>()
        hooks.set(f, cleanups)
        for (const breaker of byName.values()) attach(f, cleanups, breaker)
        return cleanups
      }),
      (cleanups) =>
        Effect.sync(() => {
          hooks.delete(f)
          for (const cleanup of cleanups.values()) cleanup()
        })
    )
  return Registry.of({
    register: (breaker) =>
      Effect.gen(function*() {
        if (byName.has(breaker.name)) {
          return yield* new CircuitBreakerOptionsError({
            circuit: breaker.name,
            option: "name",
            value: breaker.name,
            expected: "a name no other breaker of the registry uses"
          })
        }
        byName.set(breaker.name, breaker)
        for (const [hook, cleanups] of hooks) attach(hook, cleanups, breaker)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            byName.delete(breaker.name)
            for (const cleanups of hooks.values()) {
              cleanups.get(breaker.name)?.()
              cleanups.delete(breaker.name)
            }
          })
        )
      }),
    breakers: Effect.sync(() => Array.from(byName.values())),
    get: (name) => Effect.sync(() => Option.fromNullishOr(byName.get(name))),
    snapshots: Effect.sync(() => Array.from(byName.values(), (breaker) => breaker.view.snapshot())),
    onRegister,
    listenEach: (f) =>
      onRegister((breaker) => {
        const listener = f(breaker)
        if (listener === undefined) return
        // Removed when the breaker leaves the registry or the subscription ends: no scope per breaker.
        breaker.view.subscribe(listener)
        return () => breaker.view.unsubscribe(listener)
      })
  })
})

/**
 * Provides a new `Registry`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Registry> = Layer.effect(Registry, make)
