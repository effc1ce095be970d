/**
 * What the policies log, on TestClock: an adaptive limit's moves (a move of more than a tenth or onto a
 * bound at once, smaller ones at most once per 10 s) and a retry budget's exhaustion (once per window).
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, RetryBudget } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import * as TestClock from "effect/testing/TestClock"

interface Line {
  readonly level: string
  readonly message: unknown
  readonly annotations: Record<string, unknown>
}

/** Runs `effect` with a logger that keeps every line. */
const captured = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    const capture = Logger.make((options) => {
      lines.push({
        level: options.logLevel,
        message: Array.isArray(options.message) ? options.message[0] : options.message,
        annotations: options.fiber.getRef(References.CurrentLogAnnotations) as Record<string, unknown>
      })
    })
    yield* effect.pipe(Effect.provide(Logger.layer([capture])))
    return lines
  })

const timeout = Effect.fail({ _tag: "CircuitBreakerTimeoutError" as const })

describe("policy logs", () => {
  it.effect("an adaptive limit logs a move of more than a tenth at once, a smaller one after 10 s, its minimum at once", () =>
    Effect.gen(function*() {
      const lines = yield* captured(Effect.gen(function*() {
        const limit = yield* Bulkhead.adaptive({
          name: "mongodb_client",
          initialLimit: 100,
          minLimit: 60,
          maxLimit: 200
        })
        const drop = Effect.ignore(limit.run(timeout))
        yield* drop // 100 -> 90: the first move is logged
        yield* drop // -> 81: a tenth of 90, not more: not logged
        yield* drop // -> 72: a fifth below the last line (90): logged
        yield* TestClock.adjust("10 seconds")
        yield* drop // -> 65: less than a tenth, but 10 s after the last line: logged
        yield* drop // -> 60 (minLimit, 59 clamped): onto the bound, logged at once as a warning
        yield* drop // stays at 60: nothing to log
        assert.strictEqual(limit.stats().limit, 60)
      }))
      const moves = lines.filter((l) => l.message === Bulkhead.LIMIT_CHANGED)
      assert.deepStrictEqual(moves.map((l) => [l.annotations.from, l.annotations.to, l.level]), [
        [100, 90, "Info"],
        [90, 72, "Info"],
        [72, 65, "Info"],
        [65, 60, "Warn"]
      ])
      assert.deepStrictEqual(moves[0]!.annotations, {
        circuit: "mongodb_client",
        from: 100,
        to: 90,
        minLimit: 60,
        maxLimit: 200,
        reason: "timeout"
      })
    }))

  it.effect("a fixed bulkhead never logs a limit move", () =>
    Effect.gen(function*() {
      const lines = yield* captured(Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "c", maxConcurrent: 2 })
        for (let i = 0; i < 5; i++) yield* Effect.ignore(bulkhead.run(timeout))
      }))
      assert.deepStrictEqual(lines, [])
    }))

  it.effect("an exhausted retry budget logs one warning per window, counting the denials since the last", () =>
    Effect.gen(function*() {
      const lines = yield* captured(Effect.gen(function*() {
        // No ratio, a reserve of 1 retry per 10 s window.
        const budget = yield* RetryBudget.make({
          name: "kafka_producer",
          ratio: 0,
          minPerSecond: 0.1,
          window: "10 seconds"
        })
        const granted: Array<boolean> = []
        for (let i = 0; i < 5; i++) granted.push(yield* budget.tryRetry)
        yield* TestClock.adjust("5 seconds")
        granted.push(yield* budget.tryRetry)
        yield* TestClock.adjust("6 seconds")
        // 11 s: the first retry left the window, so one is granted again, then the next is denied.
        granted.push(yield* budget.tryRetry, yield* budget.tryRetry)
        assert.deepStrictEqual(granted, [true, false, false, false, false, false, true, false])
        assert.include(budget.stats(), { denied: 6, callsTotal: 0, retriesTotal: 2 })
      }))
      const exhausted = lines.filter((l) => l.message === RetryBudget.EXHAUSTED)
      assert.deepStrictEqual(exhausted.map((l) => [l.level, l.annotations.denied]), [["Warn", 1], ["Warn", 5]])
      assert.deepStrictEqual(exhausted[0]!.annotations, {
        circuit: "kafka_producer",
        calls: 0,
        retries: 1,
        denied: 1,
        ratio: 0,
        minPerSecond: 0.1,
        windowSeconds: 10
      })
    }))
})
