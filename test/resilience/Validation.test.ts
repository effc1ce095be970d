/**
 * Option validation as a caller sees it: every bad option fails `CircuitBreaker.make` with a
 * `CircuitBreakerOptionsError` naming the circuit, the option, the value and what is allowed (the
 * message is part of the contract), and every value at the edge of what is allowed is accepted.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerOptionsError, TripPolicy } from "@neural-hive/resilience"
import { Effect, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { ok, trip } from "../support/breakers.ts"

const DURATION = "a finite duration > 0 (e.g. \"30 seconds\" or milliseconds)"
const INTEGER = "an integer >= 1"
const RATIO = "a number in (0, 1]"
const NAME = "1-64 characters of letters, digits, _ . : - starting with a letter or _"
const POLICY = "a TripPolicy: consecutive(n), failureRate({...}), failureRateOverTime({...}) or your own"
const WINDOW = "a finite duration > 0 (e.g. \"1 minute\")"

const circular: Record<string, unknown> = {}
circular["self"] = circular

/** [title, options, option, value as the message shows it, expected] */
const rejected: ReadonlyArray<readonly [string, CircuitBreaker.Options, string, string, string]> = [
  [
    "no name",
    {} as CircuitBreaker.Options,
    "name",
    "undefined",
    NAME
  ],
  [
    "a name starting with a digit",
    { name: "1kafka" },
    "name",
    "\"1kafka\"",
    NAME
  ],
  [
    "a name starting with -",
    { name: "-kafka" },
    "name",
    "\"-kafka\"",
    NAME
  ],
  [
    "a name ending with a space",
    { name: "kafka " },
    "name",
    "\"kafka \"",
    NAME
  ],
  [
    "a name of 65 characters",
    { name: "k".repeat(65) },
    "name",
    `"${"k".repeat(65)}"`,
    NAME
  ],
  [
    "failMax with a policy",
    { name: "c", failMax: 3, policy: TripPolicy.consecutive(3) },
    "failMax",
    "3",
    "no failMax when a policy is given (the policy decides)"
  ],
  ["failMax 0", { name: "c", failMax: 0 }, "failMax", "0", INTEGER],
  ["failMax as a string", { name: "c", failMax: "3" as never }, "failMax", "\"3\"", INTEGER],
  ["failMax NaN", { name: "c", failMax: NaN }, "failMax", "NaN", INTEGER],
  ["failMax Infinity", { name: "c", failMax: Infinity }, "failMax", "Infinity", INTEGER],
  ["failMax as a bigint", { name: "c", failMax: 3n as never }, "failMax", "3", INTEGER],
  ["recoveryTimeout 0", { name: "c", recoveryTimeout: 0 }, "recoveryTimeout", "0", DURATION],
  ["recoveryTimeout Infinity", { name: "c", recoveryTimeout: "Infinity" }, "recoveryTimeout", "\"Infinity\"", DURATION],
  [
    "recoveryTimeout as an object",
    { name: "c", recoveryTimeout: circular as never },
    "recoveryTimeout",
    "[object Object]",
    DURATION
  ],
  [
    "maxOpenDuration unparseable",
    { name: "c", maxOpenDuration: "later" as never },
    "maxOpenDuration",
    "\"later\"",
    DURATION
  ],
  [
    "maxOpenDuration below recoveryTimeout",
    { name: "c", recoveryTimeout: 2_000, maxOpenDuration: 1_999 },
    "maxOpenDuration",
    "1999",
    "a duration >= recoveryTimeout (2000 ms)"
  ],
  [
    "halfOpen as a number",
    { name: "c", halfOpen: 2 as never },
    "halfOpen",
    "2",
    "an object { permits?, successThreshold? }"
  ],
  [
    "halfOpen null",
    { name: "c", halfOpen: null as never },
    "halfOpen",
    "null",
    "an object { permits?, successThreshold? }"
  ],
  ["halfOpen.permits 0", { name: "c", halfOpen: { permits: 0 } }, "halfOpen.permits", "0", INTEGER],
  [
    "halfOpen.successThreshold 0",
    { name: "c", halfOpen: { successThreshold: 0 } },
    "halfOpen.successThreshold",
    "0",
    INTEGER
  ],
  [
    "halfOpen.successThreshold above permits",
    { name: "c", halfOpen: { permits: 2, successThreshold: 3 } },
    "halfOpen.successThreshold",
    "3",
    "an integer between 1 and halfOpen.permits (2)"
  ],
  ["callTimeout negative", { name: "c", callTimeout: -1 }, "callTimeout", "-1", DURATION],
  ["slowCallThreshold 0", { name: "c", slowCallThreshold: 0 }, "slowCallThreshold", "0", DURATION],
  [
    "isFailure not a function",
    { name: "c", isFailure: true as never },
    "isFailure",
    "true",
    "a function (error) => boolean"
  ],
  [
    "probe not an Effect",
    { name: "c", probe: (() => 1) as never },
    "probe",
    "a function",
    "an Effect (the dependency's cheap health check)"
  ],
  ["probeGrace 0", { name: "c", probeGrace: 0 }, "probeGrace", "0", DURATION],
  ["probeTimeout unparseable", { name: "c", probeTimeout: "never" as never }, "probeTimeout", "\"never\"", DURATION],
  ["enabled as a string", { name: "c", enabled: "yes" as never }, "enabled", "\"yes\"", "true or false"],
  ["throwOnTrip as a number", { name: "c", throwOnTrip: 1 as never }, "throwOnTrip", "1", "true or false"],
  [
    "failureMode unknown",
    { name: "c", failureMode: "fail-silent" as never },
    "failureMode",
    "\"fail-silent\"",
    "\"fail-fast\" or \"fail-open\""
  ],
  [
    "excluded unknown",
    { name: "c", excluded: "failure" as never },
    "excluded",
    "\"failure\"",
    "\"ignored\" or \"success\""
  ],
  [
    "policy not a policy",
    { name: "c", policy: 3 as never },
    "policy",
    "3",
    POLICY
  ],
  [
    "policy without a counter",
    { name: "c", policy: { _tag: "Mine", usesClock: false } as never },
    "policy",
    "{\"_tag\":\"Mine\",\"usesClock\":false}",
    POLICY
  ],
  [
    "a 0.1 Custom wrapper around nothing",
    { name: "c", policy: { _tag: "Custom", usesClock: false, counter: () => ({}), policy: null } as never },
    "policy",
    "null",
    POLICY
  ],
  [
    "a 0.1 Custom wrapper around a bad policy",
    {
      name: "c",
      policy: { _tag: "Custom", usesClock: false, counter: () => ({}), policy: TripPolicy.consecutive(0) } as never
    },
    "policy.failMax",
    "0",
    INTEGER
  ],
  ["consecutive(0)", { name: "c", policy: TripPolicy.consecutive(0) }, "policy.failMax", "0", INTEGER],
  [
    "failureRate threshold 0",
    { name: "c", policy: TripPolicy.failureRate({ threshold: 0, size: 10 }) },
    "policy.threshold",
    "0",
    RATIO
  ],
  [
    "failureRate threshold above 1",
    { name: "c", policy: TripPolicy.failureRate({ threshold: 1.01, size: 10 }) },
    "policy.threshold",
    "1.01",
    RATIO
  ],
  [
    "failureRate threshold as a string",
    { name: "c", policy: TripPolicy.failureRate({ threshold: "0.5" as never, size: 10 }) },
    "policy.threshold",
    "\"0.5\"",
    RATIO
  ],
  [
    "failureRate size 0",
    { name: "c", policy: TripPolicy.failureRate({ threshold: 0.5, size: 0, minimumCalls: 1 }) },
    "policy.size",
    "0",
    INTEGER
  ],
  [
    "failureRate minimumCalls 0",
    { name: "c", policy: TripPolicy.failureRate({ threshold: 0.5, size: 10, minimumCalls: 0 }) },
    "policy.minimumCalls",
    "0",
    INTEGER
  ],
  [
    "failureRate minimumCalls above size",
    { name: "c", policy: TripPolicy.failureRate({ threshold: 0.5, size: 10, minimumCalls: 11 }) },
    "policy.minimumCalls",
    "11",
    "an integer between 1 and size (10)"
  ],
  [
    "failureRateOverTime threshold 0",
    { name: "c", policy: TripPolicy.failureRateOverTime({ threshold: 0, window: "1 minute", minimumCalls: 1 }) },
    "policy.threshold",
    "0",
    RATIO
  ],
  [
    "failureRateOverTime without a window",
    { name: "c", policy: TripPolicy.failureRateOverTime({ threshold: 0.5, minimumCalls: 1 } as never) },
    "policy.window",
    "NaN",
    WINDOW
  ],
  [
    "failureRateOverTime window 0",
    { name: "c", policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: 0, minimumCalls: 1 }) },
    "policy.window",
    "0",
    WINDOW
  ],
  [
    "failureRateOverTime window Infinity",
    { name: "c", policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: "Infinity", minimumCalls: 1 }) },
    "policy.window",
    "Infinity",
    WINDOW
  ],
  [
    "failureRateOverTime window unparseable",
    {
      name: "c",
      policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: "a while" as never, minimumCalls: 1 })
    },
    "policy.window",
    "NaN",
    WINDOW
  ],
  [
    "failureRateOverTime minimumCalls 0",
    { name: "c", policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: 1_000, minimumCalls: 0 }) },
    "policy.minimumCalls",
    "0",
    INTEGER
  ],
  [
    "failureRateOverTime buckets 0",
    {
      name: "c",
      policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: 1_000, minimumCalls: 1, buckets: 0 })
    },
    "policy.buckets",
    "0",
    INTEGER
  ],
  [
    "failureRateOverTime buckets 1001",
    {
      name: "c",
      policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: 1_000, minimumCalls: 1, buckets: 1001 })
    },
    "policy.buckets",
    "1001",
    "an integer between 1 and 1000"
  ]
]

describe("CircuitBreaker options: every bad option is named, with its value and what is allowed", () => {
  for (const [title, options, option, shown, expected] of rejected) {
    it.effect(`${title}: ${option}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(CircuitBreaker.make(options))
        assert.instanceOf(error, CircuitBreakerOptionsError)
        const circuit = typeof options.name === "string" ? options.name : "<unnamed>"
        assert.deepInclude(error, { circuit, option, expected })
        assert.strictEqual(
          error.message,
          `circuit breaker "${circuit}": option ${option} is ${shown}, expected ${expected}`
        )
        // validate answers the same without making a breaker.
        assert.deepStrictEqual(CircuitBreaker.validate(options), error)
      }).pipe(Effect.scoped))
  }

  it("reports the first problem found, in the order of the options table", () => {
    const error = CircuitBreaker.validate({ name: "c", failMax: 0, recoveryTimeout: -1, halfOpen: { permits: 0 } })
    assert.strictEqual(error?.option, "failMax")
    assert.strictEqual(
      CircuitBreaker.validate({ name: "c", recoveryTimeout: -1, halfOpen: { permits: 0 } })?.option,
      "recoveryTimeout"
    )
  })
})

/** Options at the edge of what is allowed. */
const accepted: ReadonlyArray<readonly [string, CircuitBreaker.Options]> = [
  ["a one-letter name", { name: "k" }],
  ["a name of 64 characters", { name: "k".repeat(64) }],
  ["a name using every allowed character", { name: "_Az09_.:-zZ" }],
  ["a name starting with an upper-case letter", { name: "Z" }],
  ["failMax 1", { name: "c", failMax: 1 }],
  ["maxOpenDuration equal to recoveryTimeout (the seed's 60/60)", {
    name: "c",
    recoveryTimeout: "60 seconds",
    maxOpenDuration: "60 seconds"
  }],
  ["a recoveryTimeout above the default maxOpenDuration", { name: "c", recoveryTimeout: "90 seconds" }],
  ["a sub-millisecond duration", { name: "c", callTimeout: 0.5 }],
  ["successThreshold equal to permits", { name: "c", halfOpen: { permits: 3, successThreshold: 3 } }],
  ["threshold 1 and minimumCalls equal to size", {
    name: "c",
    policy: TripPolicy.failureRate({ threshold: 1, size: 4, minimumCalls: 4 })
  }],
  ["1 and 1000 buckets", {
    name: "c",
    policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: 1_000, minimumCalls: 1, buckets: 1000 })
  }],
  ["a policy of one's own", {
    name: "c",
    policy: { _tag: "Mine", usesClock: false, counter: () => TripPolicy.consecutive(1).counter() }
  }],
  ["every boolean and enum option", {
    name: "c",
    enabled: false,
    throwOnTrip: true,
    failureMode: "fail-open",
    excluded: "success"
  }],
  ["the other enum values", {
    name: "c",
    enabled: true,
    throwOnTrip: false,
    failureMode: "fail-fast",
    excluded: "ignored"
  }]
]

describe("CircuitBreaker options: values at the edge of the allowed range are accepted", () => {
  for (const [title, options] of accepted) {
    it.effect(title, () =>
      Effect.gen(function*() {
        assert.isUndefined(CircuitBreaker.validate(options))
        const breaker = yield* CircuitBreaker.make(options)
        assert.strictEqual(breaker.name, options.name)
      }).pipe(Effect.scoped))
  }
})

describe("CircuitBreaker options: defaults", () => {
  it("the defaults table", () => {
    assert.deepStrictEqual(CircuitBreaker.defaults, {
      failMax: 5,
      recoveryTimeoutMillis: 30_000,
      maxOpenDurationMillis: 60_000,
      permits: 1,
      probeGraceMillis: 1_000,
      probeTimeoutMillis: 10_000
    })
  })

  it.effect("a breaker with only a name: 5 failures open it for 30 s, then 60 s per failed probe", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c" })
      yield* trip(breaker, 4)
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* trip(breaker, 1)
      assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 30_000)
      assert.strictEqual((yield* breaker.snapshot).failureMode, "fail-fast")
      yield* TestClock.adjust("30 seconds")
      yield* trip(breaker, 1)
      assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 60_000)
      yield* TestClock.adjust("60 seconds")
      yield* trip(breaker, 1)
      assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 60_000) // capped at the default maximum
    }).pipe(Effect.scoped))

  it.effect("maxOpenDuration defaults to recoveryTimeout when that is longer than 60 s", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "90 seconds" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("90 seconds")
      yield* trip(breaker, 1)
      assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 90_000)
    }).pipe(Effect.scoped))

  it.effect("halfOpen.successThreshold defaults to permits", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: 1_000,
        halfOpen: { permits: 2 }
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust(1_000)
      yield* ok.pipe(CircuitBreaker.withBreaker(breaker))
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* ok.pipe(CircuitBreaker.withBreaker(breaker))
      assert.strictEqual(yield* breaker.state, "Closed")
    }).pipe(Effect.scoped))
})

describe("CircuitBreaker.durationOption: the integrations' duration options", () => {
  it.effect("gives the fallback when absent, milliseconds when valid, a typed error naming the option otherwise", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        yield* CircuitBreaker.durationOption("redis_client", "commandTimeout", undefined, 5_000),
        5_000
      )
      assert.strictEqual(
        yield* CircuitBreaker.durationOption("redis_client", "commandTimeout", "2 seconds", 5_000),
        2_000
      )
      const error = yield* Effect.flip(
        CircuitBreaker.durationOption("redis_client", "commandTimeout", "soon" as never, 1)
      )
      assert.deepInclude(error, {
        circuit: "redis_client",
        option: "commandTimeout",
        value: "soon",
        expected: DURATION
      })
    }))
})

describe("CircuitBreaker options: openDuration schedules", () => {
  it.effect("a schedule that ends (here: after 3 s of delays) repeats its last delay", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        openDuration: Schedule.exponential("1 second").pipe(Schedule.upTo({ duration: "3 seconds" }))
      })
      const periods: Array<number> = []
      yield* trip(breaker, 1)
      for (let i = 0; i < 4; i++) {
        const { retryAfterMillis } = yield* breaker.snapshot
        periods.push(retryAfterMillis)
        yield* TestClock.adjust(retryAfterMillis)
        yield* trip(breaker, 1)
      }
      assert.deepStrictEqual(periods, [1_000, 2_000, 4_000, 4_000]) // 1 + 2 s elapsed, then 4 s and it ends
    }).pipe(Effect.scoped))
})
