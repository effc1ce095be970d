/**
 * The per-call guard's fast path: one effect node per call and a settle frame
 * on the fiber's stack instead of `Effect.onExitPrimitive`. These check what
 * that frame must keep: interrupted calls are still counted, an interruption
 * that waits for an uninterruptible call is still delivered, a late result
 * from an older generation changes nothing, and a guarded effect built once
 * can run on many fibers at once. They hold on the public path too
 * (`npm run test:public-path`), which must give the same results.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerError, Facade, withBreaker } from "@neural-hive/resilience"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Boom } from "../support/breakers.ts"

const totals = (breaker: CircuitBreaker.CircuitBreaker) => Effect.map(breaker.snapshot, (s) => s.totals)

describe("withBreaker: the per-call guard", () => {
  it.effect("an interrupted CLOSED call is counted as ignored and the fiber ends interrupted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const fiber = yield* Effect.forkChild(Effect.never.pipe(withBreaker(breaker)))
      yield* Effect.yieldNow
      const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
      assert.isTrue(Exit.hasInterrupts(exit))
      const t = yield* totals(breaker)
      assert.deepStrictEqual([t.ignored, t.successes, t.failures], [1, 0, 0])
    }))

  it.effect("an interruption that waits for an uninterruptible call is delivered once the call is counted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      let ran = false
      const call = Effect.uninterruptible(Effect.sleep("1 second")).pipe(
        withBreaker(breaker),
        Effect.andThen(Effect.sync(() => {
          ran = true
        }))
      )
      const fiber = yield* Effect.forkChild(call)
      yield* Effect.yieldNow
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(fiber))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupting)
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.hasInterrupts(exit))
      // Nothing after the guarded call runs: the pending interruption is not lost on the way out.
      assert.isFalse(ran)
      // Effect turns the call into an interruption as it leaves the uninterruptible region: counted once, as ignored.
      const t = yield* totals(breaker)
      assert.deepStrictEqual([t.ignored, t.successes, t.failures], [1, 0, 0])
    }))

  it.effect("a failure from a call admitted before a reset counts for nothing after it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
      const late = Effect.sleep("1 second").pipe(
        Effect.andThen(Effect.fail(new Boom({ counted: true }))),
        withBreaker(breaker)
      )
      const fiber = yield* Effect.forkChild(Effect.exit(late))
      yield* Effect.yieldNow
      yield* breaker.forceOpen
      yield* breaker.reset
      yield* TestClock.adjust("1 second")
      assert.isTrue(Exit.isFailure(yield* Fiber.join(fiber)))
      // Admitted in the first CLOSED generation: with failMax 1 it would open the breaker if it counted.
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.effect("a guarded effect built once runs on 1,000 fibers at once and every run is counted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const guarded = Effect.sleep("1 second").pipe(Effect.as(1), withBreaker(breaker))
      const fibers = yield* Effect.forEach(Array.from({ length: 1_000 }), () => Effect.forkChild(guarded))
      yield* TestClock.adjust("1 second")
      const values = yield* Effect.forEach(fibers, Fiber.join)
      assert.strictEqual(values.reduce((a, b) => a + b, 0), 1_000)
      assert.strictEqual((yield* totals(breaker)).successes, 1_000)
    }))

  it.effect("both forms of withBreaker give an effect that pipes and classifies", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const dataLast = Effect.fail(new Boom({ counted: true })).pipe(withBreaker(breaker, () => false))
      const dataFirst = withBreaker(Effect.succeed(2), breaker)
      assert.isTrue(Effect.isEffect(dataLast) && Effect.isEffect(dataFirst))
      assert.strictEqual(yield* dataFirst.pipe(Effect.map((n) => n * 2)), 4)
      yield* Effect.exit(dataLast)
      const t = yield* totals(breaker)
      assert.deepStrictEqual([t.successes, t.ignored, t.failures], [1, 1, 0])
    }))

  it.effect("a rejection is a CircuitBreakerError without a captured stack", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      yield* breaker.forceOpen
      const error = yield* Effect.flip(Effect.succeed(1).pipe(withBreaker(breaker)))
      assert.instanceOf(error, CircuitBreakerError)
      assert.isFalse(Object.hasOwn(error, "stack"))
      assert.strictEqual(error.stack, `CircuitBreakerError: ${error.message}`)
    }))
})

describe("Facade: the Promise path", () => {
  it.effect("a function that throws before returning a Promise is counted at once", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "legacy_api", failMax: 1 })
      const pending = Facade.execute(breaker, () => {
        throw new Boom({ counted: true })
      })
      assert.strictEqual(breaker.view.state(), "Open")
      const error = yield* Effect.promise(() => pending.then(() => undefined, (e: unknown) => e))
      assert.instanceOf(error, Boom)
    }))

  it.effect("wrapPromise passes its arguments and counts each outcome", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "legacy_api" })
      const add = Facade.wrapPromise(breaker, (a: number, b: number) => Promise.resolve(a + b))
      assert.strictEqual(yield* Effect.promise(() => add(2, 3)), 5)
      assert.strictEqual((yield* totals(breaker)).successes, 1)
    }))
})
