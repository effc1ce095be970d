/**
 * The Promise facade's timing and timeouts: calls are timed on the breaker's clock when something
 * uses durations (slow calls, a listener), and `wrapPromise` bounds a call by the breaker's
 * `callTimeout` as `execute` does. Written for behaviour a mutation run showed unpinned
 * (docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerTimeoutError, Facade } from "@neural-hive/resilience"
import { Effect } from "effect"
import { TestClock } from "effect/testing"

const settle = (promise: Promise<unknown>) => Effect.promise(() => promise.then((v) => v, (e: unknown) => e))

/** A Promise the test resolves. */
const later = <A>() => {
  let resolve!: (value: A) => void
  const promise = new Promise<A>((r) => resolve = r)
  return { promise, resolve }
}

describe("Facade: durations on the breaker's clock", () => {
  it.effect("a call slower than slowCallThreshold counts as slow, through execute and wrapPromise", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 5, slowCallThreshold: "1 second" })
      const first = later<string>()
      const executed = Facade.execute(breaker, () => first.promise)
      const second = later<string>()
      const wrapped = Facade.wrapPromise(breaker, () => second.promise)()
      yield* TestClock.adjust("2 seconds")
      first.resolve("a")
      second.resolve("b")
      assert.deepStrictEqual([yield* settle(executed), yield* settle(wrapped)], ["a", "b"])
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual([snapshot.totals.slow, snapshot.totals.successes], [2, 0])
    }))

  it.effect("an untimed call reports NaN to an onCall listener added while it ran; a timed one its duration", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 5 })
      const seen: Array<number> = []
      const early = later<string>()
      const call = Facade.execute(breaker, () => early.promise)
      yield* breaker.listen({ onCall: (_, millis) => seen.push(millis) })
      yield* TestClock.adjust("1 second")
      early.resolve("a")
      yield* settle(call)
      const next = later<string>()
      const timed = Facade.wrapPromise(breaker, () => next.promise)()
      yield* TestClock.adjust("1 second")
      next.resolve("b")
      yield* settle(timed)
      assert.strictEqual(seen.length, 2)
      assert.isNaN(seen[0])
      assert.strictEqual(seen[1], 1000)
    }))
})

describe("Facade.wrapPromise with a callTimeout", () => {
  it.live("the value reaches the caller; a call that hangs is ended by the timeout and counted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 5, callTimeout: "50 millis" })
      const echo = Facade.wrapPromise(breaker, (x: number) => Promise.resolve(x * 2))
      assert.strictEqual(yield* settle(echo(21)), 42)
      const hang = Facade.wrapPromise(breaker, () => new Promise<never>(() => undefined))
      const error = yield* settle(hang())
      assert.instanceOf(error, CircuitBreakerTimeoutError)
      assert.strictEqual((yield* breaker.snapshot).totals.failures, 1)
    }))
})
