import { assert, describe, it } from "@effect/vitest"
import { Logging, ServiceName } from "@neural-hive/observability"
import { Cause, Effect, Layer, Redacted, References } from "effect"
import { TestClock, TestConsole } from "effect/testing"

/** The console lines written so far, each one flat JSON object. */
const lines = Effect.map(TestConsole.logLines, (output) =>
  output.map((line) => {
    assert.isString(line)
    assert.notInclude(line as string, "\n")
    return JSON.parse(line as string) as Record<string, unknown>
  }))

const logged = <A, E>(program: Effect.Effect<A, E>, layer: Layer.Layer<never> = Logging.layer()) =>
  Effect.flatMap(Effect.provide(program, layer), () => lines)

describe("Logging", () => {
  it.effect("flat JSON in the Python service's schema: event, level, ISO timestamp, logger, fields at the top level", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1500 millis")
      const [line] = yield* logged(
        Effect.logWarning("circuit_breaker_open").pipe(
          Effect.annotateLogs({ service: "orchestrator-dynamic", circuit: "kafka_producer", failures: 5 })
        )
      )
      assert.deepStrictEqual(line, {
        event: "circuit_breaker_open",
        level: "warning",
        timestamp: "1970-01-01T00:00:01.500Z",
        logger: "orchestrator-dynamic",
        service: "orchestrator-dynamic",
        circuit: "kafka_producer",
        failures: 5
      })
    }).pipe(Effect.provide(TestConsole.layer)))

  it.effect("structlog's level names; the logger annotation, the option, then the ServiceName", () =>
    Effect.gen(function*() {
      const all = yield* logged(
        Effect.all([
          Effect.logDebug("a"),
          Effect.logInfo("b"),
          Effect.logWarning("c"),
          Effect.logError("d"),
          Effect.logFatal("e"),
          Effect.logInfo("f").pipe(Effect.annotateLogs({ logger: "orchestrator" }))
        ]).pipe(Effect.provideService(References.MinimumLogLevel, "Trace")),
        Logging.layer({ logger: "billing" })
      )
      assert.deepStrictEqual(all.map((line) => [line.event, line.level, line.logger]), [
        ["a", "debug", "billing"],
        ["b", "info", "billing"],
        ["c", "warning", "billing"],
        ["d", "error", "billing"],
        ["e", "critical", "billing"],
        ["f", "info", "orchestrator"]
      ])
      const [fromReference] = yield* Effect.provide(
        Effect.flatMap(Effect.logInfo("g"), () => Effect.map(lines, (l) => l.slice(-1))),
        Logging.layer().pipe(Layer.provide(ServiceName.layer("ledger")))
      )
      assert.strictEqual(fromReference!.logger, "ledger")
    }).pipe(Effect.provide(TestConsole.layer)))

  it.effect("inside a span every line carries trace_id and span_id; outside, none", () =>
    Effect.gen(function*() {
      const ids = yield* Effect.gen(function*() {
        yield* Effect.logInfo("inside")
        const span = yield* Effect.currentSpan
        return { trace_id: span.traceId, span_id: span.spanId }
      }).pipe(Effect.withSpan("Orchestrator.submit"), Effect.provide(Logging.layer()))
      yield* Effect.logInfo("outside").pipe(Effect.provide(Logging.layer()))
      const [inside, outside] = yield* lines
      assert.strictEqual(inside!.trace_id, ids.trace_id)
      assert.strictEqual(inside!.span_id, ids.span_id)
      assert.match(String(inside!.trace_id), /^[0-9a-f]{32}$/)
      assert.notProperty(outside, "trace_id")
      assert.notProperty(outside, "span_id")
    }).pipe(Effect.provide(TestConsole.layer)))

  it.effect("fields never replace the fixed keys; secrets print redacted; a cause is the exception", () =>
    Effect.gen(function*() {
      const [line] = yield* logged(
        Effect.logError("plan_failed", Cause.fail(new Error("boom"))).pipe(
          Effect.annotateLogs({ level: "debug", event: "x", url: Redacted.make("redis://:s3cr3t@redis:6379") })
        )
      )
      assert.strictEqual(line!.event, "plan_failed")
      assert.strictEqual(line!.level, "error")
      assert.strictEqual(line!.field_level, "debug")
      assert.strictEqual(line!.field_event, "x")
      assert.notInclude(JSON.stringify(line), "s3cr3t")
      assert.include(String(line!.exception), "boom")
    }).pipe(Effect.provide(TestConsole.layer)))
})
