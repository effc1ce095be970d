/**
 * The policy sections of a circuit in the YAML (`bulkhead`, `adaptiveLimit`, `retry`, `hedge`): read
 * into settings, overridden by `CIRCUIT_BREAKER_<CIRCUIT>_<SECTION>_<KEY>`, every bad value a problem
 * naming its path or variable, and `ResilienceConfig.policiesOf` making the policies in one call.
 */
import { assert, describe, it } from "@effect/vitest"
import { ResilienceConfig } from "@neural-hive/resilience"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"

const parse = (yaml: string, env: Record<string, string> = {}) =>
  Effect.runSync(Effect.result(ResilienceConfig.parse(yaml, { env })))

const settingsOf = (yaml: string, env: Record<string, string> = {}) => {
  const result = parse(yaml, env)
  if (Result.isFailure(result)) assert.fail(result.failure.message)
  return result.success
}

const problemsOf = (yaml: string, env: Record<string, string> = {}) => {
  const result = parse(yaml, env)
  if (Result.isSuccess(result)) return assert.fail("expected problems")
  return result.failure.problems
}

const full = `
circuitBreaker:
  mongodb:
    failMax: 3
    adaptiveLimit: { initialLimit: 10, minLimit: 2, maxLimit: 50, maxQueued: 5, queueTimeoutSeconds: 0.5 }
  kafka:
    bulkhead: { maxConcurrent: 20, maxQueued: 50, queueTimeoutSeconds: 2 }
    retry: { maxRetries: 3, budgetRatio: 0.2, budgetMinPerSecond: 0, budgetWindowSeconds: 5, baseDelaySeconds: 0.05 }
  redis:
    retry: {}
    hedge: { percentile: 0.9, minDelaySeconds: 0.002, samples: 100 }
  temporal:
    hedge: { delaySeconds: 0.05 }
`

describe("ResilienceConfig: policy sections", () => {
  it("reads each section into settings, seconds into Durations, the defaults filled in", () => {
    const s = settingsOf(full)
    assert.deepStrictEqual(s.mongodb?.adaptiveLimit, {
      initialLimit: 10,
      minLimit: 2,
      maxLimit: 50,
      maxQueued: 5,
      queueTimeout: Duration.millis(500)
    })
    assert.deepStrictEqual(s.kafka?.bulkhead, { maxConcurrent: 20, maxQueued: 50, queueTimeout: Duration.seconds(2) })
    assert.deepStrictEqual(s.kafka?.retry, {
      maxRetries: 3,
      budgetRatio: 0.2,
      budgetMinPerSecond: 0,
      budgetWindow: Duration.seconds(5),
      baseDelay: Duration.millis(50)
    })
    // `retry: {}` turns retries on with every default.
    assert.deepStrictEqual(s.redis?.retry, {
      maxRetries: 2,
      budgetRatio: 0.1,
      budgetMinPerSecond: 1,
      budgetWindow: Duration.seconds(10),
      baseDelay: Duration.millis(100)
    })
    assert.deepStrictEqual(s.redis?.hedge, { percentile: 0.9, minDelay: Duration.millis(2), samples: 100 })
    assert.deepStrictEqual(Duration.toMillis(s.temporal!.hedge!.delay!), 50)
    // A circuit without sections has none, and the breaker's settings are untouched by them.
    assert.isUndefined(s.mongodb?.bulkhead)
    assert.isUndefined(s.mongodb?.retry)
    assert.strictEqual(s.mongodb?.policy._tag, "Consecutive")
    assert.deepStrictEqual(
      Object.keys(settingsOf("circuitBreaker: { c: {} }").c!),
      Object.keys(ResilienceConfig.defaults)
    )
  })

  it("the initial adaptive limit defaults to 20 brought within minLimit and maxLimit", () => {
    const s = settingsOf(
      "circuitBreaker: { a: { adaptiveLimit: { maxLimit: 8 } }, b: { adaptiveLimit: { minLimit: 30 } } }"
    )
    assert.strictEqual(s.a?.adaptiveLimit?.initialLimit, 8)
    assert.strictEqual(s.b?.adaptiveLimit?.initialLimit, 30)
  })

  it("a variable overrides a section's key, makes a section the file does not have, and turns one off", () => {
    const s = settingsOf(full, {
      CIRCUIT_BREAKER_KAFKA_RETRY_MAX_RETRIES: "5",
      CIRCUIT_BREAKER_KAFKA_BULKHEAD_QUEUE_TIMEOUT_SECONDS: "0.25",
      CIRCUIT_BREAKER_MONGODB_RETRY_BUDGET_RATIO: "0",
      CIRCUIT_BREAKER_REDIS_HEDGE_ENABLED: "false"
    })
    assert.strictEqual(s.kafka?.retry?.maxRetries, 5)
    assert.strictEqual(s.kafka?.retry?.budgetRatio, 0.2)
    assert.deepStrictEqual(s.kafka?.bulkhead?.queueTimeout, Duration.millis(250))
    assert.strictEqual(s.mongodb?.retry?.budgetRatio, 0)
    assert.strictEqual(s.mongodb?.retry?.maxRetries, 2)
    assert.isUndefined(s.redis?.hedge)
    assert.isDefined(s.redis?.retry)
  })

  it("an unknown key of a section is a problem with a did-you-mean; a misspelled variable too", () => {
    const [key] = problemsOf("circuitBreaker: { kafka: { retry: { maxRetrys: 3 } } }")
    assert.deepStrictEqual(key, {
      key: "circuitBreaker.kafka.retry.maxRetrys",
      value: 3,
      expected: "one of enabled, maxRetries, budgetRatio, budgetMinPerSecond, budgetWindowSeconds, baseDelaySeconds: " +
        "did you mean maxRetries?"
    })
    const [variable] = problemsOf("circuitBreaker: { kafka: {} }", { CIRCUIT_BREAKER_KAFKA_RETRY_MAXRETRIES: "3" })
    assert.deepStrictEqual(variable, {
      key: "CIRCUIT_BREAKER_KAFKA_RETRY_MAXRETRIES",
      value: "3",
      expected: "a known variable: did you mean CIRCUIT_BREAKER_KAFKA_RETRY_MAX_RETRIES?"
    })
    // A section's name misspelled at the circuit's level is offered among the circuit's keys.
    const [section] = problemsOf("circuitBreaker: { kafka: { bulkhed: { maxConcurrent: 3 } } }")
    assert.match(section!.expected, /, policy, bulkhead, adaptiveLimit, retry, hedge: did you mean bulkhead\?$/)
    // A dotted key is never a section's key at the circuit's level.
    assert.strictEqual(
      problemsOf("circuitBreaker: { kafka: { retry.maxRetries: 3 } }")[0]?.key,
      "circuitBreaker.kafka.retry.maxRetries"
    )
  })

  it("a bad value names its path (or variable), the value and what is allowed", () => {
    const problems = problemsOf(
      "circuitBreaker: { kafka: { bulkhead: { maxConcurrent: 0, maxQueued: -1, queueTimeoutSeconds: '2' }, " +
        "retry: { budgetRatio: 1.5 }, hedge: { percentile: 0.3 } }, redis: { retry: 3 } }",
      { CIRCUIT_BREAKER_KAFKA_RETRY_BASE_DELAY_SECONDS: "1e-3" }
    )
    assert.deepStrictEqual(problems, [
      { key: "circuitBreaker.kafka.bulkhead.maxConcurrent", value: 0, expected: "an integer between 1 and 1000000" },
      { key: "circuitBreaker.kafka.bulkhead.maxQueued", value: -1, expected: "an integer between 0 and 1000000" },
      {
        key: "circuitBreaker.kafka.bulkhead.queueTimeoutSeconds",
        value: "2",
        expected: "a number of seconds > 0 and at most 604800 (7 days)"
      },
      { key: "circuitBreaker.kafka.retry.budgetRatio", value: 1.5, expected: "a number from 0 to 1" },
      {
        key: "CIRCUIT_BREAKER_KAFKA_RETRY_BASE_DELAY_SECONDS",
        value: "1e-3",
        expected:
          "a number of seconds > 0 and at most 604800 (7 days), in decimal digits like 30 or 2.5 (no sign, 0x, 0b or exponent)"
      },
      { key: "circuitBreaker.kafka.hedge.percentile", value: 0.3, expected: "a number from 0.5 to 0.999" },
      {
        key: "circuitBreaker.redis.retry",
        value: 3,
        expected:
          "a mapping of enabled, maxRetries, budgetRatio, budgetMinPerSecond, budgetWindowSeconds, baseDelaySeconds"
      }
    ])
  })

  it("the checks between keys: a required key, the limits' order, one hedge delay, one concurrency limit", () => {
    const problems = problemsOf(
      "circuitBreaker: { a: { bulkhead: { maxQueued: 3 } }, b: { adaptiveLimit: { minLimit: 5, maxLimit: 4 } }, " +
        "c: { adaptiveLimit: { initialLimit: 300 } }, d: { hedge: { delaySeconds: 0.1, percentile: 0.9 } }, " +
        "e: { hedge: { samples: 10 } }, f: { retry: { budgetWindowSeconds: 0.001 } }, " +
        "g: { bulkhead: { maxConcurrent: 2 }, adaptiveLimit: {} } }"
    )
    assert.deepStrictEqual(problems.map((p) => [p.key, p.expected]), [
      ["circuitBreaker.a.bulkhead.maxConcurrent", "an integer between 1 and 1000000 (required)"],
      ["circuitBreaker.b.adaptiveLimit.maxLimit", "an integer of at least minLimit (5)"],
      ["circuitBreaker.c.adaptiveLimit.initialLimit", "an integer from minLimit (1) to maxLimit (200)"],
      [
        "circuitBreaker.d.hedge.percentile",
        "no percentile with delaySeconds: a hedge waits either a fixed delay or a learnt percentile"
      ],
      ["circuitBreaker.e.hedge.samples", "an integer of at least 20"],
      ["circuitBreaker.f.retry.budgetWindowSeconds", "a number of seconds of at least 0.01 (10 buckets of 1 ms)"],
      [
        "circuitBreaker.g.adaptiveLimit",
        "no adaptiveLimit beside bulkhead: a circuit has one concurrency limit, fixed (bulkhead) or adaptive"
      ]
    ])
  })

  it("a format can leave a section out (names: null): it is then an unknown key and has no variable", () => {
    const result = Effect.runSync(Effect.result(ResilienceConfig.parse("circuitBreaker: { c: { hedge: {} } }", {
      names: { hedge: null },
      env: { CIRCUIT_BREAKER_C_HEDGE_PERCENTILE: "0.9" }
    })))
    assert.isTrue(Result.isFailure(result))
    if (Result.isSuccess(result)) return
    assert.deepStrictEqual(result.failure.problems.map((p) => p.key), [
      "CIRCUIT_BREAKER_C_HEDGE_PERCENTILE",
      "circuitBreaker.c.hedge"
    ])
  })

  it.effect("policiesOf makes each configured policy, the hedge bounded by the circuit's retry budget or its own", () =>
    Effect.gen(function*() {
      const s = settingsOf(full)
      const mongodb = yield* ResilienceConfig.policiesOf("mongodb_client", s.mongodb!)
      assert.deepStrictEqual(Object.keys(mongodb), ["bulkhead"])
      assert.include(mongodb.bulkhead!.stats(), { limit: 10, minLimit: 2, maxLimit: 50, maxQueued: 5 })
      const kafka = yield* ResilienceConfig.policiesOf("kafka_producer", s.kafka!)
      assert.include(kafka.bulkhead!.stats(), { limit: 20, minLimit: 20, maxLimit: 20, maxQueued: 50 })
      assert.strictEqual(kafka.retry?.maxRetries, 3)
      assert.strictEqual(kafka.retry?.budget, kafka.retryBudget)
      // budgetMinPerSecond 0 and no calls yet: no retry available.
      assert.strictEqual(kafka.retryBudget!.stats().available, 0)
      const redis = yield* ResilienceConfig.policiesOf("redis_client", s.redis!)
      assert.strictEqual(redis.hedge?.name, "redis_client")
      const temporal = yield* ResilienceConfig.policiesOf("temporal_client", s.temporal!)
      // A hedge with no retry takes its hedges from a budget of its own (the defaults: 10 % of the calls).
      assert.isUndefined(temporal.retry)
      assert.strictEqual(temporal.retryBudget?.name, "temporal_client")
      assert.strictEqual(temporal.retryBudget?.stats().available, 10)
      assert.strictEqual(temporal.hedge?.stats().delayMillis, 50)
      const none = yield* ResilienceConfig.policiesOf("c", ResilienceConfig.defaults)
      assert.deepStrictEqual(none, {})
    }))
})
