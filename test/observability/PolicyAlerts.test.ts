/**
 * The policies' alert rules (packages/observability/alerts/policies.rules.yml) through promtool: valid,
 * their unit tests passing (firing and not firing), every metric they read exported by PolicyMetrics,
 * and the PolicyMetrics exposition accepted by `promtool check metrics`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Metrics, PolicyMetrics } from "@neural-hive/observability"
import { Bulkhead, Hedge, RetryBudget } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/testing/TestClock"
import { readFileSync } from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Prometheus from "prom-client"
import { promtool } from "./promtool.ts"

const alertsDir = fileURLToPath(new URL("../../packages/observability/alerts/", import.meta.url))

describe("promtool: policy alert rules", () => {
  it("the rules are valid", () => {
    const run = promtool(["check", "rules", "policies.rules.yml"], { cwd: alertsDir })
    assert.strictEqual(run.status, 0, run.output)
    assert.include(run.output, "SUCCESS: 2 rules found")
  })

  it("the unit tests of the rules pass (collapsed 12m fires, 8m does not, fixed bulkhead never; denied 6m fires, 3m does not)", () => {
    const run = promtool(["test", "rules", "policies.test.yml"], { cwd: alertsDir })
    assert.strictEqual(run.status, 0, run.output)
    assert.include(run.output, "SUCCESS")
    const tests = readFileSync(Path.join(alertsDir, "policies.test.yml"), "utf8")
    for (
      const title of [
        "Adaptive limit at its minimum for 12 minutes fires",
        "Adaptive limit at its minimum for 8 minutes, then above it: never fires",
        "A fixed bulkhead (limit = min = max) never fires",
        "Retries denied for 6 minutes fires",
        "Retries denied for 3 minutes, then none: never fires",
        "A budget with room (no denials) never fires"
      ]
    ) {
      assert.include(tests, `# ${title}`)
    }
  })

  it("every metric the rules read is one PolicyMetrics exports", () => {
    const rules = readFileSync(Path.join(alertsDir, "policies.rules.yml"), "utf8")
    const read = new Set([...rules.matchAll(/\b(resilience_[a-z_]+)\b/g)].map((m) => m[1]!))
    assert.isAbove(read.size, 3)
    for (const name of read) assert.include(Object.values(PolicyMetrics.names) as Array<string>, name)
  })

  it.effect("promtool check metrics accepts the PolicyMetrics exposition, with every metric in use", () =>
    Effect.gen(function*() {
      const registry: Metrics.Registry = new Prometheus.Registry()
      const bulkhead = yield* Bulkhead.adaptive({ name: "mongodb_client", minLimit: 2 })
      const retryBudget = yield* RetryBudget.make({ name: "redis_client" })
      const hedge = yield* Hedge.make({ name: "redis_client", delay: "5 millis", budget: retryBudget })
      yield* PolicyMetrics.register(registry, { bulkhead, retryBudget, hedge })
      yield* Effect.ignore(bulkhead.run(Effect.fail("down")))
      const read = yield* Effect.forkChild(hedge.run(Effect.as(Effect.sleep("8 millis"), "value")))
      yield* TestClock.adjust("20 millis")
      yield* Fiber.join(read)
      const text = yield* Effect.promise(() => registry.metrics())
      for (const name of Object.values(PolicyMetrics.names)) assert.include(text, `# TYPE ${name} `)
      assert.include(text, `reason="queue_timeout"`)
      assert.include(
        text,
        `resilience_hedge_delay_seconds{service="orchestrator-dynamic",circuit="redis_client"} 0.005`
      )
      const run = promtool(["check", "metrics"], { input: text })
      assert.strictEqual(run.status, 0, run.output)
      assert.strictEqual(run.output.trim(), "", run.output)
    }).pipe(Effect.scoped))
})
