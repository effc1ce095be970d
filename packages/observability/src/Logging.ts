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
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Formatter from "effect/Formatter"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import * as Tracer from "effect/Tracer"
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
  Logger.map(formatRecord(options), (record) => Formatter.formatJson(record))

/**
 * A `Logger` that writes each line to the console (stdout).
 *
 * @since 0.1.0
 * @category constructors
 */
export const logger = (options?: Options): Logger.Logger<unknown, void> => Logger.withConsoleLog(formatJson(options))

/**
 * Replaces the program's loggers with `logger(options)`; without a `logger`
 * option, the `ServiceName` where the layer is built names the lines.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<never> =>
  Logger.layer([
    options?.logger === undefined
      ? Effect.map(Effect.service(ServiceName), (service) => logger({ logger: service }))
      : Effect.succeed(logger(options))
  ])
