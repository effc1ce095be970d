import { assert, describe, it } from "@effect/vitest"
import { Tracing } from "@neural-hive/observability"
import { CircuitBreaker, CircuitBreakerError, Registry, withBreaker } from "@neural-hive/resilience"
import { SpanStatusCode } from "@opentelemetry/api"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { Boom } from "../support/breakers.ts"

const boom = (counted = true) => Effect.fail(new Boom({ counted }))
const isFailure = (error: Boom) => error.counted

/** Runs `body` with an OpenTelemetry tracer that exports to memory, then returns the finished spans. */
const withSpans = <E, R>(body: Effect.Effect<unknown, E, R>) => {
  const exporter = new InMemorySpanExporter()
  // Read before the layer is released: shutting the provider down empties the in-memory exporter.
  return Effect.scoped(body).pipe(
    Effect.andThen(Effect.sync(() => exporter.getFinishedSpans())),
    Effect.provide(Tracing.layerOtel({ spanProcessor: new SimpleSpanProcessor(exporter), service: "billing" }))
  )
}

const span = (spans: ReadonlyArray<ReadableSpan>, name: string): ReadableSpan => {
  const found = spans.find((s) => s.name === name)
  assert.isDefined(found, `span ${name}`)
  return found!
}

// The span's own events (an "exception" event for a failed span) are left out.
const rejectionEvents = (s: ReadableSpan) => s.events.filter((event) => event.name === "circuit_breaker.rejected")

const attributesOf = (s: ReadableSpan) => ({
  name: s.attributes["circuit_breaker.name"],
  state: s.attributes["circuit_breaker.state"],
  result: s.attributes["circuit_breaker.result"]
})

describe("Tracing.traced", () => {
  it.effect("success, counted failure and ignored caller error, each in its span", () =>
    Effect.gen(function*() {
      const spans = yield* withSpans(Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 5 })
        yield* Effect.succeed("sent").pipe(Tracing.traced(breaker), Effect.withSpan("send.ok"))
        yield* Effect.ignore(boom().pipe(Tracing.traced(breaker, isFailure), Effect.withSpan("send.down")))
        yield* Effect.ignore(boom(false).pipe(Tracing.traced(breaker, isFailure), Effect.withSpan("send.caller")))
        assert.strictEqual((yield* breaker.snapshot).totals.ignored, 1)
      }))
      assert.deepStrictEqual(attributesOf(span(spans, "send.ok")), {
        name: "kafka_producer",
        state: "closed",
        result: "success"
      })
      // A successful call's span keeps the status UNSET: OpenTelemetry reserves OK for the application's own
      // verdict, and instrumentation leaves success unset (docs/observability.md, "Span status").
      assert.strictEqual(span(spans, "send.ok").status.code, SpanStatusCode.UNSET)
      assert.deepStrictEqual(attributesOf(span(spans, "send.down")).result, "failure")
      assert.deepStrictEqual(attributesOf(span(spans, "send.caller")).result, "ignored")
      assert.strictEqual(span(spans, "send.ok").resource.attributes["service.name"], "billing")
    }))

  it.effect("a rejected call is marked: attributes, an event, and the span's error", () =>
    Effect.gen(function*() {
      const spans = yield* withSpans(Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "temporal_client",
          failMax: 1,
          recoveryTimeout: "30 seconds"
        })
        yield* Effect.ignore(boom().pipe(Tracing.traced(breaker), Effect.withSpan("start.trip")))
        yield* TestClock.adjust("10 seconds")
        const error = yield* Effect.flip(
          Effect.succeed(1).pipe(Tracing.traced(breaker), Effect.withSpan("start.rejected"))
        )
        assert.instanceOf(error, CircuitBreakerError)
      }))
      const rejected = span(spans, "start.rejected")
      assert.deepStrictEqual(attributesOf(rejected), { name: "temporal_client", state: "open", result: "rejected" })
      assert.strictEqual(rejected.attributes["circuit_breaker.rejected"], true)
      assert.strictEqual(rejected.attributes["circuit_breaker.reason"], "Open")
      assert.strictEqual(rejected.status.code, SpanStatusCode.ERROR)
      assert.deepStrictEqual(rejectionEvents(rejected).map((event) => [event.name, event.attributes]), [
        ["circuit_breaker.rejected", {
          "circuit_breaker.name": "temporal_client",
          "circuit_breaker.reason": "Open",
          "circuit_breaker.retry_after_ms": 20_000
        }]
      ])
      assert.deepStrictEqual(attributesOf(span(spans, "start.trip")), {
        name: "temporal_client",
        state: "closed",
        result: "failure"
      })
    }))

  it.effect("tracedOption: a fail-open rejection gives none, the span is no error and is still marked", () =>
    Effect.gen(function*() {
      const spans = yield* withSpans(Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "redis_client", failureMode: "fail-open" })
        yield* breaker.forceOpen
        const value = yield* Effect.succeed("cached").pipe(Tracing.tracedOption(breaker), Effect.withSpan("cache.get"))
        assert.isTrue(Option.isNone(value))
      }))
      const get = span(spans, "cache.get")
      assert.strictEqual(get.status.code, SpanStatusCode.UNSET)
      assert.strictEqual(get.attributes["circuit_breaker.result"], "rejected")
      assert.strictEqual(get.attributes["circuit_breaker.reason"], "ForcedOpen")
      // A forced-open breaker has no retry-after.
      assert.deepStrictEqual(rejectionEvents(get)[0]!.attributes, {
        "circuit_breaker.name": "redis_client",
        "circuit_breaker.reason": "ForcedOpen"
      })
    }))

  it.effect("the state is the one the call was admitted in: a HALF_OPEN probe", () =>
    Effect.gen(function*() {
      const spans = yield* withSpans(Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "mongodb_client",
          failMax: 1,
          recoveryTimeout: "30 seconds"
        })
        yield* Effect.ignore(boom().pipe(Tracing.traced(breaker)))
        // The open period ends by the Clock; the next call is the probe.
        yield* TestClock.adjust("30 seconds")
        yield* Effect.succeed("found").pipe(Tracing.traced(breaker), Effect.withSpan("find.probe"))
        yield* Effect.succeed("found").pipe(Tracing.traced(breaker), Effect.withSpan("find.closed"))
      }))
      assert.deepStrictEqual(attributesOf(span(spans, "find.probe")), {
        name: "mongodb_client",
        state: "half_open",
        result: "success"
      })
      assert.strictEqual(span(spans, "find.closed").attributes["circuit_breaker.state"], "closed")
    }))

  it.effect("a call past callTimeout is a timeout; a nested breaker's rejection is a failure of the outer one", () =>
    Effect.gen(function*() {
      const spans = yield* withSpans(Effect.gen(function*() {
        const outer = yield* CircuitBreaker.make({ name: "kafka_producer", callTimeout: "1 second" })
        const fiber = yield* Effect.forkChild(
          Effect.ignore(Effect.sleep("5 seconds").pipe(Tracing.traced(outer), Effect.withSpan("send.slow")))
        )
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        const inner = yield* CircuitBreaker.make({ name: "schema_registry" })
        yield* inner.forceOpen
        yield* Effect.ignore(
          Effect.succeed(1).pipe(Tracing.traced(inner), Tracing.traced(outer), Effect.withSpan("send.nested"))
        )
      }))
      assert.strictEqual(span(spans, "send.slow").attributes["circuit_breaker.result"], "timeout")
      const nested = span(spans, "send.nested")
      // Both calls annotate the same span: the outer call, which ends last, wins the attributes.
      assert.deepStrictEqual(attributesOf(nested), { name: "kafka_producer", state: "closed", result: "failure" })
      assert.deepStrictEqual(rejectionEvents(nested).map((event) => event.attributes?.["circuit_breaker.name"]), [
        "schema_registry"
      ])
    }))

  it.effect("without a span it is withBreaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
      assert.strictEqual(yield* Effect.succeed("sent").pipe(Tracing.traced(breaker)), "sent")
      yield* Effect.ignore(boom().pipe(Tracing.traced(breaker)))
      const error = yield* Effect.flip(Effect.succeed("sent").pipe(Tracing.traced(breaker)))
      assert.strictEqual(error._tag, "CircuitBreakerError")
      const { totals } = yield* breaker.snapshot
      assert.deepStrictEqual([totals.successes, totals.failures, totals.rejected], [1, 1, 1])
    }))
})

describe("Tracing.layer", () => {
  it.effect("annotates every breaker's plain withBreaker calls, including breakers made later; nothing once released", () =>
    Effect.gen(function*() {
      const spans = yield* withSpans(Effect.gen(function*() {
        const redis = yield* CircuitBreaker.make({ name: "redis_client", failMax: 5 })
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Layer.build(Tracing.layer)
          const kafka = yield* CircuitBreaker.make({
            name: "kafka_producer",
            failMax: 1,
            recoveryTimeout: "30 seconds"
          })
          yield* Effect.succeed("hit").pipe(withBreaker(redis), Effect.withSpan("cache.get"))
          yield* Effect.ignore(boom().pipe(withBreaker(kafka), Effect.withSpan("send.down")))
          yield* Effect.ignore(Effect.succeed(1).pipe(withBreaker(kafka), Effect.withSpan("send.rejected")))
          const interrupted = yield* Effect.never.pipe(
            withBreaker(redis),
            Effect.withSpan("cache.hung"),
            Effect.forkChild
          )
          yield* Effect.yieldNow
          yield* Fiber.interrupt(interrupted)
        }))
        // The layer is released: calls are no longer annotated.
        yield* Effect.succeed("hit").pipe(withBreaker(redis), Effect.withSpan("cache.after"))
      }))
      assert.deepStrictEqual(attributesOf(span(spans, "cache.get")), {
        name: "redis_client",
        state: "closed",
        result: "success"
      })
      assert.deepStrictEqual(attributesOf(span(spans, "send.down")).result, "failure")
      const rejected = span(spans, "send.rejected")
      assert.deepStrictEqual(attributesOf(rejected), { name: "kafka_producer", state: "open", result: "rejected" })
      assert.strictEqual(rejectionEvents(rejected).length, 1)
      assert.deepStrictEqual(attributesOf(span(spans, "cache.hung")).result, "ignored")
      assert.isUndefined(span(spans, "cache.after").attributes["circuit_breaker.name"])
    }).pipe(Effect.provide(Registry.layer)))
})
