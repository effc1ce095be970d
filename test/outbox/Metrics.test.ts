/**
 * The outbox's metrics and its alert rules: the exposition promtool accepts, and the rules' unit tests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Metrics } from "@neural-hive/observability"
import { Outbox, OutboxMetrics } from "@neural-hive/outbox"
import { Registry } from "@neural-hive/resilience"
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import { promtool } from "../observability/promtool.ts"

const alertsDir = fileURLToPath(new URL("../../packages/outbox/alerts/", import.meta.url))

const stats: Outbox.Stats = {
  pending: 7,
  oldestPendingMillis: 42_500,
  published: 12,
  failedSends: 3,
  lastError: "x",
  deadLettered: 4,
  dead: 2,
  oldestDead: { id: "t-1", deadAt: 1_000, reason: "MessageTooLarge" }
}
const relay = Layer.succeed(Outbox.OutboxRelay)({
  notify: Effect.void,
  notifyWritten: () => Effect.void,
  drain: Effect.succeed(0),
  stats: Effect.succeed(stats),
  statsUnsafe: () => stats,
  requeue: () => Effect.succeed("Requeued"),
  requeueAllDead: Effect.succeed(0)
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
      assert.include(text, "outbox_dead{service=\"orchestrator-dynamic\"} 2")
      assert.include(text, "outbox_dead_total{service=\"orchestrator-dynamic\"} 4")
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

  it("the alert rules are valid and their unit tests pass (backlog old; a dead ticket fires at once and resolves when requeued)", () => {
    const check = promtool(["check", "rules", "outbox.rules.yml"], { cwd: alertsDir })
    assert.strictEqual(check.status, 0, check.output)
    assert.include(check.output, "SUCCESS: 2 rules found")
    const tests = promtool(["test", "rules", "outbox.test.yml"], { cwd: alertsDir })
    assert.strictEqual(tests.status, 0, tests.output)
    assert.include(tests.output, "SUCCESS")
  })
})
