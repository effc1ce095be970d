/**
 * Hedging on TestClock: the delay (fixed, learnt from the latencies), early answers, the budget, the
 * loser's interruption, and a slow tail's p99 with and without hedging.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreakerOptionsError, Hedge, RetryBudget } from "@neural-hive/resilience"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/testing/TestClock"

/** Runs `effect` to its end on TestClock, a millisecond at a time: its result and how long it took. */
const timedRun = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    let polls = 0
    while (fiber.pollUnsafe() === undefined && polls++ < 100_000) yield* TestClock.adjust("1 millis")
    const value = yield* Fiber.join(fiber)
    return { value, millis: (yield* Clock.currentTimeMillis) - start }
  })

/** Attempts that take the given times, in order (then the last one again), counting starts and interruptions. */
const attempts = (times: ReadonlyArray<number>) => {
  const log = { started: 0, interrupted: 0 }
  const call = Effect.suspend(() => {
    const n = log.started++
    const millis = times[Math.min(n, times.length - 1)]!
    return Effect.as(Effect.sleep(`${millis} millis`), `attempt ${n}`).pipe(
      Effect.onInterrupt(() => Effect.sync(() => void log.interrupted++))
    )
  })
  return { log, call }
}

/** A fixed sequence: every twentieth reply is slow (5 %), the others take 2 ms. */
const latency = (n: number) => (n * 7) % 20 === 3 ? 202 : 2

/** 1,000 reads one after another, with or without hedging: p99 (ms) and the attempts made. */
const tail = (hedge: Hedge.Hedge | undefined) =>
  Effect.gen(function*() {
    let n = 0
    const call = Effect.suspend(() => Effect.sleep(`${latency(n++)} millis`))
    const times: Array<number> = []
    for (let i = 0; i < 1_000; i++) {
      times.push((yield* timedRun(hedge === undefined ? call : call.pipe(Hedge.withHedge(hedge)))).millis)
    }
    times.sort((a, b) => a - b)
    return { p99: times[989]!, attempts: n }
  })

describe("Hedge", () => {
  it.effect("a fixed delay: the slow first attempt is hedged, the faster hedge's answer kept, the first interrupted", () =>
    Effect.gen(function*() {
      const hedge = yield* Hedge.make({ name: "redis_client", delay: "50 millis" })
      const { call, log } = attempts([200, 10])
      const { millis, value } = yield* timedRun(call.pipe(Hedge.withHedge(hedge)))
      assert.strictEqual(value, "attempt 1")
      assert.strictEqual(millis, 60)
      assert.deepStrictEqual(log, { started: 2, interrupted: 1 })
      assert.deepInclude(hedge.stats(), { calls: 1, hedged: 1, hedgesWon: 1 })
    }))

  it.effect("an attempt that ends before the delay is the answer, success or failure: no hedge", () =>
    Effect.gen(function*() {
      const hedge = yield* Hedge.make({ name: "c", delay: "50 millis" })
      const { call, log } = attempts([49])
      assert.strictEqual((yield* timedRun(call.pipe(Hedge.withHedge(hedge)))).millis, 49)
      const failed = yield* Effect.flip(Effect.fail("ECONNREFUSED").pipe(Hedge.withHedge(hedge)))
      assert.strictEqual(failed, "ECONNREFUSED")
      assert.strictEqual(log.started, 1)
      assert.deepInclude(hedge.stats(), { calls: 2, hedged: 0 })
    }))

  it.effect("the first attempt still wins when the hedge is slower", () =>
    Effect.gen(function*() {
      const hedge = yield* Hedge.make({ name: "c", delay: "50 millis" })
      const { call, log } = attempts([80, 100])
      const { millis, value } = yield* timedRun(call.pipe(Hedge.withHedge(hedge)))
      assert.deepStrictEqual([value, millis], ["attempt 0", 80])
      assert.deepStrictEqual(log, { started: 2, interrupted: 1 })
      assert.deepInclude(hedge.stats(), { hedged: 1, hedgesWon: 0 })
    }))

  it.effect("the learnt delay: no hedge before 20 latencies are known, then the percentile of the recent ones", () =>
    Effect.gen(function*() {
      const hedge = yield* Hedge.make({ name: "c", percentile: 0.9 })
      assert.strictEqual(hedge.stats().delayMillis, Number.POSITIVE_INFINITY)
      const { call } = attempts([...Array.from({ length: 18 }, () => 10), 30, 30])
      for (let i = 0; i < 20; i++) yield* timedRun(call.pipe(Hedge.withHedge(hedge)))
      assert.strictEqual(hedge.stats().hedged, 0)
      assert.strictEqual(hedge.stats().delayMillis, 30)
    }))

  it.effect("with a budget: each hedge takes a retry; none is sent once it is exhausted", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "c", ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
      const hedge = yield* Hedge.make({ name: "c", delay: "5 millis", budget })
      const { call, log } = attempts([50])
      yield* timedRun(call.pipe(Hedge.withHedge(hedge)))
      yield* timedRun(call.pipe(Hedge.withHedge(hedge)))
      assert.strictEqual(log.started, 3)
      assert.deepInclude(hedge.stats(), { calls: 2, hedged: 1, denied: 1 })
    }))

  it.effect("bad options are a CircuitBreakerOptionsError naming the option", () =>
    Effect.gen(function*() {
      const tries: Array<[Partial<Hedge.Options>, string]> = [
        [{ name: "" }, "name"],
        [{ delay: "whenever" as never }, "delay"],
        [{ percentile: 0.2 }, "percentile"],
        [{ percentile: 1 }, "percentile"],
        [{ minDelay: "Infinity" as never }, "minDelay"],
        [{ samples: 5 }, "samples"]
      ]
      for (const [patch, option] of tries) {
        const error = yield* Effect.flip(Hedge.make({ name: "c", ...patch } as Hedge.Options))
        assert.instanceOf(error, CircuitBreakerOptionsError)
        assert.strictEqual(error.option, option, JSON.stringify(patch))
      }
    }))

  it.effect("a slow tail (5 % of replies 200 ms late): p99 cut from 202 ms to under 10 ms for about 5 % extra calls", () =>
    Effect.gen(function*() {
      const plain = yield* tail(undefined)
      const hedge = yield* Hedge.make({ name: "redis_client", percentile: 0.9 })
      const hedged = yield* tail(hedge)
      assert.strictEqual(plain.p99, 202)
      assert.isBelow(hedged.p99, 10)
      assert.isAtMost(hedged.attempts / 1_000, 1.06)
      assert.isAtMost(hedged.p99 * 2, plain.p99)
    }))
})
