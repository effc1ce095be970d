import { assert, describe, it } from "@effect/vitest"
import { HttpMetrics, Metrics } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect, Layer } from "effect"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { scrape } from "./scrape.ts"

const file = fileURLToPath(new URL("../../packages/observability/dashboards/circuit-breakers.json", import.meta.url))

interface Panel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly datasource?: { readonly uid: string }
  readonly targets?: ReadonlyArray<{ readonly expr: string; readonly refId: string }>
  readonly panels?: ReadonlyArray<Panel>
}

const dashboard = JSON.parse(readFileSync(file, "utf8")) as {
  readonly uid: string
  readonly title: string
  readonly panels: ReadonlyArray<Panel>
  readonly templating: { readonly list: ReadonlyArray<{ readonly name: string; readonly query: unknown }> }
}

const panels = (list: ReadonlyArray<Panel>): ReadonlyArray<Panel> => list.flatMap((p) => [p, ...panels(p.panels ?? [])])

const queries = (): ReadonlyArray<string> => [
  ...panels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.flatMap((v) =>
    typeof v.query === "object" && v.query !== null && "query" in v.query ? [String(v.query.query)] : []
  )
]

// PromQL words that are not metric names.
const PROMQL = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "count",
  "by",
  "without",
  "rate",
  "irate",
  "increase",
  "delta",
  "histogram_quantile",
  "label_values",
  "and",
  "or",
  "unless",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "bool",
  "topk",
  "bottomk",
  "clamp_min",
  "max_over_time",
  "min_over_time",
  "changes",
  "resets"
])

/** The metric names a query reads: identifiers left once strings, label sets, grouping lists and ranges are gone. */
const metricNames = (expr: string): ReadonlyArray<string> => {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)/g, "$1")
  return (stripped.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []).filter((word) => !PROMQL.has(word))
}

/** The names of every series the service exposes (breaker, HTTP and process metrics), once every metric has a value. */
const exported = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
  yield* Effect.ignore(Effect.fail("down").pipe(withBreaker(breaker)))
  const http = yield* HttpMetrics.HttpMetrics
  http.record("POST", "/plans", 202, 0.01)
  const registry = yield* Metrics.PrometheusRegistry
  const metrics = yield* scrape(registry)
  const names = new Set(metrics.samples.map((sample) => sample.name))
  // A histogram has no series before its first observation (nodejs_gc_duration_seconds waits for a GC).
  for (const metric of registry.getMetricsAsArray()) {
    const type = (metric as unknown as { readonly type?: string }).type
    if (type === "histogram") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${metric.name}${suffix}`)
    }
  }
  return names
}).pipe(
  Effect.provide(
    Layer.merge(HttpMetrics.layer(), Metrics.layerDefaultMetrics()).pipe(
      Layer.provideMerge(Metrics.layer()),
      Layer.provideMerge(Registry.layer)
    )
  )
)

describe("Grafana dashboard", () => {
  it("parses, with unique panel ids and a datasource variable on every query panel", () => {
    assert.strictEqual(dashboard.uid, "neural-hive-circuit-breakers")
    const all = panels(dashboard.panels)
    assert.strictEqual(new Set(all.map((p) => p.id)).size, all.length)
    assert.include(dashboard.templating.list.map((v) => v.name), "datasource")
    for (const panel of all.filter((p) => p.targets !== undefined)) {
      assert.strictEqual(panel.datasource?.uid, "${datasource}", panel.title)
      assert.isAbove(panel.targets!.length, 0, panel.title)
    }
  })

  it.effect("uses only metrics we export", () =>
    Effect.gen(function*() {
      const names = yield* exported
      const used = new Set(queries().flatMap(metricNames))
      assert.isAbove(used.size, 0)
      for (const name of used) assert.isTrue(names.has(name), `${name} is not exported`)
    }))

  it("shows state per circuit over time, failure and rejection rates, and trips", () => {
    const byTitle = new Map(panels(dashboard.panels).map((p) => [p.title, p]))
    const exprs = (title: string) => {
      const panel = byTitle.get(title)
      assert.isDefined(panel, title)
      return panel!.targets!.map((t) => t.expr).join("\n")
    }
    assert.strictEqual(byTitle.get("State per circuit over time")?.type, "state-timeline")
    assert.include(exprs("State per circuit over time"), "circuit_breaker_state")
    assert.include(exprs("Failure rate"), "rate(circuit_breaker_failures_total")
    assert.include(exprs("Rejection rate"), `result="rejected"`)
    assert.include(exprs("Trips"), "circuit_breaker_trips_total")
  })

  it("has a row for the service itself: HTTP per route, CPU, memory, event-loop lag and GC", () => {
    const byTitle = new Map(panels(dashboard.panels).map((p) => [p.title, p]))
    assert.strictEqual(byTitle.get("Service: HTTP and process")?.type, "row")
    const exprs = (title: string) => byTitle.get(title)!.targets!.map((t) => t.expr).join("\n")
    assert.include(exprs("HTTP requests by route and status"), "http_server_request_duration_seconds_count")
    assert.include(exprs("HTTP request duration p99 by route"), "http_server_request_duration_seconds_bucket")
    assert.include(exprs("CPU"), "process_cpu_seconds_total")
    assert.include(exprs("Memory"), "nodejs_heap_size_used_bytes")
    assert.include(exprs("Event-loop lag and GC"), "nodejs_eventloop_lag_p99_seconds")
  })

  it("the metric-name reader finds names and skips PromQL", () => {
    assert.deepStrictEqual(
      metricNames(
        `histogram_quantile(0.99, sum by (le, circuit) (rate(a_bucket{service="$service"}[$__rate_interval])))`
      ),
      ["a_bucket"]
    )
    assert.deepStrictEqual(metricNames(`label_values(circuit_breaker_state{service="x"}, circuit)`), [
      "circuit_breaker_state"
    ])
  })
})
