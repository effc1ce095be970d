/**
 * JSON log lines in the Python service's schema (structlog's JSON renderer),
 * as one `Logger` layer any Effect program can install.
 *
 * Each line is one flat JSON object:
 *
 * | key | value |
 * |---|---|
 * | `event` | the message: `circuit_breaker_open`, `plan_refused`, ... |
 * | `level` | `debug`, `info`, `warning`, `error` or `critical` (structlog's names) |
 * | `timestamp` | ISO 8601 in UTC, from the `Clock` (`2026-01-05T10:00:00.000Z`) |
 * | `logger` | the `logger` annotation, else the layer's `logger` option, else the service name |
 * | `trace_id`, `span_id` | the current span's ids, on every line written inside a span |
 * | `exception` | the pretty-printed cause, when the line carries one |
 * | every annotation | at the top level: `service`, `circuit`, `from`, `to`, `failures`, ... |
 *
 * An annotation named like one of the fixed keys does not replace it: it is
 * written as `field_<name>`. Values go through Effect's redaction, so a
 * `Redacted` annotation prints `<redacted>`.
 *
 * `layer` writes to `process.stdout` directly (`streamLogger`): the lines of
 * one scheduler turn in one write, in order, flushed at release and at exit.
 *
 * **Example** (The Python service's log lines)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Logging } from "@neural-hive/observability"
 *
 * const program = Effect.logInfo("service_listening").pipe(Effect.annotateLogs({ url: "http://0.0.0.0:8000" }))
 * // {"event":"service_listening","level":"info","timestamp":"...","logger":"orchestrator-dynamic","url":"http://0.0.0.0:8000"}
 * Effect.runFork(program.pipe(Effect.provide(Logging.layer())))
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Formatter from "effect/Formatter"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import * as Scheduler from "effect/Scheduler"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { LineWriter } from "./internal/lineWriter.ts"
import { ServiceName } from "./ServiceName.ts"

/**
 * structlog's level names.
 *
 * @since 0.1.0
 * @category models
 */
export type Level = "debug" | "info" | "warning" | "error" | "critical"

/**
 * The fixed keys of a line; annotations never replace them.
 *
 * @since 0.1.0
 * @category constants
 */
export const fixedKeys: ReadonlyArray<string> = [
  "event",
  "level",
  "timestamp",
  "logger",
  "trace_id",
  "span_id",
  "exception"
]

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The `logger` of lines without a `logger` annotation (default: the `ServiceName` reference). */
  readonly logger?: string | undefined
}

/**
 * The level name of an Effect log level.
 *
 * @since 0.1.0
 * @category constructors
 */
export const levelName = (level: LogLevel.LogLevel): Level => {
  switch (level) {
    case "Fatal":
      return "critical"
    case "Error":
      return "error"
    case "Warn":
      return "warning"
    case "Info":
      return "info"
    default:
      return "debug"
  }
}

/**
 * A `Logger` that builds the flat record of each line (not yet serialized).
 *
 * @since 0.1.0
 * @category constructors
 */
export const formatRecord = (options?: Options): Logger.Logger<unknown, Record<string, unknown>> =>
  Logger.make(({ cause, date, fiber, logLevel, message }) => {
    const record: Record<string, unknown> = {}
    const parts = Array.isArray(message) ? message : [message]
    record.event = parts.length === 0 ? "" : typeof parts[0] === "string" ? parts[0] : Inspectable.toJson(parts[0])
    record.level = levelName(logLevel)
    record.timestamp = date.toISOString()
    const annotations = fiber.getRef(References.CurrentLogAnnotations)
    const named = annotations["logger"]
    record.logger = typeof named === "string" ? named : options?.logger ?? fiber.getRef(ServiceName)
    // A span the tracer made (not an external parent) has the ids this process exports.
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span !== undefined) {
      record.trace_id = span.traceId
      record.span_id = span.spanId
    }
    if (cause.reasons.length > 0) record.exception = Cause.pretty(cause)
    if (parts.length > 1) record.args = parts.slice(1).map(Inspectable.toJson)
    for (const [key, value] of Object.entries(annotations)) {
      if (key === "logger") continue
      record[fixedKeys.includes(key) || key === "args" ? `field_${key}` : key] = Inspectable.toJson(value)
    }
    return record
  })

/**
 * A `Logger` that renders each line as one JSON string.
 *
 * @since 0.1.0
 * @category constructors
 */
export const formatJson = (options?: Options): Logger.Logger<unknown, string> =>
  Logger.map(formatRecord(options), serialize)

/**
 * `JSON.stringify` when every value is a string, number, boolean or null (a plan's line: the same text
 * `Formatter.formatJson` writes, in half the time); `Formatter.formatJson` otherwise (redaction, cycles, bigints).
 */
const serialize = (record: Record<string, unknown>): string => {
  for (const key in record) {
    const value = record[key]
    const type = typeof value
    if (value !== null && type !== "string" && type !== "number" && type !== "boolean") {
      return Formatter.formatJson(record)
    }
  }
  return JSON.stringify(record)
}

/**
 * A `Logger` that writes each line to the console (stdout), one `console.log`
 * call per line. `layer` writes through `streamLogger` instead, unless the
 * program provides its own `Console`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const logger = (options?: Options): Logger.Logger<unknown, void> => Logger.withConsoleLog(formatJson(options))

/**
 * Where `streamLogger` writes: a Node `Writable` such as `process.stdout`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Destination {
  /** Writes a chunk of whole lines; `false` means the destination asks to wait for `drain`. */
  write(chunk: string): boolean
  /** Runs `listener` once, when the destination can take more after a `write` that returned `false`. */
  once(event: "drain", listener: () => void): unknown
}

/**
 * @since 0.1.0
 * @category models
 */
export interface StreamOptions extends Options {
  /** Where the lines go (default: `process.stdout`). */
  readonly destination?: Destination | undefined
  /**
   * Lines kept while the destination has not drained (default 10,000); the
   * lines past it are dropped and counted in a `log_lines_dropped` line.
   */
  readonly maxBufferedLines?: number | undefined
}

/** One writer per destination, whatever the number of layers writing to it: lines keep their order. */
const writers = new WeakMap<Destination, LineWriter>()

const acquireWriter = Effect.fnUntraced(function*(destination: Destination, maxBufferedLines: number) {
  const scheduler = yield* Scheduler.Scheduler
  const clock = yield* Clock.Clock
  return yield* Effect.acquireRelease(
    Effect.sync(() => {
      let writer = writers.get(destination)
      if (writer === undefined) {
        writer = new LineWriter(destination, {
          maxBufferedLines,
          dispatcher: scheduler.makeDispatcher(),
          droppedLine: (dropped) =>
            Formatter.formatJson({
              event: "log_lines_dropped",
              level: "warning",
              timestamp: new Date(clock.currentTimeMillisUnsafe()).toISOString(),
              logger: "logging",
              dropped
            })
        })
        writers.set(destination, writer)
        // A normal exit and a crash exit both run "exit" listeners, synchronously: the last lines are written.
        globalThis.process?.on("exit", writer.flushAll)
      }
      writer.users++
      return writer
    }),
    (writer) =>
      Effect.sync(() => {
        writer.flushAll()
        if (--writer.users > 0) return
        writers.delete(destination)
        globalThis.process?.off("exit", writer.flushAll)
      })
  )
})

/**
 * A `Logger` that writes JSON lines to a stream without going through the
 * console: the lines logged in one turn of the scheduler (Effect's
 * `Scheduler`, after the event loop's I/O callbacks by default) are joined
 * into one `write`, in the order they were logged. Every logger writing to
 * the same destination shares one buffer, so lines keep their order across
 * layers.
 *
 * The buffer is flushed when the scope closes and, synchronously, when the
 * process exits (`process.exit`, an uncaught exception, the end of the event
 * loop): no line is lost on a normal shutdown or a crash exit (a `SIGKILL`
 * loses the lines of the current turn). While the destination is
 * backpressured (`write` returned `false`, no `drain` yet) lines are held,
 * up to `maxBufferedLines`; past it they are dropped and a
 * `log_lines_dropped` warning with their count is written when the
 * destination drains, so memory stays bounded and no line is lost silently.
 *
 * **Example** (Lines to stderr)
 *
 * ```ts
 * import { Effect, Logger } from "effect"
 * import { Logging } from "@neural-hive/observability"
 *
 * const toStderr = Logger.layer([Logging.streamLogger({ destination: process.stderr })])
 * Effect.runFork(Effect.logInfo("service_listening").pipe(Effect.provide(toStderr)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const streamLogger = (
  options?: StreamOptions
): Effect.Effect<Logger.Logger<unknown, void>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const format = formatJson(
      options?.logger === undefined ? { logger: yield* Effect.service(ServiceName) } : { logger: options.logger }
    )
    const writer = yield* acquireWriter(
      options?.destination ?? process.stdout,
      options?.maxBufferedLines ?? defaultMaxBufferedLines
    )
    return Logger.make((entry) => writer.add(format.log(entry)))
  })

const defaultMaxBufferedLines = 10_000

/**
 * Replaces the program's loggers with `streamLogger(options)`; without a
 * `logger` option, the `ServiceName` where the layer is built names the lines.
 * The layer's release flushes its lines. A program that provides its own
 * `Console` (a `TestConsole`, say) and no `destination` gets `logger(options)`
 * instead: one `log` call per line on that console.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: StreamOptions): Layer.Layer<never> =>
  Logger.layer([
    Effect.gen(function*() {
      const console = yield* Console.Console
      if (options?.destination === undefined && console !== globalThis.console) {
        return logger({ logger: options?.logger ?? (yield* Effect.service(ServiceName)) })
      }
      return yield* streamLogger(options)
    })
  ])
