import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, ResilienceConfig } from "@neural-hive/resilience"
import { Effect, Exit } from "effect"
import * as fc from "fast-check"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const seedYaml = `
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

const problemsOf = (text: string, env: Record<string, string> = {}) =>
  Effect.flip(ResilienceConfig.parse(text, { env })).pipe(Effect.map((e) => e.problems))

describe("ResilienceConfig", () => {
  it.effect("reads the seed's file as is", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse(seedYaml)
      assert.strictEqual(settings.kafka.failMax, 5)
      assert.strictEqual(settings.redis.recoveryTimeoutSeconds, 60)
      assert.strictEqual(settings.mongodb.timeoutSeconds, 60)
      const options = ResilienceConfig.toBreakerOptions("kafka", settings.kafka)
      assert.strictEqual(options.name, "kafka_producer")
      assert.strictEqual(options.recoveryTimeout, 30_000)
      assert.strictEqual(options.maxOpenDuration, 60_000)
      assert.strictEqual(ResilienceConfig.toBreakerOptions("redis", settings.redis).failureMode, "fail-open")
    }))

  it.effect("an empty file gives the seed's defaults, and every default makes a valid breaker", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse("")
      assert.deepStrictEqual(settings, ResilienceConfig.defaults)
      for (const dependency of ResilienceConfig.dependencies) {
        yield* CircuitBreaker.make(ResilienceConfig.toBreakerOptions(dependency, settings[dependency]))
      }
    }))

  it.effect("environment variables override the file, typed from text", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse(seedYaml, {
        env: {
          CIRCUIT_BREAKER_KAFKA_FAIL_MAX: "10",
          CIRCUIT_BREAKER_REDIS_ENABLED: "false",
          CIRCUIT_BREAKER_TEMPORAL_RECOVERY_TIMEOUT_SECONDS: "12.5"
        }
      })
      assert.strictEqual(settings.kafka.failMax, 10)
      assert.strictEqual(settings.redis.enabled, false)
      assert.strictEqual(settings.temporal.recoveryTimeoutSeconds, 12.5)
    }))

  it.effect("successThreshold defaults to halfOpenPermits", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse("circuitBreaker: { kafka: { halfOpenPermits: 3 } }")
      assert.strictEqual(settings.kafka.successThreshold, 3)
    }))

  it.effect("reports every problem at once, naming key, value and what is allowed", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ResilienceConfig.parse(
        `
circuitBreaker:
  kafka: { failMax: 0, timeoutSeconds: "sixty" }
  redis: { enabled: "yes", recoveryTimeoutSeconds: -1 }
  rabbit: { failMax: 3 }
  mongodb: { failmax: 3 }
`,
        { env: { CIRCUIT_BREAKER_TEMPORAL_FAIL_MAX: "many" }, source: "config.yaml" }
      ))
      const byKey = Object.fromEntries(error.problems.map((p) => [p.key, p]))
      assert.strictEqual(byKey["circuitBreaker.kafka.failMax"]?.expected, "an integer >= 1")
      assert.strictEqual(byKey["circuitBreaker.kafka.timeoutSeconds"]?.value, "sixty")
      assert.strictEqual(byKey["circuitBreaker.redis.enabled"]?.expected, "true or false")
      assert.strictEqual(byKey["circuitBreaker.redis.recoveryTimeoutSeconds"]?.value, -1)
      assert.include(byKey["circuitBreaker.rabbit"]?.expected, "kafka, temporal, redis, mongodb")
      assert.include(byKey["circuitBreaker.mongodb.failmax"]?.expected, "failMax")
      assert.strictEqual(byKey["CIRCUIT_BREAKER_TEMPORAL_FAIL_MAX"]?.value, "many")
      assert.include(error.message, "config.yaml")
      assert.include(error.message, `circuitBreaker.kafka.failMax: got 0, expected an integer >= 1`)
    }))

  it.effect("timeoutSeconds below recoveryTimeoutSeconds is refused (it caps the open period)", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(
        "circuitBreaker: { kafka: { timeoutSeconds: 10, recoveryTimeoutSeconds: 30 } }"
      )
      assert.strictEqual(problems[0]?.key, "circuitBreaker.kafka.timeoutSeconds")
    }))

  it.effect("malformed YAML is a problem with a line, not a crash", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf("circuitBreaker:\n  kafka: { failMax: 5\n")
      assert.isAbove(problems.length, 0)
      assert.match(problems[0]!.key, /^line /)
    }))

  it.effect("load reads a file; a missing file names the path", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "nh-config-"))
      const file = join(dir, "resilience.yaml")
      writeFileSync(file, seedYaml)
      assert.strictEqual((yield* ResilienceConfig.load(file)).kafka.failMax, 5)
      const missing = yield* Effect.flip(ResilienceConfig.load(join(dir, "nope.yaml")))
      assert.include(missing.message, "nope.yaml")
    }))

  it("never crashes and never yields a bad breaker, whatever the input (property)", () => {
    const value = fc.oneof(
      fc.integer({ min: -5, max: 100 }),
      fc.double({ noNaN: false }),
      fc.boolean(),
      fc.string({ maxLength: 8 }),
      fc.constant(null),
      fc.array(fc.integer(), { maxLength: 2 })
    )
    const section = fc.dictionary(
      fc.constantFrom(
        "enabled",
        "failMax",
        "timeoutSeconds",
        "recoveryTimeoutSeconds",
        "halfOpenPermits",
        "successThreshold",
        "callTimeoutSeconds",
        "slowCallSeconds",
        "bogus"
      ),
      value
    )
    const document = fc.oneof(
      fc.record({
        circuitBreaker: fc.dictionary(fc.constantFrom("kafka", "redis", "temporal", "mongodb", "x"), section)
      }),
      fc.anything()
    )
    fc.assert(
      fc.property(document, fc.string({ maxLength: 40 }), (doc, garbage) => {
        for (const text of [JSON.stringify(doc) ?? "", garbage]) {
          const exit = Effect.runSyncExit(ResilienceConfig.parse(text))
          if (Exit.isSuccess(exit)) {
            // Whatever was accepted must make valid breakers.
            for (const dependency of ResilienceConfig.dependencies) {
              const options = ResilienceConfig.toBreakerOptions(dependency, exit.value[dependency])
              assert.notInstanceOf(CircuitBreaker.validate(options), CircuitBreaker.CircuitBreakerOptionsError)
            }
          } else {
            const failure = exit.cause.reasons[0]
            assert.strictEqual(failure?._tag, "Fail")
            if (failure?._tag === "Fail") {
              assert.strictEqual(failure.error._tag, "ResilienceConfigError")
              assert.isAbove(failure.error.problems.length, 0)
            }
          }
        }
      }),
      { numRuns: 500 }
    )
  })
})
