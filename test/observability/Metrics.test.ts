import { assert, describe, it } from "@effect/vitest"
import { Metrics, ServiceName } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Prometheus from "prom-client"
import { Boom } from "../support/breakers.ts"
import { scrape } from "./scrape.ts"

const ok = Effect.succeed("ok")
const boom = Effect.fail(new Boom({ counted: true }))
const callerError = Effect.fail(new Boom({ counted: false }))
const isFailure = (error: unknown) => !(error instanceof Boom) || error.counted

const call = <A, E>(breaker: CircuitBreaker.CircuitBreaker, effect: Effect.Effect<A, E>) =>
  Effect.ignore(effect.pipe(withBreaker(breaker)))

const failTimes = (breaker: CircuitBreaker.CircuitBreaker, times: number) =>
  Effect.repeat(call(breaker, boom), { times: times - 1 })

const layer = (options?: Metrics.Options) => Metrics.layer(options).pipe(Layer.provideMerge(Registry.layer))

const STATE = { Closed: 0, Open: 1, HalfOpen: 2 } as const

/** Every scrape-time metric of `breaker` equals its snapshot, read at the same Clock instant. */
const assertExact = (breaker: CircuitBreaker.CircuitBreaker, service = "orchestrator-dynamic") =>
  Effect.gen(function*() {
    const registry = yield* Metrics.PrometheusRegistry
    const metrics = yield* scrape(registry)
    const { state, totals } = breaker.view.snapshot()
    const labels = { service, circuit: breaker.name }
    const calls = (result: string) => metrics.get("circuit_breaker_calls_total", { ...labels, result })
    assert.strictEqual(metrics.get("circuit_breaker_state", labels), STATE[state], "state")
    assert.strictEqual(metrics.get("circuit_breaker_failures_total", labels), totals.failures, "failures")
    assert.strictEqual(metrics.get("circuit_breaker_trips_total", labels), totals.trips, "trips")
    assert.strictEqual(calls("success"), totals.successes, "calls success")
    assert.strictEqual(calls("failure"), totals.failures - totals.slow, "calls failure")
    assert.strictEqual(calls("slow"), totals.slow, "calls slow")
    assert.strictEqual(calls("ignored"), totals.ignored, "calls ignored")
    assert.strictEqual(calls("rejected"), totals.rejected, "calls rejected")
    return metrics
  })

const serviceLabelIs = (
  expected: string,
  provided: Layer.Layer<Metrics.PrometheusRegistry | Registry.Registry>
) =>
  Effect.gen(function*() {
    yield* CircuitBreaker.make({ name: "kafka_producer" })
    const m = yield* scrape(yield* Metrics.PrometheusRegistry)
    const services = new Set(
      m.samples.filter((sample) => sample.name.startsWith("circuit_breaker_")).map((sample) => sample.labels.service)
    )
    assert.deepStrictEqual([...services], [expected])
  }).pipe(Effect.scoped, Effect.provide(provided))

describe("Metrics: the values match the breaker at every moment", () => {
  it.effect("through a whole cycle, including OPEN -> HALF_OPEN with no call (TestClock)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "kafka_producer",
        failMax: 5,
        recoveryTimeout: "30 seconds",
        isFailure
      })
      const registry = yield* Metrics.PrometheusRegistry
      const labels = { service: "orchestrator-dynamic", circuit: "kafka_producer" }
      const transitions = (from: string, to: string) =>
        Effect.map(scrape(registry), (m) => m.get("circuit_breaker_transitions_total", { ...labels, from, to }))

      let m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", labels), 0)
      assert.strictEqual(m.get("circuit_breaker_failures_total", labels), 0)
      assert.strictEqual(m.get("circuit_breaker_trips_total", labels), 0)

      yield* call(breaker, ok)
      yield* call(breaker, callerError)
      yield* failTimes(breaker, 4)
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", labels), 0)
      assert.strictEqual(m.get("circuit_breaker_failures_total", labels), 4)

      yield* failTimes(breaker, 1)
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", labels), 1)
      assert.strictEqual(m.get("circuit_breaker_trips_total", labels), 1)
      assert.strictEqual(yield* transitions("closed", "open"), 1)

      yield* call(breaker, ok)
      yield* call(breaker, ok)
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_calls_total", { ...labels, result: "rejected" }), 2)

      yield* TestClock.adjust("29999 millis")
      yield* assertExact(breaker)
      assert.strictEqual((yield* scrape(registry)).get("circuit_breaker_state", labels), 1)

      // No call arrives: the open period still ends by the Clock, and the scrape shows it.
      yield* TestClock.adjust("1 millis")
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", labels), 2)
      assert.strictEqual(yield* transitions("open", "half_open"), 1)

      // A failed probe reopens: a second trip.
      yield* failTimes(breaker, 1)
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", labels), 1)
      assert.strictEqual(m.get("circuit_breaker_trips_total", labels), 2)
      assert.strictEqual(yield* transitions("half_open", "open"), 1)

      yield* TestClock.adjust("60 seconds")
      yield* call(breaker, ok)
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", labels), 0)
      assert.strictEqual(yield* transitions("half_open", "closed"), 1)
      assert.strictEqual(yield* transitions("open", "half_open"), 2)
      assert.strictEqual(m.get("circuit_breaker_failures_total", labels), 6)
      assert.strictEqual(m.get("circuit_breaker_calls_total", { ...labels, result: "ignored" }), 1)
      assert.strictEqual(m.get("circuit_breaker_calls_total", { ...labels, result: "success" }), 2)
    }).pipe(Effect.provide(layer())))

  it.effect("an OPEN period shorter than the scrape interval is missed by the gauge, never by trips_total", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "temporal_client", failMax: 1, recoveryTimeout: "5 seconds" })
      const registry = yield* Metrics.PrometheusRegistry
      const labels = { service: "orchestrator-dynamic", circuit: "temporal_client" }
      yield* failTimes(breaker, 1)
      yield* TestClock.adjust("5 seconds")
      yield* call(breaker, ok)
      const m = yield* scrape(registry)
      assert.strictEqual(m.get("circuit_breaker_state", labels), 0)
      assert.strictEqual(m.get("circuit_breaker_trips_total", labels), 1)
    }).pipe(Effect.provide(layer())))

  it.effect("slow calls count as failures and as result=\"slow\"", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "mongodb_client", failMax: 3, slowCallThreshold: "1 second" })
      const fiber = yield* Effect.forkChild(call(breaker, Effect.as(Effect.sleep("2 seconds"), "late")))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      const m = yield* assertExact(breaker)
      const labels = { service: "orchestrator-dynamic", circuit: "mongodb_client" }
      assert.strictEqual(m.get("circuit_breaker_calls_total", { ...labels, result: "slow" }), 1)
      assert.strictEqual(m.get("circuit_breaker_failures_total", labels), 1)
    }).pipe(Effect.provide(layer())))

  it.effect("forced open and disabled breakers read as they are", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "redis_client", failureMode: "fail-open" })
      yield* breaker.forceOpen
      let m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", { circuit: "redis_client" }), 1)
      yield* TestClock.adjust("1 hour")
      yield* call(breaker, ok)
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", { circuit: "redis_client" }), 1)
      yield* breaker.disable
      yield* failTimes(breaker, 10)
      m = yield* assertExact(breaker)
      assert.strictEqual(m.get("circuit_breaker_state", { circuit: "redis_client" }), 0)
      assert.strictEqual(m.get("circuit_breaker_failures_total", { circuit: "redis_client" }), 10)
    }).pipe(Effect.provide(layer())))
})

describe("Metrics: wiring", () => {
  it.effect("wires breakers made before and after the layer, and drops the state of a breaker that is gone", () =>
    Effect.gen(function*() {
      const registry = yield* Metrics.PrometheusRegistry
      const early = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const scope = yield* Scope.make()
      const late = yield* CircuitBreaker.make({ name: "redis_client", failMax: 1 }).pipe(Scope.provide(scope))
      yield* failTimes(late, 1)
      yield* failTimes(early, 1)
      let m = yield* assertExact(late)
      yield* assertExact(early)
      assert.strictEqual(m.get("circuit_breaker_state", { circuit: "redis_client" }), 1)
      yield* Scope.close(scope, Exit.void)
      m = yield* scrape(registry)
      assert.strictEqual(m.get("circuit_breaker_state", { circuit: "redis_client" }), undefined)
      assert.strictEqual(m.get("circuit_breaker_trips_total", { circuit: "redis_client" }), 1)
      assert.strictEqual(m.get("circuit_breaker_state", { circuit: "kafka_producer" }), 0)
      // A new breaker with the old name starts over; its counters keep growing from the old values.
      const again = yield* CircuitBreaker.make({ name: "redis_client", failMax: 1 })
      yield* failTimes(again, 1)
      m = yield* scrape(registry)
      assert.strictEqual(m.get("circuit_breaker_state", { circuit: "redis_client" }), 1)
      assert.strictEqual(m.get("circuit_breaker_trips_total", { circuit: "redis_client" }), 2)
    }).pipe(Effect.provide(layer())))

  it.effect("registers in the registry it is given, beside the user's own metrics, and leaves it on release", () =>
    Effect.gen(function*() {
      const registry = new Prometheus.Registry()
      const own = new Prometheus.Counter({ name: "app_requests_total", help: "requests", registers: [registry] })
      own.inc(3)
      yield* Effect.gen(function*() {
        assert.strictEqual(yield* Metrics.PrometheusRegistry, registry)
        yield* CircuitBreaker.make({ name: "kafka_producer" })
        const m = yield* scrape(registry)
        assert.strictEqual(m.get("app_requests_total", {}), 3)
        assert.strictEqual(m.get("circuit_breaker_state", { circuit: "kafka_producer" }), 0)
      }).pipe(Effect.scoped, Effect.provide(layer({ registry })))
      const m = yield* scrape(registry)
      assert.strictEqual(m.get("app_requests_total", {}), 3)
      assert.isFalse(m.samples.some((sample) => sample.name.startsWith("circuit_breaker_")))
    }))

  it.effect("the service label: default, option, and the ServiceName reference", () =>
    Effect.gen(function*() {
      yield* serviceLabelIs("orchestrator-dynamic", layer())
      yield* serviceLabelIs("billing", layer({ service: "billing" }))
      yield* serviceLabelIs("ledger", layer().pipe(Layer.provide(ServiceName.layer("ledger"))))
    }))

  it.effect("result label values stay bounded; every series exists before the first failure", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "kafka_producer" })
      const m = yield* scrape(yield* Metrics.PrometheusRegistry)
      const results = m.samples.filter((sample) => sample.name === "circuit_breaker_calls_total").map((sample) =>
        sample.labels.result
      )
      assert.deepStrictEqual(results.toSorted(), ["failure", "ignored", "rejected", "slow", "success"])
      assert.strictEqual(m.get("circuit_breaker_failures_total", { circuit: "kafka_producer" }), 0)
    }).pipe(Effect.provide(layer())))
})

describe("Metrics: the duration histogram", () => {
  it.effect("observes Clock durations of admitted calls by result", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
      const fiber = yield* Effect.forkChild(call(breaker, Effect.as(Effect.sleep("2 seconds"), "ok")))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      yield* failTimes(breaker, 1)
      yield* call(breaker, ok)
      const m = yield* scrape(yield* Metrics.PrometheusRegistry)
      const labels = { circuit: "kafka_producer" }
      const bucket = (result: string, le: string) =>
        m.get("circuit_breaker_call_duration_seconds_bucket", { ...labels, result, le })
      assert.strictEqual(bucket("success", "1"), 0)
      assert.strictEqual(bucket("success", "2.5"), 1)
      assert.strictEqual(m.get("circuit_breaker_call_duration_seconds_sum", { ...labels, result: "success" }), 2)
      assert.strictEqual(m.get("circuit_breaker_call_duration_seconds_count", { ...labels, result: "failure" }), 1)
      // Rejected calls never ran: no duration.
      assert.strictEqual(
        m.get("circuit_breaker_call_duration_seconds_count", { ...labels, result: "rejected" }),
        undefined
      )
    }).pipe(Effect.provide(layer())))

  it.effect("a call already running when the metrics are wired is counted but not timed", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 hour")
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const fiber = yield* Effect.forkChild(call(breaker, Effect.sleep("2 seconds")))
      yield* Effect.yieldNow
      const registry = yield* Metrics.make()
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      const later = yield* Effect.forkChild(call(breaker, Effect.sleep("1 second")))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(later)
      const m = yield* scrape(registry)
      const labels = { circuit: "kafka_producer", result: "success" }
      assert.strictEqual(m.get("circuit_breaker_calls_total", labels), 2)
      assert.strictEqual(m.get("circuit_breaker_call_duration_seconds_count", labels), 1)
      assert.strictEqual(m.get("circuit_breaker_call_duration_seconds_sum", labels), 1)
    }).pipe(Effect.provide(Registry.layer)))

  it.effect("histogram: false leaves it out (no per-call cost)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      yield* call(breaker, ok)
      const m = yield* assertExact(breaker)
      assert.isFalse(m.text.includes("circuit_breaker_call_duration_seconds"))
    }).pipe(Effect.provide(layer({ histogram: false }))))
})
