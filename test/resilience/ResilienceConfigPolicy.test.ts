/**
 * Trip policies from YAML: `policy` chooses one from `TripPolicy.registry`, its schema's keys
 * configure it, checked like every other key (the problem names the key path or the variable, the
 * value and what is allowed), and the policy's own `check` runs on what the keys made.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerOptionsError, ResilienceConfig, TripPolicy } from "@neural-hive/resilience"
import { Effect } from "effect"

const settingsOf = (yaml: string, options: ResilienceConfig.ParseOptions = {}) =>
  Effect.runSync(ResilienceConfig.parse(`circuitBreaker:\n  c: ${yaml}\n`, options)).c!

const problemsOf = (yaml: string, options: ResilienceConfig.ParseOptions = {}) =>
  Effect.runSync(Effect.flip(ResilienceConfig.parse(`circuitBreaker:\n  c: ${yaml}\n`, options))).problems

describe("ResilienceConfig: trip policies by their schema", () => {
  it("policy chooses the policy; its keys configure it; keys left out take the schema's defaults", () => {
    assert.deepStrictEqual(
      settingsOf("{ policy: failureRate, threshold: 0.25, size: 20, minimumCalls: 10 }").policy,
      TripPolicy.failureRate({ threshold: 0.25, size: 20, minimumCalls: 10 })
    )
    assert.deepStrictEqual(
      settingsOf("{ policy: failureRate }").policy,
      TripPolicy.failureRate({ threshold: 0.5, size: 100 })
    )
    assert.deepStrictEqual(
      settingsOf("{ policy: failureRateOverTime, windowSeconds: 30, minimumCalls: 4, buckets: 6 }").policy,
      TripPolicy.failureRateOverTime({ threshold: 0.5, window: "30 seconds", minimumCalls: 4, buckets: 6 })
    )
    // No policy key: the default, consecutive(failMax).
    assert.deepStrictEqual(settingsOf("{ failMax: 3 }").policy, TripPolicy.consecutive(3))
    assert.deepStrictEqual(settingsOf("{ policy: consecutive }").policy, TripPolicy.consecutive(5))
  })

  it("the policy and its keys come from the environment too, typed from text", () => {
    const settings = settingsOf("{ enabled: true }", {
      env: { CIRCUIT_BREAKER_C_POLICY: "failureRate", CIRCUIT_BREAKER_C_THRESHOLD: "0.2", CIRCUIT_BREAKER_C_SIZE: "8" }
    })
    assert.deepStrictEqual(settings.policy, TripPolicy.failureRate({ threshold: 0.2, size: 8 }))
    assert.deepStrictEqual(problemsOf("{ policy: failureRate }", { env: { CIRCUIT_BREAKER_C_THRESHOLD: "1.5" } }), [
      {
        key: "CIRCUIT_BREAKER_C_THRESHOLD",
        value: "1.5",
        expected: "a number in (0, 1], in decimal digits like 0.5 (no sign, 0x, 0b or exponent)"
      }
    ])
  })

  it("a configured policy makes a breaker through toBreakerOptions", () =>
    Effect.runSync(
      Effect.gen(function*() {
        const settings = settingsOf("{ policy: failureRateOverTime, threshold: 0.5, windowSeconds: 10 }")
        const options = ResilienceConfig.toBreakerOptions("c", settings)
        assert.strictEqual(options.policy?._tag, "FailureRateOverTime")
        const breaker = yield* CircuitBreaker.make(options)
        assert.strictEqual(breaker.view.state(), "Closed")
      }).pipe(Effect.scoped)
    ))

  it("bad values name the key path, the value and what is allowed", () => {
    assert.deepStrictEqual(problemsOf("{ policy: failureRat }"), [
      {
        key: "circuitBreaker.c.policy",
        value: "failureRat",
        expected: `one of ${TripPolicy.registry.map((schema) => schema.name).join(", ")}`
      }
    ])
    assert.deepStrictEqual(problemsOf("{ policy: failureRate, threshold: 0, size: 2.5 }"), [
      { key: "circuitBreaker.c.threshold", value: 0, expected: "a number in (0, 1]" },
      { key: "circuitBreaker.c.size", value: 2.5, expected: "an integer between 1 and 1000000" }
    ])
    // The policy's own check, on what its keys made, names the key.
    assert.deepStrictEqual(problemsOf("{ policy: failureRate, size: 10, minimumCalls: 11 }"), [
      { key: "circuitBreaker.c.minimumCalls", value: 11, expected: "an integer between 1 and size (10)" }
    ])
  })

  it("a key of another policy says whose it is; an unknown key says what it likely meant", () => {
    assert.deepStrictEqual(problemsOf("{ threshold: 0.5 }"), [
      {
        key: "circuitBreaker.c.threshold",
        value: 0.5,
        expected: "a key of policy consecutive (failMax): threshold is a key of failureRate, failureRateOverTime, " +
          "chosen with policy"
      }
    ])
    const [unknown] = problemsOf("{ policy: failureRate, treshold: 0.5 }")
    assert.strictEqual(unknown?.key, "circuitBreaker.c.treshold")
    assert.strictEqual(
      unknown?.expected,
      "one of enabled, threshold, size, minimumCalls, recoveryTimeoutSeconds, maxOpenSeconds, halfOpenPermits, " +
        "successThreshold, callTimeoutSeconds, slowCallSeconds, failureMode, policy, bulkhead, adaptiveLimit, retry, " +
        "hedge: did you mean threshold?"
    )
    assert.include(problemsOf("{ FailMax: 3 }")[0]?.expected, ": did you mean failMax?")
    assert.notInclude(problemsOf("{ color: 3 }")[0]?.expected, "did you mean")
  })

  it("a format renames a policy's keys; a known circuit's policy set in code stays unless the file sets one", () => {
    const format: ResilienceConfig.Format = {
      names: { failMax: "maxFailures", policy: "tripPolicy" },
      circuits: { c: { policy: TripPolicy.failureRate({ threshold: 0.2, size: 5 }) } }
    }
    const kept = Effect.runSync(ResilienceConfig.parse("", format)).c!
    assert.deepStrictEqual(kept.policy, TripPolicy.failureRate({ threshold: 0.2, size: 5 }))
    const renamed = Effect.runSync(
      ResilienceConfig.parse("circuitBreaker: { c: { tripPolicy: consecutive, maxFailures: 2 } }", format)
    ).c!
    assert.deepStrictEqual(renamed.policy, TripPolicy.consecutive(2))
    const [problem] = Effect.runSync(
      Effect.flip(ResilienceConfig.parse("circuitBreaker: { c: { size: 0 } }", format))
    ).problems
    assert.deepStrictEqual(problem, {
      key: "circuitBreaker.c.size",
      value: 0,
      expected: "an integer between 1 and 1000000"
    })
  })
})

/** What a policy declares it needs: the Clock, a count a fleet may share. */
const needs = (policy: TripPolicy.TripPolicy) => [policy.usesClock, policy.shareableCount]

describe("TripPolicy: a policy checks itself", () => {
  it("CircuitBreaker.make refuses a policy of one's own whose check reports a problem, naming it", () => {
    const mine: TripPolicy.TripPolicy = {
      _tag: "Mine",
      usesClock: false,
      counter: () => TripPolicy.consecutive(1).counter(),
      check: () => ({ option: "limit", value: -1, expected: "a limit >= 0" })
    }
    const error = CircuitBreaker.validate({ name: "c", policy: mine })
    assert.instanceOf(error, CircuitBreakerOptionsError)
    assert.strictEqual(error?.option, "policy.limit")
    assert.strictEqual(error?.expected, "a limit >= 0")
  })

  it("declares what it needs: the Clock, and a count a fleet may share", () => {
    assert.deepStrictEqual(needs(TripPolicy.consecutive(5)), [false, 5])
    assert.deepStrictEqual(needs(TripPolicy.failureRate({ threshold: 0.5, size: 10 })), [false, undefined])
    assert.deepStrictEqual(
      needs(TripPolicy.failureRateOverTime({ threshold: 0.5, window: 1000, minimumCalls: 1 })),
      [true, undefined]
    )
  })
})
