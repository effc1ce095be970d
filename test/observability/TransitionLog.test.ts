import { assert, describe, it } from "@effect/vitest"
import { ServiceName, TransitionLog } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Data, Effect, Layer, Logger } from "effect"
import { TestClock, TestConsole } from "effect/testing"

class ConnectionRefused extends Data.TaggedError("ConnectionRefused")<{ readonly message: string }> {}

const refused = Effect.fail(
  new ConnectionRefused({ message: "connect ECONNREFUSED mongodb://orchestrator:s3cr3t-pass@mongo:27017/hive" })
)

const call = <A, E>(breaker: CircuitBreaker.CircuitBreaker, effect: Effect.Effect<A, E>) =>
  Effect.ignore(effect.pipe(withBreaker(breaker)))

interface Line {
  readonly message: string
  readonly level: string
  readonly timestamp: string
  readonly logger?: string
  readonly annotations: Record<string, unknown>
}

/**
 * The console lines written so far, each parsed as one JSON object: the flat lines of `Logging` (layerJson)
 * as `event` + fields, Effect's `Logger.consoleJson` lines as `message` + `annotations`.
 */
const lines = Effect.map(TestConsole.logLines, (output) =>
  output.map((line): Line => {
    assert.isString(line)
    assert.notInclude(line as string, "\n")
    const parsed = JSON.parse(line as string) as Record<string, unknown>
    if (!("event" in parsed)) return parsed as unknown as Line
    const { event, level, logger, timestamp, ...fields } = parsed
    return {
      message: event as string,
      level: level as string,
      timestamp: timestamp as string,
      logger: logger as string,
      annotations: fields
    }
  }))

const layer = (logs: Layer.Layer<never, never, Registry.Registry>) =>
  logs.pipe(Layer.provideMerge(Registry.layer), Layer.provideMerge(TestConsole.layer))

describe("TransitionLog", () => {
  it.effect("one JSON line per transition, in order, at the Clock instant, with the seed's messages", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "mongodb_client", failMax: 3, recoveryTimeout: "30 seconds" })
      yield* call(breaker, refused)
      yield* call(breaker, refused)
      assert.deepStrictEqual(yield* lines, [])
      yield* TestClock.adjust("1 second")
      yield* call(breaker, refused)
      // No call: the open period ends by the Clock and the line is written then.
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual((yield* lines).map((line) => line.message), [
        "circuit_breaker_open",
        "circuit_breaker_half_open"
      ])
      yield* call(breaker, Effect.succeed("ok"))

      const logged = yield* lines
      assert.deepStrictEqual(logged.map((line) => [line.message, line.level, line.timestamp]), [
        ["circuit_breaker_open", "warning", "1970-01-01T00:00:01.000Z"],
        ["circuit_breaker_half_open", "info", "1970-01-01T00:00:31.000Z"],
        ["circuit_breaker_reset", "info", "1970-01-01T00:00:31.000Z"]
      ])
      const [open, halfOpen, reset] = logged
      assert.deepStrictEqual(open!.annotations, {
        service: "orchestrator-dynamic",
        circuit: "mongodb_client",
        from: "closed",
        to: "open",
        reason: "tripped",
        failures: 3,
        retry_after_seconds: 30,
        last_error: "ConnectionRefused: connect ECONNREFUSED mongodb://orchestrator:***@mongo:27017/hive"
      })
      assert.strictEqual(halfOpen!.annotations.reason, "open_elapsed")
      assert.strictEqual(halfOpen!.annotations.retry_after_seconds, 0)
      assert.strictEqual(reset!.annotations.reason, "probes_succeeded")
      assert.strictEqual(reset!.annotations.from, "half_open")
      for (const line of logged) {
        assert.notInclude(JSON.stringify(line), "s3cr3t-pass")
        assert.strictEqual(line.logger, "circuit_breaker")
        // last_error only where it is news: the reset line no longer carries the error that tripped it.
        assert.hasAllKeys(line.annotations, [
          "service",
          "circuit",
          "from",
          "to",
          "reason",
          "failures",
          "retry_after_seconds",
          ...(line.annotations.to === "open" ? ["last_error"] : [])
        ])
      }
    }).pipe(Effect.provide(layer(TransitionLog.layerJson()))))

  it.effect("a failed probe reopens for twice as long; forced open has no retry-after", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "kafka_producer",
        failMax: 1,
        recoveryTimeout: "30 seconds",
        maxOpenDuration: "60 seconds"
      })
      yield* call(breaker, refused)
      yield* TestClock.adjust("30 seconds")
      yield* call(breaker, refused)
      yield* breaker.forceOpen
      yield* breaker.reset
      const logged = yield* lines
      assert.deepStrictEqual(
        logged.map((line) => [line.message, line.annotations.reason, line.annotations.retry_after_seconds]),
        [
          ["circuit_breaker_open", "tripped", 30],
          ["circuit_breaker_half_open", "open_elapsed", 0],
          ["circuit_breaker_open", "probe_failed", 60],
          ["circuit_breaker_open", "forced_open", null],
          ["circuit_breaker_reset", "reset", 0]
        ]
      )
      assert.strictEqual(logged[0]!.annotations.service, "billing")
    }).pipe(Effect.provide(layer(TransitionLog.layerJson({ service: "billing" })))))

  it.effect("layer logs through the program's loggers and reads the ServiceName reference", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "redis_client", failMax: 1 })
      yield* call(breaker, refused)
      const logged = yield* lines
      assert.strictEqual(logged.length, 1)
      assert.strictEqual(logged[0]!.message, "circuit_breaker_open")
      assert.strictEqual(logged[0]!.annotations.service, "ledger")
    }).pipe(
      Effect.provide(
        layer(
          TransitionLog.layer().pipe(
            Layer.provide(Logger.layer([Logger.consoleJson])),
            Layer.provide(ServiceName.layer("ledger"))
          )
        )
      )
    ))

  it.effect("breakers made later are logged too; nothing is logged without a transition", () =>
    Effect.gen(function*() {
      const kafka = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
      yield* call(kafka, Effect.succeed("ok"))
      const temporal = yield* CircuitBreaker.make({ name: "temporal_client", failMax: 1 })
      yield* call(temporal, refused)
      const logged = yield* lines
      assert.deepStrictEqual(logged.map((line) => [line.message, line.annotations.circuit]), [
        ["circuit_breaker_open", "temporal_client"]
      ])
    }).pipe(Effect.provide(layer(TransitionLog.layerJson()))))
})
