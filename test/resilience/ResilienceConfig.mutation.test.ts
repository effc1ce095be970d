/**
 * ResilienceConfig at its edges: each range's limits, the environment's spelling of values, where the
 * circuits live (section paths, a closed format, renamed or missing keys), what an unknown variable's
 * problem offers, and how a problem shows the bad value. Written for behaviour a mutation run showed
 * unpinned (docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { ResilienceConfig, TripPolicy } from "@neural-hive/resilience"
import { Duration, Effect } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

type Problems = ReadonlyArray<ResilienceConfig.Problem>

/** Every policy's keys as variable parts, in the registry's order (FAIL_MAX, THRESHOLD, ...). */
const policyKeys = [...new Set(TripPolicy.registry.flatMap((schema) => Object.keys(schema.keys)))]
  .map((key) => key.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase())
  .join(", ")

/** The consecutive policy's failMax of a circuit. */
const failMax = (settings: ResilienceConfig.CircuitSettings | undefined) =>
  (settings?.policy as TripPolicy.Consecutive | undefined)?.failMax

/** `decode`'s problems, or a failed assertion when it accepted the document. */
const problemsOf = (
  document: unknown,
  env: Readonly<Record<string, string | undefined>> = {},
  options: ResilienceConfig.Format = {}
): Problems => {
  const result = ResilienceConfig.decode(document, env, options)
  assert.isTrue(Array.isArray(result), "expected problems")
  return result as Problems
}

/** `decode`'s settings, or a failed assertion when it found problems. */
const settingsOf = (
  document: unknown,
  env: Readonly<Record<string, string | undefined>> = {},
  options: ResilienceConfig.Format = {}
): ResilienceConfig.Settings => {
  const result = ResilienceConfig.decode(document, env, options)
  assert.isFalse(Array.isArray(result), `unexpected problems: ${JSON.stringify(result)}`)
  return result as ResilienceConfig.Settings
}

const one = (settings: Partial<ResilienceConfig.CircuitSettings> | unknown) => ({ circuitBreaker: { c: settings } })

const keys = (problems: Problems) => problems.map((p) => p.key)

describe("ResilienceConfig: the limits of each range, from the file", () => {
  it("counts are integers from 1 to 1,000,000", () => {
    for (const n of [1, 1_000_000]) assert.strictEqual(failMax(settingsOf(one({ failMax: n })).c), n)
    for (const failMax of [0, 1_000_001, 1.5, "3", true]) {
      const [problem] = problemsOf(one({ failMax }))
      assert.deepStrictEqual(problem, {
        key: "circuitBreaker.c.failMax",
        value: failMax,
        expected: "an integer between 1 and 1000000"
      })
    }
  })

  it("durations are seconds up to 7 days; only slowCallSeconds may be 0", () => {
    const week = 7 * 24 * 3600
    assert.deepStrictEqual(
      settingsOf(one({ recoveryTimeoutSeconds: week, maxOpenSeconds: week })).c!.maxOpenDuration,
      Duration.seconds(week)
    )
    assert.deepStrictEqual(settingsOf(one({ slowCallSeconds: 0 })).c!.slowCallThreshold, Duration.zero)
    assert.deepStrictEqual(settingsOf(one({ callTimeoutSeconds: 0.25 })).c!.callTimeout, Duration.millis(250))
    for (const value of [0, week + 1, -1, Infinity, "30"]) {
      const [problem] = problemsOf(one({ callTimeoutSeconds: value }))
      assert.deepStrictEqual(problem, {
        key: "circuitBreaker.c.callTimeoutSeconds",
        value,
        expected: "a number of seconds > 0 and at most 604800 (7 days)"
      })
    }
    const [negative] = problemsOf(one({ slowCallSeconds: -1 }))
    assert.strictEqual(negative?.expected, "a number of seconds >= 0 and at most 604800 (7 days)")
  })

  it("enabled is a boolean and failureMode one of its names, never another type", () => {
    assert.isFalse(settingsOf(one({ enabled: false })).c!.enabled)
    assert.deepStrictEqual(problemsOf(one({ enabled: "true" })), [
      { key: "circuitBreaker.c.enabled", value: "true", expected: "true or false" }
    ])
    assert.deepStrictEqual(problemsOf(one({ failureMode: 1 })), [
      { key: "circuitBreaker.c.failureMode", value: 1, expected: "one of fail-fast, fail-open" }
    ])
  })

  it("maxOpenSeconds may equal recoveryTimeoutSeconds, not go below it; names follow the format", () => {
    assert.deepStrictEqual(
      settingsOf(one({ recoveryTimeoutSeconds: 40, maxOpenSeconds: 40 })).c!.maxOpenDuration,
      Duration.seconds(40)
    )
    const format = { names: { maxOpenSeconds: "timeoutSeconds", recoveryTimeoutSeconds: "recoverySeconds" } }
    const [problem] = problemsOf(one({ recoverySeconds: 40, timeoutSeconds: 39 }), {}, format)
    assert.deepStrictEqual(problem, {
      key: "circuitBreaker.c.timeoutSeconds",
      value: 39,
      expected: "a number of seconds >= recoverySeconds (40) and at most 604800 (7 days): it caps the open period"
    })
  })

  it("successThreshold follows halfOpenPermits unless given, and may not exceed it", () => {
    assert.strictEqual(settingsOf(one({ halfOpenPermits: 4 })).c!.successThreshold, 4)
    assert.strictEqual(settingsOf(one({ halfOpenPermits: 4, successThreshold: 2 })).c!.successThreshold, 2)
    // Given by the environment counts as given too.
    const fromEnv = settingsOf(one({ halfOpenPermits: 4 }), { CIRCUIT_BREAKER_C_SUCCESS_THRESHOLD: "3" })
    assert.strictEqual(fromEnv.c!.successThreshold, 3)
    const format = { names: { successThreshold: "probesToClose", halfOpenPermits: "probes" } }
    assert.deepStrictEqual(problemsOf(one({ probes: 2, probesToClose: 3 }), {}, format), [
      { key: "circuitBreaker.c.probesToClose", value: 3, expected: "an integer between 1 and probes (2)" }
    ])
    // A format's own default for successThreshold is a given value.
    const known = settingsOf({}, {}, { circuits: { k: { halfOpenPermits: 3, successThreshold: 1 } } })
    assert.deepStrictEqual([known.k!.halfOpenPermits, known.k!.successThreshold], [3, 1])
  })
})

describe("ResilienceConfig: values from the environment", () => {
  const declared = one({})

  it("booleans are true or false, trimmed; anything else is refused", () => {
    assert.isTrue(settingsOf(declared, { CIRCUIT_BREAKER_C_ENABLED: " true " }).c!.enabled)
    assert.isFalse(settingsOf(declared, { CIRCUIT_BREAKER_C_ENABLED: "false" }).c!.enabled)
    assert.deepStrictEqual(problemsOf(declared, { CIRCUIT_BREAKER_C_ENABLED: "yes" }), [
      { key: "CIRCUIT_BREAKER_C_ENABLED", value: "yes", expected: "true or false" }
    ])
  })

  it("numbers in decimal digits; the problem says how to write them", () => {
    const settings = settingsOf(declared, {
      CIRCUIT_BREAKER_C_FAIL_MAX: "7",
      CIRCUIT_BREAKER_C_RECOVERY_TIMEOUT_SECONDS: "2.5",
      CIRCUIT_BREAKER_C_FAILURE_MODE: "fail-open"
    })
    assert.deepStrictEqual([failMax(settings.c), settings.c!.recoveryTimeout, settings.c!.failureMode], [
      7,
      Duration.seconds(2.5),
      "fail-open"
    ])
    assert.deepStrictEqual(
      problemsOf(declared, { CIRCUIT_BREAKER_C_FAIL_MAX: "0", CIRCUIT_BREAKER_C_SLOW_CALL_SECONDS: "x" }),
      [
        {
          key: "CIRCUIT_BREAKER_C_FAIL_MAX",
          value: "0",
          expected: "an integer between 1 and 1000000, in decimal digits (no sign, 0x, 0b or exponent)"
        },
        {
          key: "CIRCUIT_BREAKER_C_SLOW_CALL_SECONDS",
          value: "x",
          expected:
            "a number of seconds >= 0 and at most 604800 (7 days), in decimal digits like 30 or 2.5 (no sign, 0x, 0b or exponent)"
        }
      ]
    )
  })

  it("a variable set to undefined is no variable; other prefixes are not ours", () => {
    assert.strictEqual(
      failMax(
        settingsOf(declared, { CIRCUIT_BREAKER_C_FAIL_MAX: undefined, CIRCUIT_BREAKER_TYPO: undefined, OTHER: "1" }).c
      ),
      5
    )
  })

  it("an unknown variable's problem names the circuits and keys it could have meant", () => {
    const [problem] = problemsOf(declared, { CIRCUIT_BREAKER_NOPE_X: "1" }, { names: { slowCallSeconds: null } })
    assert.strictEqual(
      problem?.expected,
      "a known variable CIRCUIT_BREAKER_<CIRCUIT>_<KEY>, with a circuit of C and a key of ENABLED, " +
        `${policyKeys}, ` +
        "RECOVERY_TIMEOUT_SECONDS, MAX_OPEN_SECONDS, HALF_OPEN_PERMITS, SUCCESS_THRESHOLD, CALL_TIMEOUT_SECONDS, " +
        "FAILURE_MODE, POLICY, or <SECTION>_<KEY> with a section of BULKHEAD, ADAPTIVE_LIMIT, RETRY, HEDGE"
    )
    const [none] = problemsOf({}, { CIRCUIT_BREAKER_X_FAIL_MAX: "1" })
    assert.match(none?.expected ?? "", /with a circuit of \(none declared\) and a key of ENABLED, FAIL_MAX/)
    // A circuit name of several words becomes one variable part each.
    const [near] = problemsOf({ circuitBreaker: { "payments-api.v2": {} } }, {
      CIRCUIT_BREAKER_PAYMENTSAPI_V2_FAILMAX: "1"
    })
    assert.strictEqual(near?.expected, "a known variable: did you mean CIRCUIT_BREAKER_PAYMENTS_API_V2_FAIL_MAX?")
  })

  it("envPrefix: another prefix, or null for no overrides at all", () => {
    assert.strictEqual(failMax(settingsOf(declared, { APP_CB_C_FAIL_MAX: "9" }, { envPrefix: "APP_CB_" }).c), 9)
    const off = settingsOf(declared, { CIRCUIT_BREAKER_C_FAIL_MAX: "9", CIRCUIT_BREAKER_TYPO: "1" }, {
      envPrefix: null
    })
    assert.strictEqual(failMax(off.c), 5)
  })
})

describe("ResilienceConfig: where the circuits are", () => {
  it("section: a key, a path of keys, or the root", () => {
    assert.deepStrictEqual(Object.keys(settingsOf({ resilience: { a: {} } }, {}, { section: "resilience" })), ["a"])
    assert.deepStrictEqual(Object.keys(settingsOf({ app: { cb: { a: {} } } }, {}, { section: ["app", "cb"] })), ["a"])
    assert.deepStrictEqual(Object.keys(settingsOf({ a: {}, b: {} }, {}, { section: [] })), ["a", "b"])
    // The default section is circuitBreaker; a document without it has no circuits.
    assert.deepStrictEqual(settingsOf({ other: { a: {} } }), {})
  })

  it("a step of the path that is not a mapping is a problem naming where it is", () => {
    assert.deepStrictEqual(problemsOf([1, 2], {}, { section: ["app", "cb"] }), [
      { key: "(root)", value: [1, 2], expected: "a mapping with a app key" }
    ])
    assert.deepStrictEqual(problemsOf({ app: [1] }, {}, { section: ["app", "cb"] }), [
      { key: "app", value: [1], expected: "a mapping with a cb key" }
    ])
    assert.deepStrictEqual(problemsOf({ app: { cb: 3 } }, {}, { section: ["app", "cb"] }), [
      { key: "app.cb", value: 3, expected: "a mapping of circuit names to their settings" }
    ])
    assert.deepStrictEqual(problemsOf([1], {}, { section: [] }), [
      { key: "(root)", value: [1], expected: "a mapping of circuit names to their settings" }
    ])
  })

  it("a closed format allows its circuits only, and says which", () => {
    const format = { closed: true, circuits: { kafka: {}, redis: {} } }
    assert.deepStrictEqual(problemsOf({ circuitBreaker: { kafak: {} } }, {}, format), [
      { key: "circuitBreaker.kafak", value: {}, expected: "one of kafka, redis" }
    ])
    assert.deepStrictEqual(problemsOf({ circuitBreaker: "x" }, {}, format), [
      { key: "circuitBreaker", value: "x", expected: "a mapping of kafka, redis" }
    ])
    // Known circuits exist even when the file omits them (and the section itself).
    assert.deepStrictEqual(Object.keys(settingsOf({}, {}, format)), ["kafka", "redis"])
  })

  it("a circuit that is not a mapping, and a key the format does not offer", () => {
    assert.deepStrictEqual(problemsOf(one([1]), {}, { names: { slowCallSeconds: null, failureMode: null } }), [
      {
        key: "circuitBreaker.c",
        value: [1],
        expected: "a mapping of enabled, failMax, recoveryTimeoutSeconds, maxOpenSeconds, halfOpenPermits, " +
          "successThreshold, callTimeoutSeconds, policy, bulkhead, adaptiveLimit, retry, hedge"
      }
    ])
    const [unknown] = problemsOf(one({ slowCallSeconds: 1 }), {}, { names: { slowCallSeconds: null } })
    assert.strictEqual(unknown?.key, "circuitBreaker.c.slowCallSeconds")
    // A circuit given as null has every default.
    assert.deepStrictEqual(settingsOf(one(null)).c, ResilienceConfig.defaults)
  })
})

describe("ResilienceConfig: the error's message shows the bad value", () => {
  const message = (value: unknown) =>
    new ResilienceConfigErrorOf([{ key: "k", value, expected: "e" }]).message.split("\n")[1]

  class ResilienceConfigErrorOf extends ResilienceConfig.ResilienceConfigError {
    constructor(problems: Problems) {
      super({ source: "test", problems })
    }
  }

  it("numbers as YAML writes them, strings quoted and clipped at 80 characters", () => {
    assert.strictEqual(message(3), "  - k: got 3, expected e")
    assert.strictEqual(message(NaN), "  - k: got .nan, expected e")
    assert.strictEqual(message(Infinity), "  - k: got .inf, expected e")
    assert.strictEqual(message(-Infinity), "  - k: got -.inf, expected e")
    assert.strictEqual(message(undefined), "  - k: got nothing, expected e")
    assert.strictEqual(message("a".repeat(80)), `  - k: got "${"a".repeat(80)}", expected e`)
    assert.strictEqual(message("a".repeat(81)), `  - k: got "${"a".repeat(80)}...", expected e`)
  })

  it("mappings and lists as JSON, with non-finite numbers spelled out, at most 20 items and 5 levels", () => {
    assert.strictEqual(
      message(new Map<unknown, unknown>([[1, [Infinity, 2]]])),
      `  - k: got {"1":[".inf",2]}, expected e`
    )
    const long = Array.from({ length: 25 }, (_, i) => i)
    assert.strictEqual(message(long), `  - k: got [${long.slice(0, 20).join(",")}], expected e`)
    assert.strictEqual(message([[[[[["deep"]]]]]]), `  - k: got [[[[["..."]]]]], expected e`)
    const wide = Array.from({ length: 20 }, () => "abcdefgh")
    assert.match(message(wide) ?? "", /^ {2}- k: got \["abcdefgh".{69}\.\.\., expected e$/)
  })

  it("what JSON cannot show is shown as text", () => {
    assert.strictEqual(message(10n), "  - k: got 10, expected e")
    assert.strictEqual(message(Symbol.for("s")), "  - k: got Symbol(s), expected e")
  })
})

describe("ResilienceConfig: sources and conversions", () => {
  it.effect("parse names its input YAML unless told; load names the path unless told", () =>
    Effect.gen(function*() {
      const parsed = yield* Effect.flip(ResilienceConfig.parse("circuitBreaker: { c: { failMax: 0 } }"))
      assert.strictEqual(parsed.source, "YAML")
      assert.match(parsed.message, /^invalid circuit breaker configuration \(YAML\):\n {2}- circuitBreaker\.c\.failMax/)
      const named = yield* Effect.flip(ResilienceConfig.parse("circuitBreaker: { c: { failMax: 0 } }", { source: "x" }))
      assert.strictEqual(named.source, "x")
      const path = join(mkdtempSync(join(tmpdir(), "nh-config-")), "values.yaml")
      writeFileSync(path, "circuitBreaker: { c: { failMax: 0 } }\n")
      assert.strictEqual((yield* Effect.flip(ResilienceConfig.load(path))).source, path)
      assert.strictEqual((yield* Effect.flip(ResilienceConfig.load(path, { source: "values" }))).source, "values")
      assert.deepStrictEqual(keys((yield* Effect.flip(ResilienceConfig.load(path))).problems), [
        "circuitBreaker.c.failMax"
      ])
    }))

  it("toBreakerOptions: the settings' durations and policy as they are, probes, and a slow-call threshold only when set", () => {
    const settings = {
      ...ResilienceConfig.defaults,
      recoveryTimeout: Duration.seconds(2),
      halfOpenPermits: 3,
      successThreshold: 2
    }
    const options = ResilienceConfig.toBreakerOptions("c", settings)
    assert.deepStrictEqual(options, {
      name: "c",
      enabled: true,
      policy: TripPolicy.consecutive(5),
      recoveryTimeout: Duration.seconds(2),
      maxOpenDuration: Duration.seconds(60),
      halfOpen: { permits: 3, successThreshold: 2 },
      callTimeout: Duration.seconds(10),
      failureMode: "fail-fast"
    })
    const slow = ResilienceConfig.toBreakerOptions("c", { ...settings, slowCallThreshold: Duration.millis(500) })
    assert.deepStrictEqual(slow.slowCallThreshold, Duration.millis(500))
  })
})
