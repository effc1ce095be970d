/**
 * The bulkhead on TestClock: slots, the queue and its timeout, rejections with their hints, release on
 * success, failure, defect and interruption, and composition with the breaker.
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, CircuitBreaker, CircuitBreakerOptionsError, withBreaker } from "@neural-hive/resilience"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/testing/TestClock"

/** A call that runs until `gate` opens, then answers `value`. */
const held = (gate: Deferred.Deferred<void>, value: string) => Effect.as(Deferred.await(gate), value)

const rejection = <A, E>(exit: Exit.Exit<A, E>) => {
  assert.isTrue(Exit.isFailure(exit))
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.instanceOf((error as any)?.error, Bulkhead.BulkheadRejectedError)
  return (error as any).error as Bulkhead.BulkheadRejectedError
}

describe("Bulkhead", () => {
  it.effect("admits maxConcurrent at once, queues maxQueued, rejects the next at once (QueueFull)", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "temporal_client", maxConcurrent: 2, maxQueued: 1 })
      const gate = yield* Deferred.make<void>()
      const running = yield* Effect.forEach([0, 1, 2], (i) => Effect.forkChild(bulkhead.run(held(gate, `c${i}`))))
      yield* Effect.yieldNow
      assert.deepInclude(bulkhead.stats(), { inFlight: 2, queued: 1, admitted: 2, rejected: 0 })
      const refused = rejection(yield* Effect.exit(bulkhead.run(Effect.succeed("late"))))
      assert.strictEqual(refused.reason, "QueueFull")
      assert.strictEqual(refused.circuit, "temporal_client")
      assert.strictEqual(refused.inFlight, 2)
      assert.strictEqual(refused.queued, 1)
      assert.include(refused.message, "QueueFull")
      yield* Deferred.succeed(gate, void 0)
      const results = yield* Effect.forEach(running, Fiber.join)
      assert.deepStrictEqual(results, ["c0", "c1", "c2"])
      assert.deepInclude(bulkhead.stats(), { inFlight: 0, queued: 0, admitted: 3, rejected: 1, queueTimeouts: 0 })
    }))

  it.effect("a queued call waits at most queueTimeout (Clock), then is rejected with QueueTimeout", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueued: 5, queueTimeout: "2 seconds" })
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.forkChild(bulkhead.run(held(gate, "first")))
      const waiting = yield* Effect.forkChild(Effect.exit(bulkhead.run(Effect.succeed("second"))))
      yield* TestClock.adjust("1999 millis")
      assert.strictEqual(bulkhead.stats().queued, 1)
      yield* TestClock.adjust("1 millis")
      const refused = rejection(yield* Fiber.join(waiting))
      assert.strictEqual(refused.reason, "QueueTimeout")
      assert.deepInclude(bulkhead.stats(), { inFlight: 1, queued: 0, rejected: 1, queueTimeouts: 1 })
      yield* Deferred.succeed(gate, void 0)
      assert.strictEqual(yield* Fiber.join(first), "first")
      assert.strictEqual(bulkhead.stats().inFlight, 0)
    }))

  it.effect("slots are handed over in arrival order; the count never exceeds maxConcurrent", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "c", maxConcurrent: 2, maxQueued: 10, queueTimeout: "1 minute" })
      const order: Array<number> = []
      let peak = 0
      const call = (i: number) =>
        bulkhead.run(Effect.gen(function*() {
          peak = Math.max(peak, bulkhead.stats().inFlight)
          yield* Effect.sleep("10 millis")
          order.push(i)
        }))
      const fibers = yield* Effect.forEach([0, 1, 2, 3, 4, 5], (i) => Effect.forkChild(call(i)))
      yield* TestClock.adjust("1 second")
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(order, [0, 1, 2, 3, 4, 5])
      assert.strictEqual(peak, 2)
      assert.deepInclude(bulkhead.stats(), { inFlight: 0, queued: 0, admitted: 6, rejected: 0 })
    }))

  it.effect("a slot is released on failure, on defect and on interruption, and a waiter's interruption leaves the queue", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "c", maxConcurrent: 1, maxQueued: 1, queueTimeout: "1 minute" })
      assert.isTrue(Exit.isFailure(yield* Effect.exit(bulkhead.run(Effect.fail("boom")))))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(bulkhead.run(Effect.die("defect")))))
      assert.strictEqual(bulkhead.stats().inFlight, 0)
      const running = yield* Effect.forkChild(bulkhead.run(Effect.never))
      const waiting = yield* Effect.forkChild(bulkhead.run(Effect.succeed("w")))
      yield* Effect.yieldNow
      assert.deepInclude(bulkhead.stats(), { inFlight: 1, queued: 1 })
      yield* Fiber.interrupt(waiting)
      assert.deepInclude(bulkhead.stats(), { inFlight: 1, queued: 0 })
      yield* Fiber.interrupt(running)
      assert.deepInclude(bulkhead.stats(), { inFlight: 0, queued: 0 })
      assert.strictEqual(yield* bulkhead.run(Effect.succeed("free")), "free")
    }))

  it.effect("retryAfter: the recent mean call time per round of calls ahead", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "c", maxConcurrent: 1, queueTimeout: "5 seconds" })
      // Before any call finished, the hint is queueTimeout.
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.forkChild(bulkhead.run(held(gate, "x")))
      yield* Effect.yieldNow
      assert.strictEqual(rejection(yield* Effect.exit(bulkhead.run(Effect.void))).retryAfterMillis, 5_000)
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(first)
      // Calls of 100 ms pull the mean towards 100 ms.
      for (let i = 0; i < 40; i++) {
        const call = yield* Effect.forkChild(bulkhead.run(Effect.sleep("100 millis")))
        yield* TestClock.adjust("100 millis")
        yield* Fiber.join(call)
      }
      const busy = yield* Effect.forkChild(bulkhead.run(Effect.never))
      yield* Effect.yieldNow
      const hint = rejection(yield* Effect.exit(bulkhead.run(Effect.void))).retryAfterMillis
      assert.isAtLeast(hint, 100)
      assert.isAtMost(hint, 110)
      yield* Fiber.interrupt(busy)
    }))

  it.effect("bad options are a CircuitBreakerOptionsError naming the option", () =>
    Effect.gen(function*() {
      const tries: Array<[Partial<Bulkhead.Options>, string]> = [
        [{ name: "" }, "name"],
        [{ maxConcurrent: 0 }, "maxConcurrent"],
        [{ maxConcurrent: 1.5 }, "maxConcurrent"],
        [{ maxQueued: -1 }, "maxQueued"],
        [{ queueTimeout: "soon" as never }, "queueTimeout"],
        [{ queueTimeout: "Infinity" as never }, "queueTimeout"]
      ]
      for (const [patch, option] of tries) {
        const error = yield* Effect.flip(Bulkhead.make({ name: "c", maxConcurrent: 2, ...patch } as Bulkhead.Options))
        assert.instanceOf(error, CircuitBreakerOptionsError)
        assert.strictEqual(error.option, option, JSON.stringify(patch))
      }
    }))

  it.effect("outside the breaker: a bulkhead rejection never reaches the breaker, so it is not counted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
      const bulkhead = yield* Bulkhead.make({ name: "kafka_producer", maxConcurrent: 1 })
      const busy = yield* Effect.forkChild(Effect.never.pipe(withBreaker(breaker), Bulkhead.withBulkhead(bulkhead)))
      yield* Effect.yieldNow
      const refused = yield* Effect.flip(Effect.succeed(1).pipe(withBreaker(breaker), Bulkhead.withBulkhead(bulkhead)))
      assert.strictEqual(refused._tag, "BulkheadRejectedError")
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* Fiber.interrupt(busy)
      assert.strictEqual(yield* Effect.succeed(2).pipe(withBreaker(breaker), Bulkhead.withBulkhead(bulkhead)), 2)
    }))
})
