/**
 * The policies a `GuardedClient` composes around every call, on TestClock:
 * `retry ∘ hedge ∘ bulkhead ∘ breaker ∘ call`. A bulkhead's refusal is not the
 * dependency's failure, no retry while the breaker is not CLOSED, hedges only
 * for calls marked idempotent, and the policies registered in the Registry
 * under the breaker's name for the life of the client.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  Bulkhead,
  CircuitBreakerError,
  CircuitBreakerOptionsError,
  GuardedClient,
  Hedge,
  Registry,
  RetryBudget
} from "@neural-hive/resilience"
import { Cause, Effect, Exit, Fiber, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"

class ApiError extends Error {
  readonly kind: "Failed" | "Reply" | "Timeout"
  constructor(kind: "Failed" | "Reply" | "Timeout") {
    super(kind)
    this.kind = kind
  }
}

const NAME = "api_client"

/** A guarded client over nothing: the tests guard effects of their own. */
const client = (policies: GuardedClient.Options<unknown, ApiError>["policies"], failMax = 5) =>
  GuardedClient.make<unknown, ApiError>({
    breaker: { name: NAME, failMax, recoveryTimeout: "10 seconds", isFailure: (e) => (e as ApiError).kind !== "Reply" },
    connect: () => ({}),
    close: () => Promise.resolve(),
    onError: () => new ApiError("Failed"),
    onTimeout: () => new ApiError("Timeout"),
    span: { prefix: "Api", attributes: () => ({}) },
    probe: false,
    policies
  })

/** An effect that fails with `kind` each time, counting its runs. */
const failing = (kind: ApiError["kind"]) => {
  const runs = { n: 0 }
  return { runs, effect: Effect.suspend(() => (runs.n++, Effect.fail(new ApiError(kind)))) }
}

/** Runs `effect` to its end, moving TestClock 10 ms at a time. */
const settle = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    let polls = 0
    while (fiber.pollUnsafe() === undefined && polls++ < 10_000) yield* TestClock.adjust("10 millis")
    return yield* Fiber.await(fiber)
  })

/** A read whose first attempt takes 200 ms and every later one 10 ms, counting its runs. */
const slowThenFast = () => {
  const runs = { n: 0 }
  const effect = Effect.suspend(() => Effect.as(Effect.sleep(runs.n++ === 0 ? "200 millis" : "10 millis"), "v"))
  return { runs, effect }
}

const retryPolicies = (maxRetries: number) =>
  Effect.map(RetryBudget.make({ name: NAME, ratio: 0.1, minPerSecond: 1 }), (budget) => ({
    retryBudget: budget,
    retry: { budget, maxRetries, schedule: Schedule.spaced("100 millis") }
  }))

describe("GuardedClient policies", () => {
  it.effect("a bulkhead's refusal is a CircuitBreakerError (reason Bulkhead) the breaker never counts", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: NAME, maxConcurrent: 1 })
      const retries = yield* retryPolicies(2)
      const guarded = yield* client({ bulkhead, ...retries }, 2)
      const holder = yield* Effect.forkChild(guarded.guard("hold", Effect.never))
      yield* Effect.yieldNow
      for (let i = 0; i < 5; i++) {
        const exit = yield* settle(guarded.guard("get", Effect.succeed("value")))
        const refused = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Error : new Error("succeeded")
        assert.instanceOf(refused, CircuitBreakerError)
        assert.strictEqual((refused as CircuitBreakerError).reason, "Bulkhead")
        assert.instanceOf((refused as CircuitBreakerError).cause, Bulkhead.BulkheadRejectedError)
        assert.include(refused.message, "bulkhead is full")
      }
      const snapshot = guarded.breaker.view.snapshot()
      assert.strictEqual(snapshot.state, "Closed")
      assert.deepInclude(snapshot.totals, { failures: 0, rejected: 0 })
      // A refusal is not retried: one rejection per call, no retry taken from the budget.
      assert.deepInclude(bulkhead.stats(), { inFlight: 1, rejected: 5 })
      assert.strictEqual(retries.retryBudget.stats().retriesTotal, 0)
      yield* Fiber.interrupt(holder)
      assert.strictEqual(yield* guarded.guard("get", Effect.succeed("value")), "value")
    }).pipe(Effect.scoped))

  it.effect("retry: a counted failure is retried within maxRetries; a reply error and a retry: false call are not", () =>
    Effect.gen(function*() {
      const policies = yield* retryPolicies(2)
      const guarded = yield* client(policies, 10)
      const transient = failing("Failed")
      assert.isTrue(Exit.isFailure(yield* settle(guarded.guard("get", transient.effect))))
      assert.strictEqual(transient.runs.n, 3)
      const reply = failing("Reply")
      yield* settle(guarded.guard("get", reply.effect))
      assert.strictEqual(reply.runs.n, 1)
      const write = failing("Failed")
      yield* settle(guarded.guard("insert", write.effect, undefined, { retry: false }))
      assert.strictEqual(write.runs.n, 1)
      assert.deepInclude(policies.retryBudget.stats(), { callsTotal: 2, retriesTotal: 2 })
      let n = 0
      const flaky = Effect.suspend(() => n++ === 0 ? Effect.fail(new ApiError("Failed")) : Effect.succeed("ok"))
      assert.deepStrictEqual(yield* settle(guarded.guard("get", flaky)), Exit.succeed("ok"))
    }).pipe(Effect.scoped))

  it.effect("retry: none once the failure opened the breaker, and none for a call the breaker refused", () =>
    Effect.gen(function*() {
      const policies = yield* retryPolicies(3)
      const guarded = yield* client(policies, 1)
      const down = failing("Failed")
      const first = yield* settle(guarded.guard("get", down.effect))
      assert.strictEqual(down.runs.n, 1)
      assert.strictEqual(guarded.breaker.view.state(), "Open")
      assert.isTrue(Exit.isFailure(first))
      const refused = yield* settle(guarded.guard("get", down.effect))
      assert.strictEqual(down.runs.n, 1)
      assert.isTrue(Exit.isFailure(refused) && String(refused.cause).includes("CircuitBreakerError"))
      assert.strictEqual(policies.retryBudget.stats().retriesTotal, 0)
    }).pipe(Effect.scoped))

  it.effect("hedge: only a call marked idempotent gets a second attempt; each attempt goes through the bulkhead", () =>
    Effect.gen(function*() {
      const hedge = yield* Hedge.make({ name: NAME, delay: "50 millis" })
      const bulkhead = yield* Bulkhead.make({ name: NAME, maxConcurrent: 4 })
      const guarded = yield* client({ hedge, bulkhead })
      const write = slowThenFast()
      assert.deepStrictEqual(yield* settle(guarded.guard("set", write.effect)), Exit.succeed("v"))
      assert.strictEqual(write.runs.n, 1)
      const read = slowThenFast()
      assert.deepStrictEqual(
        yield* settle(guarded.guard("get", read.effect, undefined, { idempotent: true })),
        Exit.succeed("v")
      )
      assert.strictEqual(read.runs.n, 2)
      assert.deepInclude(hedge.stats(), { calls: 1, hedged: 1, hedgesWon: 1 })
      assert.deepInclude(bulkhead.stats(), { admitted: 3, inFlight: 0 })
    }).pipe(Effect.scoped))

  it.effect("hedge with no retry: each hedged call is counted in the budget the hedges come from", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: NAME, ratio: 0.5, minPerSecond: 0 })
      const hedge = yield* Hedge.make({ name: NAME, delay: "50 millis", budget })
      const guarded = yield* client({ hedge, retryBudget: budget })
      // Two calls earn one hedge (ratio 0.5): without counting them the budget would have nothing to give.
      for (let i = 0; i < 2; i++) {
        const read = slowThenFast()
        assert.deepStrictEqual(
          yield* settle(guarded.guard("get", read.effect, undefined, { idempotent: true })),
          Exit.succeed("v")
        )
      }
      assert.strictEqual(budget.stats().callsTotal, 2)
      assert.deepInclude(hedge.stats(), { calls: 2, hedged: 1, denied: 1 })
    }).pipe(Effect.scoped))

  it.effect("the policies are registered in the Registry under the breaker's name, once, for the client's scope", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.Registry
      const bulkhead = yield* Bulkhead.adaptive({ name: NAME })
      const scope = yield* Scope.make()
      const guarded = yield* client({ bulkhead }).pipe(Effect.provideService(Scope.Scope, scope))
      assert.strictEqual(guarded.policies.bulkhead, bulkhead)
      const [entry] = yield* registry.policies
      assert.strictEqual(entry?.circuit, NAME)
      assert.strictEqual(entry?.policies.bulkhead, bulkhead)
      const twice = yield* Effect.flip(registry.registerPolicies(NAME, { bulkhead }))
      assert.instanceOf(twice, CircuitBreakerOptionsError)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* registry.policies, [])
      // Without policies nothing is registered.
      yield* client(undefined)
      assert.deepStrictEqual(yield* registry.policies, [])
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))
})
