import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, ResilienceConfig, TripPolicy } from "@neural-hive/resilience"
import { Duration, Effect, Exit } from "effect"
import * as fc from "fast-check"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const problemsOf = (text: string, options: ResilienceConfig.ParseOptions = {}) =>
  Effect.flip(ResilienceConfig.parse(text, options)).pipe(Effect.map((e) => e.problems))

/** The consecutive policy's failMax of a circuit. */
const failMax = (settings: ResilienceConfig.CircuitSettings | undefined) =>
  (settings?.policy as TripPolicy.Consecutive | undefined)?.failMax

const byKey = (problems: ReadonlyArray<ResilienceConfig.Problem>) => new Map(problems.map((p) => [p.key, p] as const))

/** A Helm values file: the chart's own keys around the one section the loader reads. */
const helmValues = `
replicaCount: 3
image:
  repository: registry.example.com/orchestrator
  tag: "1.4.2"
  pullPolicy: IfNotPresent
service: { type: ClusterIP, port: 8000 }
resources:
  limits: { cpu: 500m, memory: 512Mi }
constructor: { not: ours }
toString: 1
podAnnotations:
  prometheus.io/scrape: "true"
circuitBreaker:
  payments_api: { failMax: 3, recoveryTimeoutSeconds: 10, maxOpenSeconds: 120 }
  search_cache: { failureMode: fail-open, callTimeoutSeconds: 0.5 }
`

const tempDir = () => mkdtempSync(join(tmpdir(), "nh-config-"))

describe("ResilienceConfig (generic: circuits by name)", () => {
  it.effect("any names, any number of circuits; every key not set comes from the one table of defaults", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse(helmValues)
      assert.deepStrictEqual(Object.keys(settings), ["payments_api", "search_cache"])
      assert.deepStrictEqual(settings.payments_api, {
        ...ResilienceConfig.defaults,
        policy: TripPolicy.consecutive(3),
        recoveryTimeout: Duration.seconds(10),
        maxOpenDuration: Duration.seconds(120)
      })
      assert.strictEqual(failMax(settings.search_cache), failMax(ResilienceConfig.defaults))
      const options = ResilienceConfig.toBreakerOptions("search_cache", settings.search_cache!)
      assert.strictEqual(options.name, "search_cache")
      assert.strictEqual(options.failureMode, "fail-open")
      // Durations all the way down: the loader converted the seconds once.
      assert.deepStrictEqual(options.callTimeout, Duration.millis(500))
      assert.deepStrictEqual(
        ResilienceConfig.toBreakerOptions("payments_api", settings.payments_api!).maxOpenDuration,
        Duration.seconds(120)
      )
    }))

  it.effect("a Helm values file loads as is: only the circuitBreaker key is read, and the key is configurable", () =>
    Effect.gen(function*() {
      const nested = `orchestrator:\n  resilience:\n    circuits: { a: { failMax: 2 } }\nother: [1, 2]\n`
      const settings = yield* ResilienceConfig.parse(nested, { section: ["orchestrator", "resilience", "circuits"] })
      assert.strictEqual(failMax(settings.a), 2)
      const atRoot = yield* ResilienceConfig.parse("b: { failMax: 4 }", { section: [] })
      assert.strictEqual(failMax(atRoot.b), 4)
      // No section at all: no circuits beyond the ones the format declares, each with the defaults.
      const none = yield* ResilienceConfig.parse("image: { tag: x }", {
        circuits: { c: { policy: TripPolicy.consecutive(9) } }
      })
      assert.deepStrictEqual(none, { c: { ...ResilienceConfig.defaults, policy: TripPolicy.consecutive(9) } })
    }))

  it.effect("environment variables override declared circuits, typed from text", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse(helmValues, {
        env: {
          CIRCUIT_BREAKER_PAYMENTS_API_FAIL_MAX: "10",
          CIRCUIT_BREAKER_SEARCH_CACHE_ENABLED: "false",
          CIRCUIT_BREAKER_PAYMENTS_API_MAX_OPEN_SECONDS: "12.5",
          CIRCUIT_BREAKER_SEARCH_CACHE_FAILURE_MODE: "fail-fast",
          UNRELATED: "x"
        }
      })
      assert.strictEqual(failMax(settings.payments_api), 10)
      assert.deepStrictEqual(settings.payments_api?.maxOpenDuration, Duration.seconds(12.5))
      assert.strictEqual(settings.search_cache?.enabled, false)
      assert.strictEqual(settings.search_cache?.failureMode, "fail-fast")
    }))

  it.effect("a misspelled or unknown override variable is an error, as an unknown YAML key is", () =>
    Effect.gen(function*() {
      const problems = byKey(
        yield* problemsOf(helmValues, {
          env: { CIRCUIT_BREAKER_PAYMENTS_API_FAILMAX: "10", CIRCUIT_BREAKER_BILLING_FAIL_MAX: "3" }
        })
      )
      assert.strictEqual(
        problems.get("CIRCUIT_BREAKER_PAYMENTS_API_FAILMAX")?.expected,
        "a known variable: did you mean CIRCUIT_BREAKER_PAYMENTS_API_FAIL_MAX?"
      )
      // An override cannot declare a circuit: the message lists the ones that exist.
      assert.include(problems.get("CIRCUIT_BREAKER_BILLING_FAIL_MAX")?.expected, "PAYMENTS_API, SEARCH_CACHE")
      // With overrides turned off, the variables are not looked at.
      yield* ResilienceConfig.parse(helmValues, { envPrefix: null, env: { CIRCUIT_BREAKER_X: "1" } })
    }))

  it.effect("successThreshold defaults to halfOpenPermits", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse("circuitBreaker: { k: { halfOpenPermits: 3 } }")
      assert.strictEqual(settings.k?.successThreshold, 3)
    }))

  it.effect("keys named like Object.prototype members are unknown keys naming the key, never a TypeError", () =>
    Effect.gen(function*() {
      for (const key of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
        const inCircuit = byKey(yield* problemsOf(`circuitBreaker:\n  k:\n    ${key}: 1\n`))
        assert.include(inCircuit.get(`circuitBreaker.k.${key}`)?.expected, "one of enabled, failMax", key)
        const asCircuit = byKey(yield* problemsOf(`circuitBreaker:\n  ${key}: { failMax: 2 }\n`))
        assert.include(asCircuit.get(`circuitBreaker.${key}`)?.expected, "Object.prototype member", key)
        const closed = byKey(
          yield* problemsOf(`circuitBreaker:\n  ${key}: {}\n`, { circuits: { k: {} }, closed: true })
        )
        assert.strictEqual(closed.get(`circuitBreaker.${key}`)?.expected, "one of k", key)
        // In the environment too, and as a section of a larger file.
        const env = byKey(
          yield* problemsOf("circuitBreaker: { k: {} }", { env: { [`CIRCUIT_BREAKER_K_${key.toUpperCase()}`]: "1" } })
        )
        assert.isTrue(env.has(`CIRCUIT_BREAKER_K_${key.toUpperCase()}`), key)
        yield* ResilienceConfig.parse(`${key}: 1\ncircuitBreaker: {}\n`)
      }
      // decode on a document parsed elsewhere (JSON.parse makes __proto__ an own key) answers the same.
      const decoded = ResilienceConfig.decode(JSON.parse(`{"circuitBreaker":{"k":{"__proto__":1,"constructor":2}}}`))
      assert.deepStrictEqual(
        (decoded as ReadonlyArray<ResilienceConfig.Problem>).map((p) => p.key),
        ["circuitBreaker.k.__proto__", "circuitBreaker.k.constructor"]
      )
    }))

  it.effect("reports every problem at once, naming key, value and the real range", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ResilienceConfig.parse(
        `
circuitBreaker:
  kafka: { failMax: 0, maxOpenSeconds: "sixty" }
  redis: { enabled: "yes", recoveryTimeoutSeconds: -1, callTimeoutSeconds: 1e12 }
  "bad name": { failMax: 3 }
  mongodb: { failmax: 3, slowCallSeconds: .nan, maxOpenSeconds: .inf, failureMode: open }
`,
        { source: "config.yaml" }
      ))
      const problems = byKey(error.problems)
      assert.strictEqual(problems.get("circuitBreaker.kafka.failMax")?.expected, "an integer between 1 and 1000000")
      assert.strictEqual(problems.get("circuitBreaker.kafka.maxOpenSeconds")?.value, "sixty")
      assert.strictEqual(problems.get("circuitBreaker.redis.enabled")?.expected, "true or false")
      assert.strictEqual(problems.get("circuitBreaker.redis.recoveryTimeoutSeconds")?.value, -1)
      assert.isTrue(problems.has("circuitBreaker.bad name"))
      assert.include(problems.get("circuitBreaker.mongodb.failmax")?.expected, "failMax")
      assert.strictEqual(problems.get("circuitBreaker.mongodb.failureMode")?.expected, "one of fail-fast, fail-open")
      assert.include(error.message, "config.yaml")
      assert.include(error.message, "circuitBreaker.kafka.failMax: got 0, expected an integer between 1 and 1000000")
      // 1e12 s is over the 7-day cap, and the message says so (not "> 0").
      assert.include(
        error.message,
        "circuitBreaker.redis.callTimeoutSeconds: got 1000000000000, expected a number of seconds > 0 and at most 604800 (7 days)"
      )
      // YAML's .nan and .inf are shown as written, not as JSON's null.
      assert.include(error.message, "circuitBreaker.mongodb.slowCallSeconds: got .nan,")
      assert.include(error.message, "circuitBreaker.mongodb.maxOpenSeconds: got .inf,")
      assert.notInclude(error.message, "got null")
    }))

  it.effect("environment numbers are decimal digits: 0x10, 0b11, 1e1, +5 and '' are refused, saying what is allowed", () =>
    Effect.gen(function*() {
      for (const text of ["0x10", "0b11", "1e1", "+5", "", " ", "5.0", "Infinity"]) {
        const problems = byKey(
          yield* problemsOf("circuitBreaker: { k: {} }", { env: { CIRCUIT_BREAKER_K_FAIL_MAX: text } })
        )
        assert.include(problems.get("CIRCUIT_BREAKER_K_FAIL_MAX")?.expected, "in decimal digits", JSON.stringify(text))
      }
      for (const text of ["0x10", "1e1", "-1", ".5"]) {
        const problems = byKey(
          yield* problemsOf("circuitBreaker: { k: {} }", { env: { CIRCUIT_BREAKER_K_CALL_TIMEOUT_SECONDS: text } })
        )
        assert.include(problems.get("CIRCUIT_BREAKER_K_CALL_TIMEOUT_SECONDS")?.expected, "like 30 or 2.5", text)
      }
      const ok = yield* ResilienceConfig.parse("circuitBreaker: { k: {} }", {
        env: { CIRCUIT_BREAKER_K_FAIL_MAX: " 16 ", CIRCUIT_BREAKER_K_CALL_TIMEOUT_SECONDS: "2.5" }
      })
      assert.strictEqual(failMax(ok.k), 16)
      assert.deepStrictEqual(ok.k?.callTimeout, Duration.seconds(2.5))
    }))

  it.effect("maxOpenSeconds below recoveryTimeoutSeconds is refused (it caps the open period)", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf("circuitBreaker: { k: { maxOpenSeconds: 10, recoveryTimeoutSeconds: 30 } }")
      assert.strictEqual(problems[0]?.key, "circuitBreaker.k.maxOpenSeconds")
    }))

  it.effect("a YAML syntax error names its real line", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf("circuitBreaker:\n  a: { failMax: 5 }\n  b: { failMax: 5\n")
      assert.isAbove(problems.length, 0)
      assert.notInclude(problems.map((p) => p.key).join(), "?")
      assert.match(problems[0]!.key, /^line [34]$/)
      const tab = yield* problemsOf("circuitBreaker:\n  a:\n\t  failMax: 5\n")
      assert.strictEqual(tab[0]?.key, "line 3")
    }))

  it.effect(
    "a duplicate key names its line; the check is linear (4x the keys, not 16x the time)",
    () =>
      Effect.gen(function*() {
        const problems = yield* problemsOf("circuitBreaker:\n  a: { failMax: 5 }\n  b: {}\n  a: { failMax: 6 }\n")
        assert.deepStrictEqual(problems, [{
          key: "line 4",
          value: "a",
          expected: "each key once per mapping (this key is repeated)"
        }])
        const document = (keys: number) =>
          `${
            Array.from({ length: keys }, (_, i) => `key${i}: ${i}`).join("\n")
          }\ncircuitBreaker: { k: { failMax: 2 } }\n`
        const timed = (text: string) =>
          Effect.gen(function*() {
            const started = performance.now()
            const settings = yield* ResilienceConfig.parse(text)
            assert.strictEqual(failMax(settings.k), 2)
            return performance.now() - started
          })
        yield* timed(document(1_000)) // warm-up
        const tenThousand = yield* timed(document(10_000))
        const fortyThousand = yield* timed(document(40_000))
        // The yaml library's own check is quadratic: 10k keys took 5.5 s and 20k 28.7 s on this machine.
        assert.isBelow(fortyThousand, 8 * tenThousand + 500, `10k: ${tenThousand} ms, 40k: ${fortyThousand} ms`)
        const duplicated = yield* problemsOf(`${document(40_000)}key39999: again\n`)
        assert.deepStrictEqual(duplicated.map((p) => p.key), ["line 40002"])
      }),
    60_000
  )

  it.effect("a document over the size limit is refused with the limit in the message", () =>
    Effect.gen(function*() {
      const text = `# ${"x".repeat(1024 * 1024)}\n`
      const error = yield* Effect.flip(ResilienceConfig.parse(text))
      assert.include(error.message, "at most 1048576 bytes (1 MiB)")
      const small = yield* problemsOf("circuitBreaker: {}\n", { maxBytes: 8 })
      assert.include(small[0]?.expected, "at most 8 bytes")
    }))

  it.effect("load reads a regular file only: missing, a directory, a FIFO or too large is a problem naming the path", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const file = join(dir, "values.yaml")
      writeFileSync(file, helmValues)
      assert.strictEqual(failMax((yield* ResilienceConfig.load(file)).payments_api), 3)

      const missing = yield* Effect.flip(ResilienceConfig.load(join(dir, "nope.yaml")))
      assert.include(missing.message, "nope.yaml")

      mkdirSync(join(dir, "adir"))
      const directory = yield* Effect.flip(ResilienceConfig.load(join(dir, "adir")))
      assert.include(directory.message, "a regular file")

      // A FIFO with no writer: reading it would wait for ever; the loader answers at once.
      const fifo = join(dir, "fifo.yaml")
      execFileSync("mkfifo", [fifo])
      const started = performance.now()
      const pipe = yield* Effect.flip(ResilienceConfig.load(fifo))
      assert.include(pipe.message, "a regular file (not a directory, FIFO, socket or device)")
      assert.isBelow(performance.now() - started, 2_000)

      const large = join(dir, "large.yaml")
      writeFileSync(large, `# ${"x".repeat(2 * 1024 * 1024)}\n`)
      const tooLarge = yield* Effect.flip(ResilienceConfig.load(large))
      assert.include(tooLarge.message, "at most 1048576 bytes (1 MiB)")
      assert.include(tooLarge.message, "large.yaml")
    }))

  it("never crashes and never yields a bad breaker, whatever the input (property)", () => {
    const value = fc.oneof(
      fc.integer({ min: -5, max: 100 }),
      fc.double({ noNaN: false }),
      fc.boolean(),
      fc.string({ maxLength: 8 }),
      fc.constantFrom("fail-open", "fail-fast"),
      fc.constant(null),
      fc.array(fc.integer(), { maxLength: 2 })
    )
    const section = fc.dictionary(
      fc.constantFrom(
        "enabled",
        "failMax",
        "maxOpenSeconds",
        "recoveryTimeoutSeconds",
        "halfOpenPermits",
        "successThreshold",
        "callTimeoutSeconds",
        "slowCallSeconds",
        "failureMode",
        "bogus",
        "constructor",
        "__proto__"
      ),
      value
    )
    const document = fc.oneof(
      fc.record({
        circuitBreaker: fc.dictionary(fc.oneof(fc.constantFrom("a", "b_c", "toString"), fc.string()), section)
      }),
      fc.anything()
    )
    const env = fc.dictionary(
      fc.constantFrom("CIRCUIT_BREAKER_A_FAIL_MAX", "CIRCUIT_BREAKER_A_ENABLED", "CIRCUIT_BREAKER_A_FAILMAX"),
      fc.string({ maxLength: 6 })
    )
    fc.assert(
      fc.property(document, fc.string({ maxLength: 40 }), env, (doc, garbage, vars) => {
        for (const text of [JSON.stringify(doc) ?? "", garbage]) {
          const exit = Effect.runSyncExit(ResilienceConfig.parse(text, { env: vars }))
          if (Exit.isSuccess(exit)) {
            // Whatever was accepted must make valid breakers.
            for (const [name, settings] of Object.entries(exit.value)) {
              const options = ResilienceConfig.toBreakerOptions(name, settings)
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

describe("ResilienceConfig: a file full of mistakes (issue 27)", () => {
  it.effect("the message shows the first 20 problems and counts the rest; every problem stays in `problems`", () =>
    Effect.gen(function*() {
      const circuits = Array.from(
        { length: 500 },
        (_, i) => `  c${i}: { failMax: -1, failureMode: ${"x".repeat(500)} }`
      )
      const error = yield* Effect.flip(ResilienceConfig.parse(`circuitBreaker:\n${circuits.join("\n")}\n`))
      assert.strictEqual(error.problems.length, 1000)
      const lines = error.message.split("\n")
      assert.strictEqual(lines.filter((line) => line.startsWith("  - ")).length, ResilienceConfig.maxShownProblems)
      assert.strictEqual(lines.at(-1), "  ... and 980 more problems")
      // Each value is cut short: 20 lines of a few hundred characters at most, whatever the input.
      assert.isBelow(error.message.length, 20 * 300)
    }))
})
