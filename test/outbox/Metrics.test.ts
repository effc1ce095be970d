/**
 * The outbox's metrics and its alert rule: the exposition promtool accepts, and the rule's unit tests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Metrics } from "@neural-hive/observability"
import { Outbox, OutboxMetrics } from "@neural-hive/outbox"
import { Registry } from "@neural-hive/resilience"
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import { promtool } from "../observability/promtool.ts"

const alertsDir = fileURLToPath(new URL("../../packages/outbox/alerts/", import.meta.url))

const stats: Outbox.Stats = { pending: 7, oldestPendingMillis: 42_500, published: 12, failedSends: 3, lastError: "x" }
const relay = Layer.succeed(Outbox.OutboxRelay)({
  notify: Effect.void,
  drain: Effect.succeed(0),
  stats: Effect.succeed(stats),
  statsUnsafe: () => stats
})

describe("Outbox metrics", () => {
  it.effect("the backlog is exposed at scrape time, and promtool accepts the text", () =>
    Effect.gen(function*() {
      const registry = yield* Metrics.PrometheusRegistry
      const text = yield* Effect.promise(() => registry.metrics())
      assert.include(text, "outbox_pending{service=\"orchestrator-dynamic\"} 7")
      assert.include(text, "outbox_oldest_pending_seconds{service=\"orchestrator-dynamic\"} 42.5")
      assert.include(text, "outbox_published_total{service=\"orchestrator-dynamic\"} 12")
      assert.include(text, "outbox_failed_sends_total{service=\"orchestrator-dynamic\"} 3")
      // A second scrape does not add the same publications again.
      const again = yield* Effect.promise(() => registry.metrics())
      assert.include(again, "outbox_published_total{service=\"orchestrator-dynamic\"} 12")
      const run = promtool(["check", "metrics"], { input: text })
      assert.strictEqual(run.status, 0, run.output)
    }).pipe(
      Effect.provide(
        OutboxMetrics.layer.pipe(
          Layer.provideMerge(relay),
          Layer.provideMerge(Metrics.layer()),
          Layer.provideMerge(Registry.layer)
        )
      )
    ))

  it("the alert rule is valid and its unit tests pass", () => {
    const check = promtool(["check", "rules", "outbox.rules.yml"], { cwd: alertsDir })
    assert.strictEqual(check.status, 0, check.output)
    const tests = promtool(["test", "rules", "outbox.test.yml"], { cwd: alertsDir })
    assert.strictEqual(tests.status, 0, tests.output)
    assert.include(tests.output, "SUCCESS")
  })
})
