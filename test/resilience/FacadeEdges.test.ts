/**
 * The Promise facade's less travelled paths: a function that throws before returning a Promise,
 * and calls through `execute` with a `callTimeout` that succeed or fail on their own.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Facade } from "@neural-hive/resilience"
import { Effect } from "effect"

const settle = (promise: Promise<unknown>) => Effect.promise(() => promise.then((v) => v, (e: unknown) => e))

describe("Facade.execute", () => {
  it.live("a function that throws instead of returning a Promise rejects with its error, counted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      const boom = new Error("thrown synchronously")
      const seen = yield* settle(Facade.execute(breaker, () => {
        throw boom
      }))
      assert.strictEqual(seen, boom)
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.live("with a callTimeout: the value, or the function's own error, reaches the caller", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 2, callTimeout: "1 minute" })
      assert.strictEqual(yield* settle(Facade.execute(breaker, () => Promise.resolve(42))), 42)
      const down = new Error("ECONNREFUSED")
      assert.strictEqual(yield* settle(Facade.execute(breaker, () => Promise.reject(down))), down)
      assert.deepStrictEqual(
        [(yield* breaker.snapshot).totals.successes, (yield* breaker.snapshot).totals.failures],
        [1, 1]
      )
    }))

  it.live("wrapPromise and wrapSync hand their arguments to the function", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c" })
      const add = Facade.wrapPromise(breaker, (a: number, b: number) => Promise.resolve(a + b))
      assert.strictEqual(yield* settle(add(2, 3)), 5)
      assert.strictEqual(Facade.wrapSync(breaker, (a: number, b: number) => a * b)(2, 3), 6)
      assert.strictEqual((yield* breaker.snapshot).totals.successes, 2)
    }))
})
