/**
 * The retry budget and `withRetry` on TestClock: the window, the reserve, the ratio, the breaker's
 * state, retryable errors, and the amplification during a full outage (naive retries against the budget).
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerOptionsError, Remote, RetryBudget, withBreaker } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/testing/TestClock"

/** A dependency that fails every attempt, counting them. */
const dead = () => {
  const counter = { attempts: 0 }
  const call = Effect.suspend(() => {
    counter.attempts++
    return Effect.fail("ECONNREFUSED" as const)
  })
  return { counter, call }
}

const noDelay = Schedule.spaced("0 millis")

/** 100 calls per second for 20 s to a dependency that refuses every attempt: attempts per call. */
const offer = (retry: (call: Effect.Effect<never, "ECONNREFUSED">) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const { call, counter } = dead()
    for (let tick = 0; tick < 2_000; tick++) {
      yield* Effect.ignore(retry(call))
      yield* TestClock.adjust("10 millis")
    }
    return counter.attempts / 2_000
  })

describe("RetryBudget", () => {
  it.effect("the reserve allows minPerSecond x window retries with no calls; then it is exhausted", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "c", ratio: 0.1, minPerSecond: 1, window: "10 seconds" })
      const granted: Array<boolean> = []
      for (let i = 0; i < 12; i++) granted.push(yield* budget.tryRetry)
      assert.deepStrictEqual(granted.filter(Boolean).length, 10)
      assert.deepInclude(budget.stats(), { retries: 10, available: 0, denied: 2 })
    }))

  it.effect("each call adds ratio of a retry; counts older than the window no longer count", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "c", ratio: 0.5, minPerSecond: 0, window: "10 seconds" })
      for (let i = 0; i < 4; i++) yield* budget.recordCall
      assert.deepInclude(budget.stats(), { calls: 4, available: 2 })
      assert.isTrue(yield* budget.tryRetry)
      assert.isTrue(yield* budget.tryRetry)
      assert.isFalse(yield* budget.tryRetry)
      // 10 s later the calls and retries of the first bucket have left the window.
      yield* TestClock.adjust("10 seconds")
      yield* budget.recordCall
      yield* budget.recordCall
      assert.deepInclude(budget.stats(), { calls: 2, retries: 0, available: 1 })
    }))

  it.effect("shared (Remote.shareBudget): the fleet's calls and retries count, one reserve for the fleet", () =>
    Effect.gen(function*() {
      const here = yield* RetryBudget.make({ name: "c", ratio: 0.1, minPerSecond: 1, window: "10 seconds" })
      const there = yield* RetryBudget.make({ name: "c", ratio: 0.1, minPerSecond: 1, window: "10 seconds" })
      for (let i = 0; i < 50; i++) yield* there.recordCall
      for (let i = 0; i < 3; i++) yield* there.tryRetry
      // Alone: the reserve (1/s over 10 s). With the other replica's window: 0.1 x 50 calls + 10 - 3 retries.
      assert.strictEqual(here.stats().available, 10)
      assert.deepStrictEqual(Remote.budgetWindow(there), { calls: 50, retries: 3 })
      Remote.shareBudget(here, { ...Remote.budgetWindow(there), replicas: 1 })
      assert.deepInclude(here.stats(), { calls: 0, retries: 0, available: 12 })
      assert.deepStrictEqual(here.stats().shared, { calls: 50, retries: 3, replicas: 1 })
      // The other replica spent the reserve: the fleet's reserve, so this one has only the ratio's share left.
      Remote.shareBudget(here, { calls: 50, retries: 13, replicas: 1 })
      assert.strictEqual(here.stats().available, 2)
      assert.isTrue(yield* here.tryRetry)
      assert.isTrue(yield* here.tryRetry)
      assert.isFalse(yield* here.tryRetry)
      // Its own window is what it publishes: its retries, not the other replica's.
      assert.deepStrictEqual(Remote.budgetWindow(here), { calls: 0, retries: 2 })
      // Counting alone again (the backend lost its peers): the local reserve is back.
      Remote.shareBudget(here, undefined)
      assert.deepInclude(here.stats(), { available: 8, shared: undefined })
    }))

  it("Remote's budget functions need a budget made by RetryBudget.make", () => {
    const fake = { name: "c", recordCall: Effect.void, tryRetry: Effect.succeed(true), stats: () => ({}) as never }
    assert.throws(() => Remote.budgetWindow(fake), /Remote.budgetWindow needs a budget made by RetryBudget.make/)
  })

  it.effect("bad options are a CircuitBreakerOptionsError naming the option", () =>
    Effect.gen(function*() {
      const tries: Array<[Partial<RetryBudget.Options>, string]> = [
        [{ name: " " }, "name"],
        [{ ratio: 1.5 }, "ratio"],
        [{ ratio: -0.1 }, "ratio"],
        [{ minPerSecond: Number.NaN }, "minPerSecond"],
        [{ window: "1 millis" }, "window"],
        [{ window: "never" as never }, "window"]
      ]
      for (const [patch, option] of tries) {
        const error = yield* Effect.flip(RetryBudget.make({ name: "c", ...patch } as RetryBudget.Options))
        assert.instanceOf(error, CircuitBreakerOptionsError)
        assert.strictEqual(error.option, option, JSON.stringify(patch))
      }
    }))
})

describe("withRetry", () => {
  it.effect("retries a transient failure up to maxRetries, with the schedule's delays (TestClock)", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "c" })
      let attempts = 0
      const flaky = Effect.suspend(() => ++attempts < 3 ? Effect.fail("timeout") : Effect.succeed("ok"))
      const fiber = yield* Effect.forkChild(
        flaky.pipe(RetryBudget.withRetry({ budget, maxRetries: 2, schedule: Schedule.spaced("1 second") }))
      )
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(attempts, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(attempts, 2)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
      assert.deepInclude(budget.stats(), { calls: 1, retries: 2 })
    }))

  it.effect("never more than maxRetries; an error isRetryable refuses is not retried", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "c", minPerSecond: 100 })
      const { call, counter } = dead()
      assert.strictEqual(
        yield* Effect.flip(call.pipe(RetryBudget.withRetry({ budget, maxRetries: 3, schedule: noDelay }))),
        "ECONNREFUSED"
      )
      assert.strictEqual(counter.attempts, 4)
      const other = dead()
      yield* Effect.flip(
        other.call.pipe(RetryBudget.withRetry({ budget, schedule: noDelay, isRetryable: () => false }))
      )
      assert.strictEqual(other.counter.attempts, 1)
    }))

  it.effect("no retry while the breaker is not CLOSED, and never of its rejection", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "kafka_producer", minPerSecond: 100 })
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 2, recoveryTimeout: "1 minute" })
      const { call, counter } = dead()
      const guarded = call.pipe(
        withBreaker(breaker),
        RetryBudget.withRetry({ budget, breaker, maxRetries: 5, schedule: noDelay })
      )
      // The first attempt and one retry trip the breaker (failMax 2); the next retry would be refused: none is made.
      const error = yield* Effect.flip(guarded)
      assert.strictEqual(counter.attempts, 2)
      assert.strictEqual(yield* breaker.state, "Open")
      assert.strictEqual(error, "ECONNREFUSED")
      const rejected = yield* Effect.flip(guarded)
      assert.strictEqual((rejected as any)._tag, "CircuitBreakerError")
      assert.strictEqual(counter.attempts, 2)
    }))

  it.effect("a full outage: naive retries triple the load, the budget keeps it at most 1.1x plus the reserve", () =>
    Effect.gen(function*() {
      const naive = yield* offer((call) => Effect.retry(call, { times: 2 }))
      const budget = yield* RetryBudget.make({ name: "c", ratio: 0.1, minPerSecond: 1, window: "10 seconds" })
      const budgeted = yield* offer((call) =>
        call.pipe(RetryBudget.withRetry({ budget, maxRetries: 2, schedule: noDelay }))
      )
      assert.strictEqual(naive, 3)
      // The reserve adds at most minPerSecond x window per window: 1 x 10 over 1,000 calls a window.
      assert.isAtMost(budgeted, 1.11)
      assert.isAtLeast(budgeted, 1.09)
      assert.isAbove(budget.stats().denied, 1_500)
    }))
})
