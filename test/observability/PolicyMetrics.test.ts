/**
 * The policies' metrics as Prometheus reads them: the `/metrics` text of the prom-client registry after
 * bulkhead rejections, an adaptive limit's drops, retries granted and denied, and hedges won, on TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Metrics, PolicyMetrics } from "@neural-hive/observability"
import { Bulkhead, Hedge, Registry, RetryBudget } from "@neural-hive/resilience"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import * as Prometheus from "prom-client"

const scrape = (registry: Metrics.Registry) => Effect.promise(() => registry.metrics())

/** The value of one series in the exposition text, or `undefined` when it is absent. */
const valueOf = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** A read whose first attempt takes 1 s and every later one answers at once. */
const slowOnce = () => {
  let n = 0
  return Effect.suspend(() => n++ === 0 ? Effect.as(Effect.sleep("1 second"), "slow") : Effect.succeed("fast"))
}

const labels = (circuit: string, extra = "") => `{service="svc",circuit="${circuit}"${extra}}`

describe("PolicyMetrics", () => {
  it.effect("a bulkhead's limit, in flight, queued, admitted and rejections by reason", () =>
    Effect.gen(function*() {
      const registry: Metrics.Registry = new Prometheus.Registry()
      const bulkhead = yield* Bulkhead.make({
        name: "temporal_client",
        maxConcurrent: 1,
        maxQueued: 1,
        queueTimeout: "1 second"
      })
      yield* PolicyMetrics.register(registry, { bulkhead }, { service: "svc" })
      const l = labels("temporal_client")
      const before = yield* scrape(registry)
      assert.strictEqual(valueOf(before, `resilience_bulkhead_limit${l}`), 1)
      assert.strictEqual(
        valueOf(before, `resilience_bulkhead_rejected_total${labels("temporal_client", ",reason=\"queue_full\"")}`),
        0
      )
      const gate = yield* Deferred.make<void>()
      const running = yield* Effect.forkChild(bulkhead.run(Deferred.await(gate)))
      yield* Effect.yieldNow
      const waiting = yield* Effect.forkChild(Effect.exit(bulkhead.run(Effect.void)))
      yield* Effect.yieldNow
      // The third finds the slot and the queue taken.
      yield* Effect.exit(bulkhead.run(Effect.void))
      const busy = yield* scrape(registry)
      assert.strictEqual(valueOf(busy, `resilience_bulkhead_in_flight${l}`), 1)
      assert.strictEqual(valueOf(busy, `resilience_bulkhead_queued${l}`), 1)
      assert.strictEqual(
        valueOf(busy, `resilience_bulkhead_rejected_total${labels("temporal_client", ",reason=\"queue_full\"")}`),
        1
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiting)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(running)
      const after = yield* scrape(registry)
      assert.strictEqual(
        valueOf(after, `resilience_bulkhead_rejected_total${labels("temporal_client", ",reason=\"queue_timeout\"")}`),
        1
      )
      assert.strictEqual(valueOf(after, `resilience_bulkhead_admitted_total${l}`), 1)
      assert.strictEqual(valueOf(after, `resilience_bulkhead_in_flight${l}`), 0)
      assert.strictEqual(valueOf(after, `resilience_bulkhead_limit_min${l}`), 1)
      assert.strictEqual(valueOf(after, `resilience_bulkhead_limit_max${l}`), 1)
    }).pipe(Effect.scoped))

  it.effect("an adaptive limit's drops move the limit gauge down to its minimum", () =>
    Effect.gen(function*() {
      const registry: Metrics.Registry = new Prometheus.Registry()
      const bulkhead = yield* Bulkhead.adaptive({ name: "mongodb_client", initialLimit: 10, minLimit: 5 })
      yield* PolicyMetrics.register(registry, { bulkhead }, { service: "svc" })
      const l = labels("mongodb_client")
      assert.strictEqual(valueOf(yield* scrape(registry), `resilience_bulkhead_limit${l}`), 10)
      for (let i = 0; i < 10; i++) {
        yield* Effect.ignore(bulkhead.run(Effect.fail({ _tag: "CircuitBreakerTimeoutError" })))
      }
      const text = yield* scrape(registry)
      assert.strictEqual(valueOf(text, `resilience_bulkhead_limit${l}`), 5)
      assert.strictEqual(valueOf(text, `resilience_bulkhead_limit_min${l}`), 5)
      assert.strictEqual(valueOf(text, `resilience_bulkhead_limit_max${l}`), 200)
    }).pipe(Effect.scoped))

  it.effect("a retry budget's calls, retries granted and denied, and what it has left; a hedge's hedges won", () =>
    Effect.gen(function*() {
      const registry: Metrics.Registry = new Prometheus.Registry()
      const retryBudget = yield* RetryBudget.make({
        name: "redis_client",
        ratio: 0,
        minPerSecond: 0.2,
        window: "10 seconds"
      })
      const hedge = yield* Hedge.make({ name: "redis_client", delay: "10 millis", budget: retryBudget })
      yield* PolicyMetrics.register(registry, { retryBudget, hedge }, { service: "svc" })
      const l = labels("redis_client")
      assert.strictEqual(valueOf(yield* scrape(registry), `resilience_retry_budget_available${l}`), 2)
      // A dependency that refuses every attempt, 3 retries per call: 2 granted by the reserve, the rest denied.
      yield* Effect.ignore(
        Effect.fail("down").pipe(
          RetryBudget.withRetry({ budget: retryBudget, maxRetries: 3, schedule: Schedule.spaced("0 millis") })
        )
      )
      const retried = yield* scrape(registry)
      assert.strictEqual(valueOf(retried, `resilience_retry_calls_total${l}`), 1)
      assert.strictEqual(valueOf(retried, `resilience_retry_attempts_total${l}`), 2)
      assert.strictEqual(valueOf(retried, `resilience_retries_denied_total${l}`), 1)
      assert.strictEqual(valueOf(retried, `resilience_retry_budget_available${l}`), 0)
      assert.strictEqual(valueOf(retried, `resilience_hedge_delay_seconds${l}`), 0.01)
      // A slow read with the budget exhausted: the hedge is denied; 10 s later the reserve is back and it is sent.
      const first = yield* Effect.forkChild(hedge.run(slowOnce()))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(first), "slow")
      yield* TestClock.adjust("10 seconds")
      const second = yield* Effect.forkChild(hedge.run(slowOnce()))
      yield* TestClock.adjust("20 millis")
      assert.strictEqual(yield* Fiber.join(second), "fast")
      const hedged = yield* scrape(registry)
      assert.strictEqual(valueOf(hedged, `resilience_hedge_calls_total${l}`), 2)
      assert.strictEqual(valueOf(hedged, `resilience_hedges_denied_total${l}`), 1)
      assert.strictEqual(valueOf(hedged, `resilience_hedges_total${l}`), 1)
      assert.strictEqual(valueOf(hedged, `resilience_hedges_won_total${l}`), 1)
      assert.strictEqual(valueOf(hedged, `resilience_retry_attempts_total${l}`), 3)
    }).pipe(Effect.scoped))

  it.effect("the metrics leave the registry with the last policy; the layer exports into the PrometheusRegistry", () =>
    Effect.gen(function*() {
      const registry: Metrics.Registry = new Prometheus.Registry()
      const a = yield* Bulkhead.make({ name: "a", maxConcurrent: 2 })
      const b = yield* RetryBudget.make({ name: "b" })
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      yield* Scope.provide(first)(PolicyMetrics.register(registry, { bulkhead: a }, { service: "svc" }))
      yield* Scope.provide(second)(
        PolicyMetrics.register(registry, { retryBudget: b, bulkhead: a }, { service: "svc" })
      )
      yield* Scope.close(first, Exit.void)
      const text = yield* scrape(registry)
      assert.isUndefined(valueOf(text, `resilience_bulkhead_limit${labels("a")}`))
      assert.strictEqual(valueOf(text, `resilience_retry_budget_available${labels("b")}`), 10)
      yield* Scope.close(second, Exit.void)
      assert.strictEqual(yield* scrape(registry), "\n")
      const viaLayer = yield* Effect.gen(function*() {
        return yield* scrape(yield* Metrics.PrometheusRegistry)
      }).pipe(
        Effect.provide(
          PolicyMetrics.layer([{ bulkhead: a }, { retryBudget: b }], { service: "svc" }).pipe(
            Layer.provideMerge(Layer.succeed(Metrics.PrometheusRegistry, registry))
          )
        )
      )
      assert.strictEqual(valueOf(viaLayer, `resilience_bulkhead_limit${labels("a")}`), 2)
      assert.strictEqual(valueOf(viaLayer, `resilience_retry_calls_total${labels("b")}`), 0)
    }))

  it.effect("layerRegistry: the policies of every circuit of the Registry, registered before and after, until they leave", () =>
    Effect.gen(function*() {
      const registry: Metrics.Registry = new Prometheus.Registry()
      const breakers = yield* Registry.Registry
      const early = yield* Bulkhead.adaptive({ name: "mongodb_client", initialLimit: 7 })
      yield* breakers.registerPolicies("mongodb_client", { bulkhead: early })
      const layerScope = yield* Scope.make()
      yield* Layer.buildWithScope(
        PolicyMetrics.layerRegistry({ service: "svc" }).pipe(
          Layer.provide(Layer.succeed(Metrics.PrometheusRegistry, registry)),
          Layer.provide(Layer.succeed(Registry.Registry, breakers))
        ),
        layerScope
      )
      const lateScope = yield* Scope.make()
      const budget = yield* RetryBudget.make({ name: "kafka_producer" })
      yield* Scope.provide(lateScope)(breakers.registerPolicies("kafka_producer", { retryBudget: budget }))
      const both = yield* scrape(registry)
      assert.strictEqual(valueOf(both, `resilience_bulkhead_limit${labels("mongodb_client")}`), 7)
      assert.strictEqual(valueOf(both, `resilience_retry_budget_available${labels("kafka_producer")}`), 10)
      yield* Scope.close(lateScope, Exit.void)
      const left = yield* scrape(registry)
      assert.isUndefined(valueOf(left, `resilience_retry_budget_available${labels("kafka_producer")}`))
      assert.strictEqual(valueOf(left, `resilience_bulkhead_limit${labels("mongodb_client")}`), 7)
      yield* Scope.close(layerScope, Exit.void)
      assert.strictEqual(yield* scrape(registry), "\n")
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))
})
