import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerError, CircuitBreakerTimeoutError, Facade } from "@neural-hive/resilience"
import { Effect } from "effect"
import { TestClock } from "effect/testing"

describe("Facade: code outside Effect", () => {
  it.effect("wrapSync throws CircuitBreakerError while open, rethrows the function's errors, closes after a probe", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "sync_dep", failMax: 2, recoveryTimeout: "5 seconds" })
      let healthy = false
      let runs = 0
      const read = Facade.wrapSync(breaker, (key: string) => {
        runs++
        if (!healthy) throw new Error(`cannot read ${key}`)
        return key.toUpperCase()
      })
      assert.throws(() => read("a"), /cannot read a/)
      assert.throws(() => read("a"), /cannot read a/)
      assert.throws(() => read("a"), CircuitBreakerError)
      assert.strictEqual(runs, 2)
      healthy = true
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(read("b"), "B")
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.effect("wrapSync: isFailure keeps caller errors from counting", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "sync_dep", failMax: 1 })
      const parse = Facade.wrapSync(breaker, (s: string) => JSON.parse(s), {
        isFailure: (e) => !(e instanceof SyntaxError)
      })
      assert.throws(() => parse("{"), SyntaxError)
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.live("execute rejects with CircuitBreakerError while open and passes an AbortSignal aborted on timeout", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "promise_dep", failMax: 1, callTimeout: "20 millis" })
      let aborted = false
      const hang = () =>
        Facade.execute(breaker, (signal) =>
          new Promise<string>((_, reject) => {
            signal.addEventListener("abort", () => {
              aborted = true
              reject(new Error("aborted"))
            })
          }))
      const timeout = yield* Effect.promise(() => hang().then(() => undefined, (e: unknown) => e))
      assert.instanceOf(timeout, CircuitBreakerTimeoutError)
      assert.strictEqual((timeout as CircuitBreakerTimeoutError).circuit, breaker.name)
      assert.isTrue(aborted)
      const ok = Facade.wrapPromise(breaker, (x: number) => Promise.resolve(x * 2))
      const rejected = yield* Effect.promise(() => ok(2).then(() => undefined, (e: unknown) => e))
      assert.instanceOf(rejected, CircuitBreakerError)
      assert.strictEqual((rejected as CircuitBreakerError).reason, "Open")
    }))

  it.live("wrapPromise without callTimeout: counts rejections, ignores caller errors, fails fast while open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "promise_dep", failMax: 2, recoveryTimeout: "1 minute" })
      let runs = 0
      const call = Facade.wrapPromise(
        breaker,
        (kind: "ok" | "down" | "bad") => {
          runs++
          return kind === "ok"
            ? Promise.resolve("fine")
            : Promise.reject(kind === "down" ? new Error("ECONNREFUSED") : new RangeError("bad input"))
        },
        { isFailure: (e) => !(e instanceof RangeError) }
      )
      const settle = (p: Promise<string>) => Effect.promise(() => p.then((v) => v, (e: unknown) => e))
      assert.strictEqual(yield* settle(call("ok")), "fine")
      assert.instanceOf(yield* settle(call("bad")), RangeError)
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.instanceOf(yield* settle(call("down")), Error)
      assert.instanceOf(yield* settle(call("down")), Error)
      assert.strictEqual(yield* breaker.state, "Open")
      const rejected = yield* settle(call("ok"))
      assert.instanceOf(rejected, CircuitBreakerError)
      assert.strictEqual(runs, 4)
      const { totals } = yield* breaker.snapshot
      assert.deepStrictEqual([totals.successes, totals.ignored, totals.failures, totals.rejected], [1, 1, 2, 1])
    }))
})
