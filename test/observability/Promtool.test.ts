import { assert, describe, it } from "@effect/vitest"
import { Metrics } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { promtool } from "./promtool.ts"

const packageDir = fileURLToPath(new URL("../../packages/observability/", import.meta.url))
const alertsDir = Path.join(packageDir, "alerts")

describe("promtool: alert rules", () => {
  it("the rules are valid", () => {
    const run = promtool(["check", "rules", "circuit-breakers.rules.yml"], { cwd: alertsDir })
    assert.strictEqual(run.status, 0, run.output)
    assert.include(run.output, "SUCCESS: 3 rules found")
  })

  it("the unit tests of the rules pass (open 3m fires, 1m does not, flapping, resolve, severities, multiple)", () => {
    const run = promtool(["test", "rules", "circuit-breakers.test.yml"], { cwd: alertsDir })
    assert.strictEqual(run.status, 0, run.output)
    assert.include(run.output, "SUCCESS")
  })

  it("the unit tests cover each case the rules promise", () => {
    const tests = readFileSync(Path.join(alertsDir, "circuit-breakers.test.yml"), "utf8")
    for (
      const title of [
        "Open for 3 minutes fires",
        "Open for 1 minute, then closed: never fires",
        "Flapping OPEN/HALF_OPEN",
        "Closing resolves the alert",
        "Severities",
        "Two breakers not closed at once fire MultipleCircuitBreakersOpen",
        "One breaker open does not fire it"
      ]
    ) {
      assert.include(tests, `# ${title}`)
    }
  })
})

describe("promtool: metrics exposition", () => {
  it.effect("promtool check metrics accepts the real /metrics text, with every metric and label in use", () =>
    Effect.gen(function*() {
      const registry = yield* Metrics.PrometheusRegistry
      const options = { failMax: 2, recoveryTimeout: "30 seconds", callTimeout: "5 seconds" } as const
      const kafka = yield* CircuitBreaker.make({ name: "kafka_producer", ...options })
      const redis = yield* CircuitBreaker.make({ name: "redis_client", ...options, failureMode: "fail-open" })
      yield* CircuitBreaker.make({ name: "temporal_client", ...options })
      yield* CircuitBreaker.make({ name: "mongodb_client", ...options, slowCallThreshold: "1 second" })
      const slow = yield* Effect.forkChild(Effect.sleep("2 seconds").pipe(withBreaker(kafka)))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(slow)
      for (let i = 0; i < 3; i++) yield* Effect.ignore(Effect.fail("down").pipe(withBreaker(redis)))
      yield* TestClock.adjust("30 seconds")

      const text = yield* Effect.promise(() => registry.metrics())
      for (const name of Object.values(Metrics.names)) assert.include(text, `# TYPE ${name} `)
      assert.include(text, `result="rejected"`)
      assert.include(text, `to="half_open"`)
      const run = promtool(["check", "metrics"], { input: text })
      assert.strictEqual(run.status, 0, run.output)
      assert.strictEqual(run.output.trim(), "", run.output)
    }).pipe(Effect.provide(Metrics.layer().pipe(Layer.provideMerge(Registry.layer)))))
})

// Grafana's variables, replaced by plain values so promtool can parse the queries.
const plain = (expr: string) =>
  expr.replaceAll("$__rate_interval", "5m").replaceAll("$__range", "6h").replaceAll("$service", "s").replaceAll(
    "$circuit",
    ".*"
  )

describe("promtool: dashboard queries", () => {
  it("every PromQL query of the dashboard parses", () => {
    const dashboard = JSON.parse(readFileSync(Path.join(packageDir, "dashboards/circuit-breakers.json"), "utf8"))
    const exprs: Array<string> = []
    for (const panel of dashboard.panels) for (const target of panel.targets ?? []) exprs.push(target.expr)
    assert.isAbove(exprs.length, 0)
    const rules = {
      groups: [{
        name: "dashboard",
        rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr: plain(expr) }))
      }]
    }
    const dir = mkdtempSync(Path.join(tmpdir(), "nh-dashboard-"))
    try {
      // JSON is valid YAML.
      writeFileSync(Path.join(dir, "queries.yml"), JSON.stringify(rules))
      const run = promtool(["check", "rules", "queries.yml"], { cwd: dir })
      assert.strictEqual(run.status, 0, run.output)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
