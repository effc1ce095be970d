/**
 * The Orchestrator Dynamic format is an input shape mapped onto the generic
 * configuration: its four dependencies, its `timeoutSeconds`, its circuit
 * names, Redis fail-open; a whole Helm values file loads as is.
 */
import { assert, describe, it } from "@effect/vitest"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { RedisCache } from "@neural-hive/redis"
import { CircuitBreaker, ResilienceConfig, TripPolicy } from "@neural-hive/resilience"
import { Duration, Effect } from "effect"
import { fileURLToPath } from "node:url"

const configFile = (name: string) =>
  fileURLToPath(new URL(`../../examples/orchestrator-dynamic/config/${name}`, import.meta.url))

const pythonYaml = `
circuitBreaker:
  kafka:
    enabled: true
    failMax: 5          # Abrir após 5 falhas consecutivas
    timeoutSeconds: 60  # Duração do estado OPEN
    recoveryTimeoutSeconds: 30
  temporal: { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
  redis:    { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 60 }
  mongodb:  { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
`

/** The consecutive policy's failMax of a dependency. */
const failMax = (settings: ResilienceConfig.CircuitSettings) => (settings.policy as TripPolicy.Consecutive).failMax

const problemsOf = (text: string, env: Record<string, string> = {}) =>
  Effect.flip(OrchestratorConfig.parse(text, { env })).pipe(
    Effect.map((e) => new Map(e.problems.map((p) => [p.key, p] as const)))
  )

describe("OrchestratorConfig (the Orchestrator Dynamic format)", () => {
  it.effect("reads the Python service's file: circuit names, timeoutSeconds as the cap, Redis fail-open", () =>
    Effect.gen(function*() {
      const settings = yield* OrchestratorConfig.parse(pythonYaml)
      assert.strictEqual(failMax(settings.kafka), 5)
      assert.deepStrictEqual(settings.redis.recoveryTimeout, Duration.seconds(60))
      assert.deepStrictEqual(settings.mongodb.maxOpenDuration, Duration.seconds(60))
      const kafka = OrchestratorConfig.toBreakerOptions("kafka", settings.kafka)
      assert.strictEqual(kafka.name, "kafka_producer")
      assert.deepStrictEqual(kafka.recoveryTimeout, Duration.seconds(30))
      assert.deepStrictEqual(kafka.maxOpenDuration, Duration.seconds(60))
      // The outbox queues tickets while Kafka is out: an open kafka_producer degrades, it refuses nothing.
      assert.strictEqual(kafka.failureMode, "fail-open")
      const redis = OrchestratorConfig.toBreakerOptions("redis", settings.redis)
      assert.strictEqual(redis.name, "redis_client")
      assert.strictEqual(redis.failureMode, "fail-open")
    }))

  it.effect("an empty file gives the format's defaults over the one table; every default makes a valid breaker", () =>
    Effect.gen(function*() {
      const settings = yield* OrchestratorConfig.parse("")
      assert.deepStrictEqual(settings, OrchestratorConfig.defaults)
      assert.deepStrictEqual(settings.kafka, {
        ...ResilienceConfig.defaults,
        failureMode: "fail-open",
        ...OrchestratorConfig.policies.kafka
      })
      assert.deepStrictEqual(settings.redis, {
        ...ResilienceConfig.defaults,
        // Written once, in @neural-hive/redis.
        recoveryTimeout: RedisCache.breakerDefaults.recoveryTimeout,
        callTimeout: Duration.seconds(2),
        failureMode: "fail-open",
        ...OrchestratorConfig.policies.redis
      })
      assert.deepStrictEqual(settings.redis.recoveryTimeout, Duration.seconds(60))
      for (const dependency of OrchestratorConfig.dependencies) {
        yield* CircuitBreaker.make(OrchestratorConfig.toBreakerOptions(dependency, settings[dependency]))
      }
    }))

  it.effect("the shipped files load: config/resilience.yaml and a whole Helm values file", () =>
    Effect.gen(function*() {
      const shipped = yield* OrchestratorConfig.load(configFile("resilience.yaml"))
      assert.deepStrictEqual(shipped, OrchestratorConfig.defaults)
      const helm = yield* OrchestratorConfig.load(configFile("helm-values.yaml"))
      assert.deepStrictEqual(helm, OrchestratorConfig.defaults)
    }))

  it.effect("each dependency has its policies by default; the file and the variables change or turn them off", () =>
    Effect.gen(function*() {
      const defaults = OrchestratorConfig.defaults
      assert.deepInclude(defaults.temporal.adaptiveLimit, { initialLimit: 20, minLimit: 2, maxLimit: 100 })
      assert.deepInclude(defaults.mongodb.adaptiveLimit, { initialLimit: 10, minLimit: 2, maxLimit: 50 })
      assert.deepInclude(defaults.kafka.retry, { maxRetries: 2, budgetRatio: 0.1 })
      assert.deepInclude(defaults.redis.hedge, { percentile: 0.95, samples: 200 })
      assert.isUndefined(defaults.kafka.hedge)
      assert.isUndefined(defaults.redis.retry)
      const made = {
        temporal: yield* OrchestratorConfig.policiesOf("temporal", defaults.temporal),
        mongodb: yield* OrchestratorConfig.policiesOf("mongodb", defaults.mongodb),
        kafka: yield* OrchestratorConfig.policiesOf("kafka", defaults.kafka),
        redis: yield* OrchestratorConfig.policiesOf("redis", defaults.redis)
      }
      assert.deepInclude(made.temporal.bulkhead?.stats(), { limit: 20, maxLimit: 100, maxQueued: 50 })
      assert.strictEqual(made.temporal.bulkhead?.name, "temporal_client")
      assert.strictEqual(made.kafka.retryBudget?.name, "kafka_producer")
      assert.strictEqual(made.redis.hedge?.name, "redis_client")
      // The hedge's own budget (no retry on Redis): hedges at most 10 % of the GETs plus the reserve.
      assert.deepStrictEqual(Object.keys(made.redis), ["retryBudget", "hedge"])

      const changed = yield* OrchestratorConfig.parse(
        `
circuitBreaker:
  temporal: { adaptiveLimit: { maxLimit: 40 } }
  redis: { hedge: { enabled: false } }
`,
        {
          env: { CIRCUIT_BREAKER_KAFKA_RETRY_MAX_RETRIES: "1", CIRCUIT_BREAKER_MONGODB_ADAPTIVE_LIMIT_ENABLED: "false" }
        }
      )
      assert.deepInclude(changed.temporal.adaptiveLimit, { initialLimit: 20, minLimit: 2, maxLimit: 40 })
      assert.isUndefined(changed.redis.hedge)
      assert.strictEqual(changed.kafka.retry?.maxRetries, 1)
      assert.isUndefined(changed.mongodb.adaptiveLimit)
    }))

  it.effect("environment variables override the file; a misspelled one is an error naming the right one", () =>
    Effect.gen(function*() {
      const settings = yield* OrchestratorConfig.parse(pythonYaml, {
        env: {
          CIRCUIT_BREAKER_KAFKA_FAIL_MAX: "10",
          CIRCUIT_BREAKER_REDIS_ENABLED: "false",
          CIRCUIT_BREAKER_TEMPORAL_RECOVERY_TIMEOUT_SECONDS: "12.5",
          CIRCUIT_BREAKER_MONGODB_TIMEOUT_SECONDS: "120"
        }
      })
      assert.strictEqual(failMax(settings.kafka), 10)
      assert.strictEqual(settings.redis.enabled, false)
      assert.deepStrictEqual(settings.temporal.recoveryTimeout, Duration.seconds(12.5))
      assert.deepStrictEqual(settings.mongodb.maxOpenDuration, Duration.seconds(120))

      const problems = yield* problemsOf(pythonYaml, {
        CIRCUIT_BREAKER_KAFKA_FAILMAX: "10",
        CIRCUIT_BREAKER_RABBIT_FAIL_MAX: "1",
        CIRCUIT_BREAKER_KAFKA_FAIL_MAX: "0x10"
      })
      assert.strictEqual(
        problems.get("CIRCUIT_BREAKER_KAFKA_FAILMAX")?.expected,
        "a known variable: did you mean CIRCUIT_BREAKER_KAFKA_FAIL_MAX?"
      )
      assert.include(problems.get("CIRCUIT_BREAKER_RABBIT_FAIL_MAX")?.expected, "KAFKA, TEMPORAL, REDIS, MONGODB")
      assert.include(problems.get("CIRCUIT_BREAKER_KAFKA_FAIL_MAX")?.expected, "in decimal digits")
    }))

  it.effect("unknown dependencies and keys, prototype-named ones included, are errors naming them", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`
circuitBreaker:
  rabbit: { failMax: 3 }
  constructor: {}
  __proto__: { failMax: 1 }
  mongodb: { failmax: 3, toString: 1, maxOpenSeconds: 60, failureMode: fail-open }
  kafka: { failMax: 0, timeoutSeconds: 10 }
`)
      assert.strictEqual(problems.get("circuitBreaker.rabbit")?.expected, "one of kafka, temporal, redis, mongodb")
      assert.strictEqual(problems.get("circuitBreaker.constructor")?.expected, "one of kafka, temporal, redis, mongodb")
      assert.strictEqual(problems.get("circuitBreaker.__proto__")?.expected, "one of kafka, temporal, redis, mongodb")
      for (const key of ["failmax", "toString", "maxOpenSeconds", "failureMode"]) {
        // The format names the cap timeoutSeconds and fixes the failure mode in code: neither generic key is offered.
        const expected = problems.get(`circuitBreaker.mongodb.${key}`)?.expected ?? ""
        assert.include(expected, "one of enabled, failMax, recoveryTimeoutSeconds, timeoutSeconds,", key)
        assert.notInclude(expected, "maxOpenSeconds", key)
        assert.notInclude(expected, "failureMode", key)
      }
      assert.strictEqual(problems.get("circuitBreaker.kafka.failMax")?.expected, "an integer between 1 and 1000000")
      assert.include(problems.get("circuitBreaker.kafka.timeoutSeconds")?.expected, ">= recoveryTimeoutSeconds (30)")
    }))
})
