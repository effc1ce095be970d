/**
 * The registry as observability uses it: breakers come and go with their scopes, hooks and
 * listeners follow them, and a name is unique while its breaker lives.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  Bulkhead,
  CircuitBreaker,
  CircuitBreakerOptionsError,
  Registry,
  RetryBudget,
  withBreaker
} from "@neural-hive/resilience"
import { Effect, Exit, Option, Scope } from "effect"
import { ok } from "../support/breakers.ts"

const inScope = <A, E>(scope: Scope.Scope, effect: Effect.Effect<A, E, Scope.Scope | Registry.Registry>) =>
  Effect.provideService(effect, Scope.Scope, scope)

describe("Registry", () => {
  it.effect("lists, finds and snapshots the live breakers; a closed scope removes its breaker and frees its name", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.Registry
      const scope = yield* Scope.make()
      yield* inScope(scope, CircuitBreaker.make({ name: "redis_client" }))
      yield* CircuitBreaker.make({ name: "kafka_producer" })
      assert.deepStrictEqual((yield* registry.breakers).map((b) => b.name), ["redis_client", "kafka_producer"])
      assert.deepStrictEqual((yield* registry.snapshots).map((s) => `${s.name}:${s.state}`), [
        "redis_client:Closed",
        "kafka_producer:Closed"
      ])
      assert.strictEqual(Option.getOrThrow(yield* registry.get("kafka_producer")).name, "kafka_producer")
      assert.isTrue(Option.isNone(yield* registry.get("mongodb_client")))
      const duplicate = yield* Effect.flip(CircuitBreaker.make({ name: "redis_client" }))
      assert.instanceOf(duplicate, CircuitBreakerOptionsError)
      assert.deepInclude(duplicate, {
        circuit: "redis_client",
        option: "name",
        value: "redis_client",
        expected: "a name no other breaker of the registry uses"
      })
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual((yield* registry.breakers).map((b) => b.name), ["kafka_producer"])
      yield* CircuitBreaker.make({ name: "redis_client" }) // the name is free again
      assert.strictEqual((yield* registry.breakers).length, 2)
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("onRegister: a hook's cleanup runs when its breaker leaves, and for the rest when the subscription ends", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.Registry
      const log: Array<string> = []
      const breakerScope = yield* Scope.make()
      yield* inScope(breakerScope, CircuitBreaker.make({ name: "a" }))
      const subscription = yield* Scope.make()
      yield* inScope(
        subscription,
        registry.onRegister((breaker) => {
          log.push(`+${breaker.name}`)
          return breaker.name === "c" ? undefined : () => log.push(`-${breaker.name}`)
        })
      )
      yield* CircuitBreaker.make({ name: "b" })
      yield* CircuitBreaker.make({ name: "c" })
      yield* Scope.close(breakerScope, Exit.void)
      assert.deepStrictEqual(log, ["+a", "+b", "+c", "-a"])
      yield* Scope.close(subscription, Exit.void)
      assert.deepStrictEqual(log, ["+a", "+b", "+c", "-a", "-b"])
      yield* CircuitBreaker.make({ name: "d" }) // no subscription any more
      assert.strictEqual(log.length, 5)
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("listenEach: attaches to every breaker (or none when f says so), detaches when it leaves or the subscription ends", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.Registry
      const calls: Array<string> = []
      const subscription = yield* Scope.make()
      const early = yield* CircuitBreaker.make({ name: "early" })
      yield* inScope(
        subscription,
        registry.listenEach((breaker) =>
          breaker.name === "quiet" ? undefined : { onCall: (outcome) => calls.push(`${breaker.name}:${outcome}`) }
        )
      )
      const lateScope = yield* Scope.make()
      const late = yield* inScope(lateScope, CircuitBreaker.make({ name: "late" }))
      const quiet = yield* CircuitBreaker.make({ name: "quiet" })
      for (const breaker of [early, late, quiet]) yield* ok.pipe(withBreaker(breaker))
      assert.deepStrictEqual(calls, ["early:success", "late:success"])
      yield* Scope.close(lateScope, Exit.void)
      yield* ok.pipe(withBreaker(late))
      assert.strictEqual(calls.length, 2) // the breaker left the registry: its listener went with it
      yield* Scope.close(subscription, Exit.void)
      yield* ok.pipe(withBreaker(early))
      assert.strictEqual(calls.length, 2)
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("policies: listed by circuit, followed by onRegisterPolicies (now and later), gone with their scope", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.Registry
      const log: Array<string> = []
      const bulkhead = yield* Bulkhead.make({ name: "temporal_client", maxConcurrent: 2 })
      const budget = yield* RetryBudget.make({ name: "kafka_producer" })
      yield* registry.registerPolicies("temporal_client", { bulkhead })
      const subscription = yield* Scope.make()
      yield* inScope(
        subscription,
        registry.onRegisterPolicies((entry) => {
          log.push(`+${entry.circuit}:${Object.keys(entry.policies).join(",")}`)
          return () => log.push(`-${entry.circuit}`)
        })
      )
      const kafkaScope = yield* Scope.make()
      yield* inScope(kafkaScope, registry.registerPolicies("kafka_producer", { retryBudget: budget }))
      assert.deepStrictEqual((yield* registry.policies).map((p) => p.circuit), ["temporal_client", "kafka_producer"])
      const twice = yield* Effect.flip(registry.registerPolicies("temporal_client", {}))
      assert.deepInclude(twice, { circuit: "temporal_client", option: "policies" })
      yield* Scope.close(kafkaScope, Exit.void)
      assert.deepStrictEqual(log, ["+temporal_client:bulkhead", "+kafka_producer:retryBudget", "-kafka_producer"])
      assert.deepStrictEqual((yield* registry.policies).map((p) => p.circuit), ["temporal_client"])
      yield* Scope.close(subscription, Exit.void)
      assert.deepStrictEqual(log.at(-1), "-temporal_client")
      // The breakers' own registrations are apart: a breaker of the same name is no conflict.
      yield* CircuitBreaker.make({ name: "temporal_client" })
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))
})
