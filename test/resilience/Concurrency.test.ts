import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"

describe("CircuitBreaker: concurrency", () => {
  for (const permits of [1, 3]) {
    it.effect(`10,000 fibers on a HALF_OPEN breaker admit exactly ${permits} probe(s)`, () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "c",
          failMax: 1,
          recoveryTimeout: "1 second",
          halfOpen: { permits }
        })
        yield* Effect.exit(Effect.fail("down").pipe(withBreaker(breaker)))
        yield* TestClock.adjust("1 second")
        const gate = yield* Deferred.make<void>()
        let ran = 0
        const call = Effect.suspend(() => {
          ran++
          return Deferred.await(gate)
        }).pipe(withBreaker(breaker), Effect.exit)
        const all = yield* Effect.forEach(Array.from({ length: 10_000 }), () => call, { concurrency: "unbounded" })
          .pipe(Effect.forkChild({ startImmediately: true }))
        yield* Effect.yieldNow
        assert.strictEqual(ran, permits)
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Fiber.await(all)
        assert.isTrue(Exit.isSuccess(exits))
        if (!Exit.isSuccess(exits)) return
        assert.strictEqual(exits.value.filter(Exit.isSuccess).length, permits)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.totals.rejected, 10_000 - permits)
        assert.strictEqual(snapshot.state, "Closed")
      }))
  }

  it.effect("no lost counts when 10,000 calls complete concurrently", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 100_000, isFailure: (e) => e === "counted" })
      const gate = yield* Deferred.make<void>()
      const calls = Array.from({ length: 10_000 }, (_, i) =>
        Deferred.await(gate).pipe(
          Effect.andThen(i % 3 === 0 ? Effect.fail("counted") : i % 3 === 1 ? Effect.fail("ignored") : Effect.void),
          withBreaker(breaker),
          Effect.exit
        ))
      const fiber = yield* Effect.forkChild(Effect.all(calls, { concurrency: "unbounded" }), { startImmediately: true })
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.await(fiber)
      const { totals } = yield* breaker.snapshot
      assert.strictEqual(totals.failures, 3334)
      assert.strictEqual(totals.ignored, 3333)
      assert.strictEqual(totals.successes, 3333)
    }))
})
