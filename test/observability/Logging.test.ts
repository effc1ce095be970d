import { assert, describe, it } from "@effect/vitest"
import { Logging, ServiceName } from "@neural-hive/observability"
import { Cause, Effect, Formatter, Layer, Logger, Redacted, References, Scheduler } from "effect"
import { TestClock, TestConsole } from "effect/testing"
import { spawn } from "node:child_process"

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

/** A destination that records each write; `write` answers `accepts()` and `drain()` runs the drain listeners. */
const recording = (accepts: () => boolean = () => true) => {
  const writes: Array<string> = []
  let onDrain: Array<() => void> = []
  const destination: Logging.Destination = {
    write: (chunk) => {
      writes.push(chunk)
      return accepts()
    },
    once: (_event, listener) => onDrain.push(listener)
  }
  const drain = () => {
    const listeners = onDrain
    onDrain = []
    for (const listener of listeners) listener()
  }
  const events = () => writes.map((chunk) => chunk.trimEnd().split("\n").map((line) => JSON.parse(line).event))
  return { destination, writes, drain, events }
}

/** A scheduler whose turns run only when the test says so: `turn()` runs the tasks scheduled so far. */
const manualScheduler = () => {
  let tasks: Array<() => void> = []
  const scheduler: Scheduler.Scheduler = {
    executionMode: "async",
    shouldYield: () => false,
    makeDispatcher: () => ({ scheduleTask: (task) => tasks.push(task), flush: () => {} })
  }
  const turn = () => {
    const run = tasks
    tasks = []
    for (const task of run) task()
  }
  return { layer: Layer.succeed(Scheduler.Scheduler, scheduler), turn }
}

// A child process: the exit listener runs only when a process really exits.
const exitWith = (ending: string) =>
  Effect.promise(() =>
    new Promise<{ stdout: string; code: number | null }>((resolve) => {
      const script = [
        `import { Logging } from "@neural-hive/observability"`,
        `import { Effect } from "effect"`,
        `Effect.runFork(Effect.gen(function*() {`,
        `  yield* Effect.logInfo("last_words")`,
        `  ${ending}`,
        `}).pipe(Effect.provide(Logging.layer({ logger: "child" }))))`
      ].join("\n")
      const child = spawn(
        process.execPath,
        ["--conditions=@neural-hive/source", "--input-type=module", "-e", script],
        { stdio: ["ignore", "pipe", "ignore"] }
      )
      let stdout = ""
      child.stdout.on("data", (chunk: Buffer) => stdout += chunk.toString())
      child.on("close", (code) => resolve({ stdout, code }))
    })
  )

describe("Logging.formatJson", () => {
  it.effect("a line of plain values is the text Formatter.formatJson writes; other values still go through it", () =>
    Effect.gen(function*() {
      const records: Array<Record<string, unknown>> = []
      const texts: Array<string> = []
      const both = Logger.layer([
        Logger.map(Logging.formatRecord({ logger: "x" }), (record) => records.push(record)),
        Logger.map(Logging.formatJson({ logger: "x" }), (text) => texts.push(text))
      ])
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("plan_queued").pipe(
          Effect.annotateLogs({ plan_id: "p\"1\u2028", failures: 2, ok: true, none: null, ratio: NaN })
        )
        yield* Effect.logInfo("secret").pipe(
          Effect.annotateLogs({ url: Redacted.make("redis://:s3cr3t@redis"), big: 10n, nested: { a: [1] } })
        )
      }).pipe(Effect.provide(both))
      assert.deepStrictEqual(texts, records.map((record) => Formatter.formatJson(record)))
      assert.notInclude(texts[1]!, "s3cr3t")
    }))
})

describe("Logging.layer on a stream", () => {
  it.effect("the lines of one turn are one write, in order; the next turn is the next write", () =>
    Effect.gen(function*() {
      const out = recording()
      const turns = manualScheduler()
      const layer = Logging.layer({ destination: out.destination }).pipe(Layer.provide(turns.layer))
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("a")
        yield* Effect.logWarning("b")
        yield* Effect.logInfo("c")
        assert.strictEqual(out.writes.length, 0)
        turns.turn()
        yield* Effect.logInfo("d")
        turns.turn()
        turns.turn()
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(out.events(), [["a", "b", "c"], ["d"]])
      assert.isTrue(out.writes.every((chunk) => chunk.endsWith("}\n")))
    }))

  it.effect("the same schema as on the console", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1500 millis")
      const out = recording()
      yield* Effect.logWarning("circuit_breaker_open").pipe(
        Effect.annotateLogs({ circuit: "kafka_producer", failures: 5 }),
        Effect.provide(Logging.layer({ destination: out.destination, logger: "billing" }))
      )
      assert.deepStrictEqual(JSON.parse(out.writes.join("")), {
        event: "circuit_breaker_open",
        level: "warning",
        timestamp: "1970-01-01T00:00:01.500Z",
        logger: "billing",
        circuit: "kafka_producer",
        failures: 5
      })
    }))

  it.effect("the layer's release writes the lines of the unfinished turn", () =>
    Effect.gen(function*() {
      const out = recording()
      const turns = manualScheduler()
      yield* Effect.all([Effect.logInfo("a"), Effect.logInfo("b")]).pipe(
        Effect.provide(Logging.layer({ destination: out.destination }).pipe(Layer.provide(turns.layer)))
      )
      assert.deepStrictEqual(out.events(), [["a", "b"]])
      turns.turn()
      assert.strictEqual(out.writes.length, 1)
    }))

  it.effect("two layers on one destination share its buffer: lines keep the order they were logged in", () =>
    Effect.gen(function*() {
      const out = recording()
      const turns = manualScheduler()
      const outer = Logging.layer({ destination: out.destination, logger: "outer" }).pipe(Layer.provide(turns.layer))
      const inner = Logging.layer({ destination: out.destination, logger: "inner" }).pipe(Layer.provide(turns.layer))
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("1")
        yield* Effect.gen(function*() {
          yield* Effect.logInfo("2")
          yield* Effect.logInfo("3")
        }).pipe(Effect.provide(inner))
        yield* Effect.logInfo("4")
        turns.turn()
      }).pipe(Effect.provide(outer))
      assert.deepStrictEqual(out.events(), [["1", "2", "3"], ["4"]])
    }))

  it.effect("backpressure: lines wait for drain, up to maxBufferedLines; the rest are counted, never silently lost", () =>
    Effect.gen(function*() {
      let accepts = false
      const out = recording(() => accepts)
      const turns = manualScheduler()
      const layer = Logging.layer({ destination: out.destination, maxBufferedLines: 2 }).pipe(
        Layer.provide(turns.layer)
      )
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("a")
        turns.turn()
        // The destination asked to wait: b and c are held, d and e dropped.
        yield* Effect.all([Effect.logInfo("b"), Effect.logInfo("c")])
        turns.turn()
        yield* Effect.all([Effect.logInfo("d"), Effect.logInfo("e")])
        turns.turn()
        assert.deepStrictEqual(out.events(), [["a"]])
        accepts = true
        out.drain()
        yield* Effect.logInfo("f")
        turns.turn()
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(out.events(), [["a"], ["b", "c", "log_lines_dropped"], ["f"]])
      const notice = JSON.parse(out.writes[1]!.trimEnd().split("\n")[2]!)
      assert.strictEqual(notice.dropped, 2)
      assert.strictEqual(notice.level, "warning")
    }))

  it.effect("release while backpressured writes everything held, in order", () =>
    Effect.gen(function*() {
      const out = recording(() => false)
      const turns = manualScheduler()
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("a")
        turns.turn()
        yield* Effect.logInfo("b")
        turns.turn()
        yield* Effect.logInfo("c")
      }).pipe(Effect.provide(Logging.layer({ destination: out.destination }).pipe(Layer.provide(turns.layer))))
      assert.deepStrictEqual(out.events(), [["a"], ["b", "c"]])
    }))

  it.effect(
    "a process that exits (process.exit or an uncaught exception) still writes its last lines",
    () =>
      Effect.gen(function*() {
        for (
          const [ending, code] of [["process.exit(3)", 3], [
            `queueMicrotask(() => { throw new Error("crash") })`,
            1
          ]] as const
        ) {
          const result = yield* exitWith(ending)
          assert.strictEqual(result.code, code, ending)
          assert.strictEqual(JSON.parse(result.stdout).event, "last_words", ending)
        }
      }),
    30_000
  )
})
