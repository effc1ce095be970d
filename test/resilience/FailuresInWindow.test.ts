/**
 * `TripPolicy.failuresInWindow`: `failures` counted failures within the last `window` open the
 * breaker. Its counter with plain times (the window's edges, a success, `reset`), a breaker driven
 * by `TestClock`, its checks, and its YAML and environment keys.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerOptionsError, ResilienceConfig, TripPolicy } from "@neural-hive/resilience"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { state, trip } from "../support/breakers.ts"

describe("TripPolicy.failuresInWindow: the counter", () => {
  it("opens on the failures-th failure within the window; one exactly window old no longer counts", () => {
    const counter = TripPolicy.failuresInWindow({ failures: 3, window: "60 seconds" }).counter()
    assert.isFalse(counter.failure(0))
    assert.isFalse(counter.failure(30_000))
    // The first failure is exactly 60 s old at 60_000: outside the window.
    assert.isFalse(counter.failure(60_000))
    assert.strictEqual(counter.failures(60_000), 2)
    // At 89_999 the failure of 30_000 is 59.999 s old: three within the window.
    assert.isTrue(counter.failure(89_999))
    assert.strictEqual(counter.failures(89_999), 3)
  })

  it("a failure just inside the window counts; failures age out of the count", () => {
    const counter = TripPolicy.failuresInWindow({ failures: 2, window: 1_000 }).counter()
    counter.failure(0)
    assert.isTrue(counter.failure(999))
    counter.reset()
    assert.strictEqual(counter.failures(999), 0)
    counter.failure(0)
    counter.failure(500)
    assert.strictEqual(counter.failures(999), 2)
    assert.strictEqual(counter.failures(1_000), 1)
    assert.strictEqual(counter.failures(1_500), 0)
  })

  it("a success forgets nothing: failures leave the count only by ageing out", () => {
    const counter = TripPolicy.failuresInWindow({ failures: 3, window: 10_000 }).counter()
    counter.failure(0)
    counter.failure(1_000)
    assert.isFalse(counter.success(2_000) === true)
    assert.strictEqual(counter.failures(2_000), 2)
    assert.isTrue(counter.failure(3_000))
  })

  it("one failure in the window opens when failures is 1", () => {
    assert.isTrue(TripPolicy.failuresInWindow({ failures: 1, window: 1 }).counter().failure(0))
  })
})

describe("TripPolicy.failuresInWindow: a breaker on the TestClock", () => {
  it.effect("failures spread wider than the window keep it closed; the same count within it opens it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        policy: TripPolicy.failuresInWindow({ failures: 3, window: "10 seconds" })
      })
      yield* trip(breaker, 2)
      yield* TestClock.adjust("10 seconds")
      yield* trip(breaker, 1)
      assert.strictEqual(yield* state(breaker), "Closed")
      assert.strictEqual((yield* breaker.snapshot).failures, 1)
      yield* TestClock.adjust("9 seconds")
      yield* trip(breaker, 1)
      assert.strictEqual(yield* state(breaker), "Closed")
      yield* trip(breaker, 1)
      assert.strictEqual(yield* state(breaker), "Open")
    }))

  it("declares what it needs: the Clock; no count a fleet may share", () => {
    const policy = TripPolicy.failuresInWindow({ failures: 5, window: "1 minute" })
    assert.deepStrictEqual([policy.usesClock, policy.shareableCount, policy.windowMillis], [true, undefined, 60_000])
  })
})

describe("TripPolicy.failuresInWindow: checks", () => {
  const cases: ReadonlyArray<readonly [TripPolicy.FailuresInWindowOptions, string, unknown, string]> = [
    [{ failures: 0, window: 1_000 }, "policy.failures", 0, "an integer between 1 and 10000"],
    [{ failures: 10_001, window: 1_000 }, "policy.failures", 10_001, "an integer between 1 and 10000"],
    [{ failures: 2.5, window: 1_000 }, "policy.failures", 2.5, "an integer between 1 and 10000"],
    [{ failures: 5, window: 0 }, "policy.window", 0, "a finite duration > 0 (e.g. \"1 minute\")"],
    [{ failures: 5, window: "a while" as never }, "policy.window", NaN, "a finite duration > 0 (e.g. \"1 minute\")"]
  ]
  for (const [options, option, value, expected] of cases) {
    it(`${JSON.stringify(options)} is refused naming ${option}`, () => {
      const error = CircuitBreaker.validate({ name: "c", policy: TripPolicy.failuresInWindow(options) })
      assert.instanceOf(error, CircuitBreakerOptionsError)
      assert.deepStrictEqual([error?.option, error?.value, error?.expected], [option, value, expected])
    })
  }

  it("the edges are accepted", () => {
    assert.isUndefined(
      CircuitBreaker.validate({ name: "c", policy: TripPolicy.failuresInWindow({ failures: 1, window: 1 }) })
    )
    assert.isUndefined(
      CircuitBreaker.validate({
        name: "c",
        policy: TripPolicy.failuresInWindow({ failures: 10_000, window: "7 days" })
      })
    )
  })
})

const parse = (yaml: string, env: Record<string, string> = {}) =>
  ResilienceConfig.parse(`circuitBreaker:\n  payments_api: ${yaml}\n`, { env })

describe("TripPolicy.failuresInWindow: from YAML", () => {
  it.effect("policy: failuresInWindow with failures and windowSeconds; left out, 5 and 60 s", () =>
    Effect.gen(function*() {
      const settings = yield* parse("{ policy: failuresInWindow, failures: 3, windowSeconds: 30 }")
      assert.deepStrictEqual(
        settings.payments_api?.policy,
        TripPolicy.failuresInWindow({ failures: 3, window: "30 seconds" })
      )
      const defaults = yield* parse("{ policy: failuresInWindow }")
      assert.deepStrictEqual(
        defaults.payments_api?.policy,
        TripPolicy.failuresInWindow({ failures: 5, window: "60 seconds" })
      )
      const breaker = yield* CircuitBreaker.make(
        ResilienceConfig.toBreakerOptions("payments_api", settings.payments_api!)
      )
      yield* trip(breaker, 3)
      assert.strictEqual(yield* state(breaker), "Open")
    }).pipe(Effect.scoped))

  it.effect("bad values name the key, the value and what is allowed", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        parse("{ policy: failuresInWindow, failures: 0, windowSeconds: -1, failMax: 3 }")
      )
      assert.deepStrictEqual(error.problems, [
        { key: "circuitBreaker.payments_api.failures", value: 0, expected: "an integer between 1 and 10000" },
        {
          key: "circuitBreaker.payments_api.windowSeconds",
          value: -1,
          expected: "a number of seconds > 0 and at most 604800 (7 days)"
        },
        {
          key: "circuitBreaker.payments_api.failMax",
          value: 3,
          expected: "a key of policy failuresInWindow (failures, windowSeconds): failMax is a key of consecutive, " +
            "chosen with policy"
        }
      ])
    }))

  it.effect("environment variables choose it and set its keys, typed from text", () =>
    Effect.gen(function*() {
      const problems = yield* parse("{ failMax: 3 }", {
        CIRCUIT_BREAKER_PAYMENTS_API_POLICY: "failuresInWindow",
        CIRCUIT_BREAKER_PAYMENTS_API_FAILURES: "4",
        CIRCUIT_BREAKER_PAYMENTS_API_WINDOW_SECONDS: "2.5"
      }).pipe(Effect.flip, Effect.map((e) => e.problems))
      // The file's failMax belongs to the consecutive policy the environment replaced.
      assert.deepStrictEqual(problems.map((p) => p.key), ["circuitBreaker.payments_api.failMax"])
      const ok = yield* parse("{ enabled: true }", {
        CIRCUIT_BREAKER_PAYMENTS_API_POLICY: "failuresInWindow",
        CIRCUIT_BREAKER_PAYMENTS_API_FAILURES: "4",
        CIRCUIT_BREAKER_PAYMENTS_API_WINDOW_SECONDS: "2.5"
      })
      assert.deepStrictEqual(ok.payments_api?.policy, TripPolicy.failuresInWindow({ failures: 4, window: 2_500 }))
      const bad = yield* Effect.flip(
        parse("{ policy: failuresInWindow }", { CIRCUIT_BREAKER_PAYMENTS_API_FAILURES: "five" })
      )
      assert.deepStrictEqual(bad.problems, [
        {
          key: "CIRCUIT_BREAKER_PAYMENTS_API_FAILURES",
          value: "five",
          expected: "an integer between 1 and 10000, in decimal digits (no sign, 0x, 0b or exponent)"
        }
      ])
    }))
})
