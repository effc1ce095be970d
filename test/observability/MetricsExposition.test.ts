/**
 * The exposition writer of the breaker metrics (`internal/breakerSeries.ts`, `internal/exposition.ts`): its text
 * holds exactly what the previous prom-client implementation wrote (`legacyMetrics.ts`, fed the same breakers),
 * in both exposition formats and with a registry's default labels; counters never go down; a breaker that
 * leaves takes its state and duration series with it; the registry is left as it was found.
 */
import { assert, describe, it } from "@effect/vitest"
import { Metrics } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Prometheus from "prom-client"
import type * as HistogramModule from "../../packages/observability/src/internal/histogram.js"
import { Boom } from "../support/breakers.ts"
import * as Legacy from "./legacyMetrics.ts"
import { parse, type Sample } from "./scrape.ts"

// Imported by path, typed by its declarations (`.js`): tsc refuses a `.ts` import across its projects (TS2878).
const root = fileURLToPath(new URL("../..", import.meta.url))
const { Durations }: typeof HistogramModule = await import(
  path.join(root, "packages/observability/src/internal/histogram.ts")
)

const isFailure = (error: unknown) => !(error instanceof Boom) || error.counted

/** One call through `breaker` that takes `millis` of TestClock time and ends as `end`. */
const call = (breaker: CircuitBreaker.CircuitBreaker, millis: number, end: "ok" | "fail" | "caller" = "ok") =>
  Effect.gen(function*() {
    const body = Effect.sleep(`${millis} millis`).pipe(
      Effect.andThen(end === "ok" ? Effect.void : Effect.fail(new Boom({ counted: end === "fail" })))
    )
    const fiber = yield* Effect.forkChild(Effect.exit(body.pipe(withBreaker(breaker))))
    yield* TestClock.adjust(`${millis} millis`)
    yield* Fiber.join(fiber)
  })

/** A family of the exposition: its HELP and TYPE lines and its sample lines. */
interface Family {
  readonly header: ReadonlyArray<string>
  readonly lines: ReadonlyArray<string>
}

/** The families of an exposition, by name, in order (both formats; `# EOF` ends OpenMetrics). */
const families = (text: string): Map<string, Family> => {
  const out = new Map<string, { header: Array<string>; lines: Array<string> }>()
  let current: { header: Array<string>; lines: Array<string> } | undefined
  for (const line of text.split("\n")) {
    if (line === "" || line === "# EOF") continue
    if (line.startsWith("# HELP ")) {
      current = { header: [line], lines: [] }
      out.set(line.split(" ")[2]!, current)
    } else if (line.startsWith("# ")) {
      current!.header.push(line)
    } else {
      current!.lines.push(line)
    }
  }
  return out
}

/** A sample as a string that does not depend on the order of its labels. */
const canonical = (sample: Sample) =>
  `${sample.name}{${
    Object.entries(sample.labels).toSorted(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(",")
  }} ${sample.value}`

/** The breaker families of two expositions hold the same samples under the same HELP and TYPE. */
const breakerNames = (m: Map<string, Family>) => [...m.keys()].filter((name) => name.startsWith("circuit_breaker_"))

const assertSameContent = (actual: string, expected: string, exactLines: boolean) => {
  const a = families(actual)
  const e = families(expected)
  assert.deepStrictEqual(breakerNames(a), breakerNames(e), "the same metrics, in the same order")
  for (const name of breakerNames(e)) {
    assert.deepStrictEqual(a.get(name)!.header, e.get(name)!.header, `${name}: HELP and TYPE`)
    const samples = (family: Family) => parse(family.lines.join("\n")).map(canonical).toSorted()
    assert.deepStrictEqual(samples(a.get(name)!), samples(e.get(name)!), `${name}: samples`)
    if (exactLines) assert.deepStrictEqual(a.get(name)!.lines.toSorted(), e.get(name)!.lines.toSorted(), name)
  }
  assert.strictEqual(actual.endsWith("# EOF\n"), expected.endsWith("# EOF\n"), "the same ending")
}

interface Pair {
  readonly ours: Prometheus.Registry<Prometheus.RegistryContentType>
  readonly legacy: Prometheus.Registry<Prometheus.RegistryContentType>
  /** Both scraped at the same Clock instant, compared; the text of ours. */
  readonly compare: Effect.Effect<string>
}

/** The writer and the previous implementation on the same breakers, each in a registry of its own. */
const pair = (options: {
  readonly service: string
  readonly contentType?: Prometheus.RegistryContentType
  readonly defaultLabels?: Record<string, string>
}) =>
  Effect.gen(function*() {
    const registry = () => {
      const r = new Prometheus.Registry<Prometheus.RegistryContentType>()
      if (options.contentType !== undefined) r.setContentType(options.contentType)
      if (options.defaultLabels !== undefined) r.setDefaultLabels(options.defaultLabels)
      return r
    }
    const ours = yield* Metrics.make({ registry: registry(), service: options.service })
    const legacy = yield* Legacy.make({ registry: registry(), service: options.service })
    const compare = Effect.promise(async () => {
      const [text, reference] = await Promise.all([ours.metrics(), legacy.metrics()])
      assertSameContent(text, reference, options.defaultLabels === undefined)
      return text
    })
    return { ours, legacy, compare } satisfies Pair
  })

/** Every kind of line: each result, durations on and around bucket bounds, transitions, forced open, a replaced breaker. */
const exercise = ({ compare }: Pair) =>
  Effect.gen(function*() {
    const kafka = yield* CircuitBreaker.make({
      name: "kafka_producer",
      failMax: 2,
      recoveryTimeout: "30 seconds",
      slowCallThreshold: "1 second",
      isFailure
    })
    const redis = yield* CircuitBreaker.make({ name: "redis_client", failureMode: "fail-open" })
    yield* CircuitBreaker.make({ name: "temporal_client" })
    const gone = yield* Scope.make()
    const mongo = yield* CircuitBreaker.make({ name: "mongodb_client", isFailure }).pipe(Scope.provide(gone))
    yield* compare

    yield* call(kafka, 5)
    yield* call(kafka, 10)
    yield* call(kafka, 2_000)
    yield* call(kafka, 30, "caller")
    yield* call(kafka, 12_000, "fail")
    yield* call(kafka, 1)
    yield* call(mongo, 250)
    yield* call(mongo, 7, "caller")
    yield* redis.forceOpen
    yield* call(redis, 1)
    yield* compare

    // The open period ends with no call: the scrape shows HALF_OPEN and counts the transition.
    yield* TestClock.adjust("30 seconds")
    yield* compare
    yield* call(kafka, 3)
    yield* redis.reset
    yield* redis.disable
    yield* call(redis, 40, "fail")
    yield* compare

    // mongodb_client leaves (scraped first: the old counters caught up only at scrapes) and a new one comes.
    yield* Scope.close(gone, Exit.void)
    const text = yield* compare
    assert.notMatch(text, /circuit_breaker_state\{[^}]*circuit="mongodb_client"/)
    const again = yield* CircuitBreaker.make({ name: "mongodb_client", failMax: 1 })
    yield* call(again, 60, "fail")
    yield* call(again, 1)
    return yield* compare
  })

describe("Metrics exposition: the same content as the prom-client implementation", () => {
  it.effect("Prometheus text: every metric, result, bucket and transition, line for line", () =>
    Effect.gen(function*() {
      const text = yield* exercise(yield* pair({ service: "orchestrator-dynamic" }))
      // The scenario reached every kind of line.
      for (
        const needle of ["result=\"slow\"", "result=\"ignored\"", "le=\"+Inf\"", "to=\"half_open\"", "_sum{", "_count{"]
      ) {
        assert.include(text, needle)
      }
      assert.include(text, "circuit_breaker_trips_total{service=\"orchestrator-dynamic\",circuit=\"mongodb_client\"} 1")
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("a service label that needs escaping (quote, backslash, newline, not ASCII) is escaped as before", () =>
    Effect.gen(function*() {
      const text = yield* exercise(yield* pair({ service: "bill\"ing\\eu\nwest é" }))
      assert.include(text, "service=\"bill\\\"ing\\\\eu\\nwest é\"")
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("OpenMetrics: counters named without _total in HELP and TYPE, # EOF at the end", () =>
    Effect.gen(function*() {
      const text = yield* exercise(
        yield* pair({ service: "s", contentType: Prometheus.Registry.OPENMETRICS_CONTENT_TYPE })
      )
      assert.include(text, "# TYPE circuit_breaker_calls counter")
      assert.include(text, "circuit_breaker_calls_total{service=\"s\",circuit=\"kafka_producer\",result=\"success\"}")
      assert.isTrue(text.endsWith("# EOF\n"))
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("a registry's default labels (the fleet's pod) are on every line, as prom-client puts them", () =>
    Effect.gen(function*() {
      const text = yield* exercise(yield* pair({ service: "s", defaultLabels: { pod: "a", service: "ignored" } }))
      assert.include(text, "circuit_breaker_state{service=\"s\",circuit=\"kafka_producer\",pod=\"a\"} 0")
      assert.include(text, "circuit_breaker_call_duration_seconds_bucket{service=\"s\",circuit=\"kafka_producer\",")
      assert.notInclude(text, "service=\"ignored\"")
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("getMetricsAsJSON gives the samples the text gives", () =>
    Effect.gen(function*() {
      const p = yield* pair({ service: "s" })
      const text = yield* exercise(p)
      const json = yield* Effect.promise(() => p.ours.getMetricsAsJSON())
      const fromJson = json.filter((metric) => metric.name.startsWith("circuit_breaker_")).flatMap((metric) =>
        metric.values.map((v) =>
          canonical({
            name: (v as { metricName?: string }).metricName ?? metric.name,
            labels: Object.fromEntries(Object.entries(v.labels).map(([k, value]) => [k, String(value)])),
            value: v.value
          })
        )
      )
      const fromText = parse(text).filter((s) => s.name.startsWith("circuit_breaker_")).map(canonical)
      assert.deepStrictEqual(fromJson.toSorted(), fromText.toSorted())
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("a registry that does not ask the metrics for their text (Registry.merge) formats get() the same", () =>
    Effect.gen(function*() {
      const p = yield* pair({ service: "s" })
      const text = yield* exercise(p)
      const merged = Prometheus.Registry.merge([p.ours as Prometheus.Registry])
      assert.isFalse(Object.hasOwn(merged, "getMetricsAsString"))
      assertSameContent(yield* Effect.promise(() => merged.metrics()), text, true)
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))
})

/** A small deterministic generator (mulberry32), so a failure replays. */
const random = (seed: number) => () => {
  seed = (seed + 0x6D2B79F5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

describe("Metrics exposition: counters", () => {
  it.effect("never go down, and match the previous implementation, through 300 random steps", () =>
    Effect.gen(function*() {
      const p = yield* pair({ service: "s" })
      const next = random(29)
      const names = ["a", "b", "c"]
      const live = new Map<string, { breaker: CircuitBreaker.CircuitBreaker; scope: Scope.Closeable }>()
      const join = (name: string) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const options = {
            name,
            failMax: 2,
            recoveryTimeout: "5 seconds",
            slowCallThreshold: "1 second",
            isFailure
          } as const
          live.set(name, { breaker: yield* CircuitBreaker.make(options).pipe(Scope.provide(scope)), scope })
        })
      for (const name of names) yield* join(name)
      const previous = new Map<string, number>()
      let checked = 0
      for (let step = 0; step < 300; step++) {
        const name = names[Math.floor(next() * names.length)]!
        const entry = live.get(name)
        const roll = next()
        if (entry === undefined) {
          yield* join(name)
        } else if (roll < 0.6) {
          const ends = ["ok", "fail", "caller"] as const
          yield* call(entry.breaker, Math.floor(next() * 1_500), ends[Math.floor(next() * 3)]!)
        } else if (roll < 0.7) {
          yield* TestClock.adjust("5 seconds")
        } else if (roll < 0.75) {
          yield* entry.breaker.forceOpen
        } else if (roll < 0.8) {
          yield* entry.breaker.reset
        } else if (roll < 0.85) {
          // Scraped first: the previous implementation caught its counters up only at scrapes.
          yield* p.compare
          yield* Scope.close(entry.scope, Exit.void)
          live.delete(name)
        } else {
          const samples = parse(yield* p.compare)
          for (const sample of samples) {
            if (!sample.name.endsWith("_total")) continue
            const key = canonical({ ...sample, value: 0 })
            assert.isAtLeast(sample.value, previous.get(key) ?? 0, key)
            previous.set(key, sample.value)
            checked++
          }
        }
      }
      assert.isAbove(checked, 100)
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))

  it.effect("resetMetrics sets them to 0; they count on from there", () =>
    Effect.gen(function*() {
      const registry = yield* Metrics.PrometheusRegistry
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
      yield* call(breaker, 20)
      yield* call(breaker, 20, "fail")
      registry.resetMetrics()
      let samples = parse(yield* Effect.promise(() => registry.metrics()))
      const value = (name: string, result?: string) =>
        samples.find((s) => s.name === name && (result === undefined || s.labels["result"] === result))?.value
      assert.strictEqual(value("circuit_breaker_calls_total", "success"), 0)
      assert.strictEqual(value("circuit_breaker_trips_total"), 0)
      assert.strictEqual(value("circuit_breaker_transitions_total"), undefined)
      assert.strictEqual(value("circuit_breaker_call_duration_seconds_count"), undefined)
      assert.strictEqual(value("circuit_breaker_state"), 1)
      yield* call(breaker, 20)
      samples = parse(yield* Effect.promise(() => registry.metrics()))
      assert.strictEqual(value("circuit_breaker_calls_total", "rejected"), 1)
      assert.strictEqual(value("circuit_breaker_calls_total", "success"), 0)
    }).pipe(Effect.provide(Metrics.layer().pipe(Layer.provideMerge(Registry.layer)))))
})

describe("Metrics exposition: a breaker leaving", () => {
  it.effect("takes its state and duration series out of the output; its counters stay for the next of its name", () =>
    Effect.gen(function*() {
      const registry = yield* Metrics.PrometheusRegistry
      const scope = yield* Scope.make()
      const breaker = yield* CircuitBreaker.make({ name: "redis_client" }).pipe(Scope.provide(scope))
      yield* CircuitBreaker.make({ name: "kafka_producer" })
      yield* call(breaker, 20)
      const scrape = Effect.promise(() => registry.metrics())
      assert.include(
        yield* scrape,
        "circuit_breaker_call_duration_seconds_count{service=\"s\",circuit=\"redis_client\""
      )
      yield* Scope.close(scope, Exit.void)
      // A call on the breaker after it left reaches nothing here: its listener went with it.
      yield* call(breaker, 20, "fail")
      const text = yield* scrape
      const redisLines = text.split("\n").filter((line) => line.includes("circuit=\"redis_client\""))
      assert.deepStrictEqual(redisLines.map((line) => line.slice(0, line.indexOf("{"))).toSorted(), [
        ...Array(5).fill("circuit_breaker_calls_total"),
        "circuit_breaker_failures_total",
        "circuit_breaker_trips_total"
      ])
      assert.include(text, "circuit_breaker_calls_total{service=\"s\",circuit=\"redis_client\",result=\"success\"} 1")
      assert.include(text, "circuit_breaker_failures_total{service=\"s\",circuit=\"redis_client\"} 0")
      assert.include(text, "circuit_breaker_state{service=\"s\",circuit=\"kafka_producer\"} 0")
      const again = yield* CircuitBreaker.make({ name: "redis_client" })
      yield* call(again, 20)
      assert.include(
        yield* scrape,
        "circuit_breaker_calls_total{service=\"s\",circuit=\"redis_client\",result=\"success\"} 2"
      )
    }).pipe(Effect.provide(Metrics.layer({ service: "s" }).pipe(Layer.provideMerge(Registry.layer)))))

  it.effect("the layer's release takes the metrics out and gives the registry its own getMetricsAsString back", () =>
    Effect.gen(function*() {
      const registry = new Prometheus.Registry()
      const own = new Prometheus.Counter({ name: "app_total", help: "app", registers: [registry] })
      own.inc()
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const scope = yield* Scope.make()
      yield* Metrics.make({ registry }).pipe(Scope.provide(scope))
      assert.isTrue(Object.hasOwn(registry, "getMetricsAsString"))
      yield* call(breaker, 20)
      assert.include(yield* Effect.promise(() => registry.metrics()), "circuit_breaker_call_duration_seconds_count")
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(Object.hasOwn(registry, "getMetricsAsString"))
      assert.strictEqual(
        yield* Effect.promise(() => registry.metrics()),
        "# HELP app_total app\n# TYPE app_total counter\napp_total 1\n"
      )
    }).pipe(Effect.provide(Registry.layer)))
})

describe("Metrics exposition: the duration storage", () => {
  it("a row per series: a value on a bound counts in that bucket, above the last only in +Inf", () => {
    const durations = new Durations([1, 0.1, 0.5])
    assert.deepStrictEqual(durations.bounds, [0.1, 0.5, 1])
    const row = durations.allocate()
    for (const seconds of [0.1, 0.10001, 1, 3]) durations.observe(row, seconds)
    const [le01, le05, le1, sum, count] = durations.data.subarray(row * durations.stride, (row + 1) * durations.stride)
    assert.deepStrictEqual([le01, le05, le1, count], [1, 1, 1, 4])
    assert.closeTo(sum!, 4.20001, 1e-9)
  })

  it("rows grow past the first array, keep their counts, and a released row comes back at zero", () => {
    const durations = new Durations([1])
    const rows = Array.from({ length: 50 }, () => durations.allocate())
    assert.deepStrictEqual(new Set(rows).size, 50)
    rows.forEach((row, i) => durations.observe(row, i))
    assert.isAbove(durations.data.length, 50 * durations.stride - 1)
    rows.forEach((row, i) => assert.strictEqual(durations.data[row * durations.stride + 2], 1, `row ${i}`))
    durations.release(rows[7]!)
    const reused = durations.allocate()
    assert.strictEqual(reused, rows[7])
    assert.deepStrictEqual([...durations.data.subarray(reused * 3, reused * 3 + 3)], [0, 0, 0])
    assert.strictEqual(durations.allocate(), 50)
  })
})
