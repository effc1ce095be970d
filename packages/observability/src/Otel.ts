/**
 * OpenTelemetry trace export configured by the standard `OTEL_*` variables,
 * through `@effect/opentelemetry` (`Tracing.layerOtel`).
 *
 * | variable | default | what |
 * |---|---|---|
 * | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | none | the full traces URL, used as is |
 * | `OTEL_EXPORTER_OTLP_ENDPOINT` | none | the collector's base URL; `/v1/traces` is appended |
 * | `OTEL_EXPORTER_OTLP_HEADERS`, `..._TRACES_HEADERS` | none | `key=value,key2=value2` (secret: never logged) |
 * | `OTEL_EXPORTER_OTLP_PROTOCOL`, `..._TRACES_PROTOCOL` | `http/protobuf` | or `http/json` |
 * | `OTEL_SERVICE_NAME` | the `ServiceName` | `service.name` of the resource |
 * | `OTEL_RESOURCE_ATTRIBUTES` | none | `key=value,...`: `service.version`, `deployment.environment`, ... |
 * | `OTEL_TRACES_SAMPLER` / `_ARG` | `parentbased_always_on` | `always_on`, `always_off`, `traceidratio`, `parentbased_*` |
 * | `OTEL_BSP_MAX_QUEUE_SIZE` | 2048 | spans waiting for export; more are dropped, never blocking a call |
 * | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | 512 | spans per export request |
 * | `OTEL_BSP_SCHEDULE_DELAY` | 5000 | ms between two exports |
 * | `OTEL_BSP_EXPORT_TIMEOUT` | 30000 | ms an export may take |
 * | `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none` | | export off |
 *
 * With no endpoint, export is off and the layer adds nothing (Effect's own
 * tracer still gives every log line a `trace_id`). Spans are batched in a
 * bounded queue and exported in the background; when the layer is released
 * (SIGTERM under `NodeRuntime.runMain`), the queue is flushed before the
 * process exits. A bad value stops the program with a `ConfigError` naming the
 * variable and what is allowed (header values are never shown).
 *
 * **Example** (Export when the environment says so)
 *
 * ```ts
 * import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
 * import { Effect } from "effect"
 * import { Otel } from "@neural-hive/observability"
 *
 * const program = Effect.logInfo("hello").pipe(Effect.withSpan("hello"))
 * NodeRuntime.runMain(program.pipe(Effect.provide(Otel.layerConfig)))
 * ```
 *
 * @since 0.1.0
 */
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto"
import * as Resources from "@opentelemetry/resources"
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler
} from "@opentelemetry/sdk-trace-base"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Tracing from "./Tracing.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export type Protocol = "http/protobuf" | "http/json"

/**
 * @since 0.1.0
 * @category models
 */
export type SamplerName =
  | "always_on"
  | "always_off"
  | "traceidratio"
  | "parentbased_always_on"
  | "parentbased_always_off"
  | "parentbased_traceidratio"

/**
 * Where and how spans are exported, read from the `OTEL_*` variables.
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  /** The traces URL spans are posted to. */
  readonly url: string
  readonly protocol: Protocol
  /** Sent with every export (API keys live here). */
  readonly headers: Redacted.Redacted<Readonly<Record<string, string>>>
  /** `service.name`; `undefined` leaves it to the `ServiceName` reference. */
  readonly serviceName: string | undefined
  readonly resourceAttributes: Readonly<Record<string, string>>
  readonly sampler: SamplerName
  /** The ratio of `traceidratio` samplers, 0 to 1. */
  readonly samplerRatio: number
  readonly maxQueueSize: number
  readonly maxExportBatchSize: number
  readonly scheduledDelayMillis: number
  readonly exportTimeoutMillis: number
}

/**
 * @since 0.1.0
 * @category constants
 */
export const samplers: ReadonlyArray<SamplerName> = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio"
]

/**
 * @since 0.1.0
 * @category constants
 */
export const protocols: ReadonlyArray<Protocol> = ["http/protobuf", "http/json"]

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * The settings of a set of variables: `Option.none()` when export is off, or
 * a message naming the variable that is wrong.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parse = (
  env: Readonly<Record<string, string | undefined>>
): { readonly _tag: "Ok"; readonly settings: Option.Option<Settings> } | {
  readonly _tag: "Error"
  readonly message: string
} => {
  const get = lookup(env)
  const off = { _tag: "Ok" as const, settings: Option.none<Settings>() }
  const enabled = exportEnabled(get)
  if (enabled !== true) return enabled === false ? off : fail(enabled)
  const url = tracesUrl(get)
  if (url === undefined) return off
  if (url._tag === "Error") return url

  const protocolRaw = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? get("OTEL_EXPORTER_OTLP_PROTOCOL") ??
    "http/protobuf"
  if (!protocols.includes(protocolRaw as Protocol)) {
    return fail(
      `OTEL_EXPORTER_OTLP_PROTOCOL: got ${JSON.stringify(protocolRaw)}, expected ${
        protocols.join(" or ")
      } (OTLP over HTTP, port 4318; grpc is not supported)`
    )
  }

  const headers: Record<string, string> = {}
  for (const name of ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"]) {
    const pairs = keyValues(name, get(name), false)
    if (typeof pairs === "string") return fail(pairs)
    Object.assign(headers, pairs)
  }
  const resourceAttributes = keyValues("OTEL_RESOURCE_ATTRIBUTES", get("OTEL_RESOURCE_ATTRIBUTES"), true)
  if (typeof resourceAttributes === "string") return fail(resourceAttributes)

  const sampler = get("OTEL_TRACES_SAMPLER")?.toLowerCase() ?? "parentbased_always_on"
  if (!samplers.includes(sampler as SamplerName)) {
    return fail(`OTEL_TRACES_SAMPLER: got ${JSON.stringify(sampler)}, expected one of ${samplers.join(", ")}`)
  }
  const ratioRaw = get("OTEL_TRACES_SAMPLER_ARG")
  const samplerRatio = ratioRaw === undefined ? 1 : Number(ratioRaw)
  if (!Number.isFinite(samplerRatio) || samplerRatio < 0 || samplerRatio > 1) {
    return fail(`OTEL_TRACES_SAMPLER_ARG: got ${JSON.stringify(ratioRaw)}, expected a number from 0 to 1`)
  }
  const batch = batchProcessor(get)
  if (typeof batch === "string") return fail(batch)

  return {
    _tag: "Ok",
    settings: Option.some({
      url: url.href,
      protocol: protocolRaw as Protocol,
      headers: Redacted.make(headers),
      serviceName: get("OTEL_SERVICE_NAME"),
      resourceAttributes,
      sampler: sampler as SamplerName,
      samplerRatio,
      ...batch
    })
  }
}

/**
 * The sampler a `Settings` names.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSampler = (settings: Pick<Settings, "sampler" | "samplerRatio">): Sampler => {
  switch (settings.sampler) {
    case "always_on":
      return new AlwaysOnSampler()
    case "always_off":
      return new AlwaysOffSampler()
    case "traceidratio":
      return new TraceIdRatioBasedSampler(settings.samplerRatio)
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() })
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.samplerRatio) })
  }
}

const fail = (message: string) => ({ _tag: "Error" as const, message })

/** Every variable `config` reads. */
const variables = [
  "OTEL_SDK_DISABLED",
  "OTEL_TRACES_EXPORTER",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
  "OTEL_SERVICE_NAME",
  "OTEL_RESOURCE_ATTRIBUTES",
  "OTEL_TRACES_SAMPLER",
  "OTEL_TRACES_SAMPLER_ARG",
  "OTEL_BSP_MAX_QUEUE_SIZE",
  "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
  "OTEL_BSP_SCHEDULE_DELAY",
  "OTEL_BSP_EXPORT_TIMEOUT"
] as const

/**
 * The `OTEL_*` variables of the `ConfigProvider` (the environment by default),
 * read and checked.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Option.Option<Settings>> = Config.all(
  Object.fromEntries(variables.map((name) => [name, Config.option(Config.String(name))]))
).pipe(
  Config.mapEffect((values) => {
    const env: Record<string, string | undefined> = {}
    for (const [name, value] of Object.entries(values)) env[name] = Option.getOrUndefined(value)
    const result = parse(env)
    return result._tag === "Ok"
      ? Effect.succeed(result.settings)
      : Effect.fail(new Config.ConfigError(new ConfigProvider.SourceError({ message: result.message })))
  })
)

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Exports every span of the program to `settings.url` through a batching
 * span processor with a bounded queue; flushes it when released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (settings: Settings): Layer.Layer<never> => {
  const exporterConfig = {
    url: settings.url,
    headers: { ...Redacted.value(settings.headers) },
    timeoutMillis: settings.exportTimeoutMillis
  }
  return Tracing.layerOtel({
    spanProcessor: new BatchSpanProcessor(
      settings.protocol === "http/json" ? new JsonExporter(exporterConfig) : new ProtoExporter(exporterConfig),
      {
        maxQueueSize: settings.maxQueueSize,
        maxExportBatchSize: settings.maxExportBatchSize,
        scheduledDelayMillis: settings.scheduledDelayMillis,
        exportTimeoutMillis: settings.exportTimeoutMillis
      }
    ),
    service: settings.serviceName ?? settings.resourceAttributes["service.name"],
    resource: Resources.resourceFromAttributes(
      Object.fromEntries(Object.entries(settings.resourceAttributes).filter(([key]) => key !== "service.name"))
    ),
    sampler: makeSampler(settings)
  })
}

/**
 * `layer` with the settings of the `OTEL_*` variables; nothing when no
 * endpoint is set.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(
  Effect.map(config, (settings) => Option.isSome(settings) ? layer(settings.value) : Layer.empty)
)

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

/** `k=v,k2=v2` (W3C baggage style, values percent-decoded); a string is the error. */
const keyValues = (
  name: string,
  raw: string | undefined,
  showValues: boolean
): Record<string, string> | string => {
  const result: Record<string, string> = {}
  if (raw === undefined) return result
  const entries = raw.split(",").map((s) => s.trim()).filter((s) => s !== "")
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    const eq = entry.indexOf("=")
    // A header value may be a secret: only its position is told.
    const shown = showValues ? JSON.stringify(entry) : `entry ${i + 1}`
    if (eq <= 0) return `${name}: ${shown} is not key=value`
    try {
      result[decodeURIComponent(entry.slice(0, eq).trim())] = decodeURIComponent(entry.slice(eq + 1).trim())
    } catch {
      return `${name}: ${shown} has a bad percent-encoding`
    }
  }
  return result
}

/** The variables of `env`, trimmed; an empty one counts as unset. */
const lookup = (env: Readonly<Record<string, string | undefined>>) => (name: string): string | undefined => {
  const value = env[name]?.trim()
  return value === undefined || value === "" ? undefined : value
}

/** Whether traces are exported at all: `true`, `false` (switched off), or the message naming the wrong variable. */
const exportEnabled = (get: (name: string) => string | undefined): boolean | string => {
  if (get("OTEL_SDK_DISABLED")?.toLowerCase() === "true") return false
  const exporters = get("OTEL_TRACES_EXPORTER")
  if (exporters === undefined) return true
  const names = exporters.split(",").map((s) => s.trim().toLowerCase())
  if (names.includes("none")) return false
  return names.includes("otlp") ? true : `OTEL_TRACES_EXPORTER: got ${JSON.stringify(exporters)}, expected otlp or none`
}

/** The traces endpoint (its own variable, else the base one with `/v1/traces`); `undefined` when neither is set. */
const tracesUrl = (
  get: (name: string) => string | undefined
):
  | { readonly _tag: "Url"; readonly href: string }
  | { readonly _tag: "Error"; readonly message: string }
  | undefined =>
{
  const tracesEndpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
  const baseEndpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
  if (tracesEndpoint === undefined && baseEndpoint === undefined) return undefined
  const [variable, raw] = tracesEndpoint !== undefined
    ? ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint]
    : ["OTEL_EXPORTER_OTLP_ENDPOINT", baseEndpoint!]
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return fail(`${variable}: not a URL (expected http://host:4318 or https://...)`)
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return fail(`${variable}: got a ${url.protocol} URL, expected http: or https:`)
  }
  if (url.username !== "" || url.password !== "") {
    // Credentials in the URL would end up in error messages: they belong in OTEL_EXPORTER_OTLP_HEADERS.
    return fail(`${variable}: the URL holds credentials; put them in OTEL_EXPORTER_OTLP_HEADERS`)
  }
  return { _tag: "Url", href: tracesEndpoint !== undefined ? url.href : `${url.href.replace(/\/+$/, "")}/v1/traces` }
}

/** The batch span processor's settings (`OTEL_BSP_*`), or the message naming the wrong variable. */
const batchProcessor = (
  get: (name: string) => string | undefined
): Pick<Settings, "maxQueueSize" | "maxExportBatchSize" | "scheduledDelayMillis" | "exportTimeoutMillis"> | string => {
  const int = (name: string, fallback: number, min: number): number | string => {
    const value = get(name)
    if (value === undefined) return fallback
    const n = Number(value)
    return Number.isSafeInteger(n) && n >= min
      ? n
      : `${name}: got ${JSON.stringify(value)}, expected a whole number of at least ${min}`
  }
  const maxQueueSize = int("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1)
  const maxExportBatchSize = int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1)
  const scheduledDelayMillis = int("OTEL_BSP_SCHEDULE_DELAY", 5000, 0)
  const exportTimeoutMillis = int("OTEL_BSP_EXPORT_TIMEOUT", 30000, 1)
  for (const value of [maxQueueSize, maxExportBatchSize, scheduledDelayMillis, exportTimeoutMillis]) {
    if (typeof value === "string") return value
  }
  if ((maxExportBatchSize as number) > (maxQueueSize as number)) {
    return `OTEL_BSP_MAX_EXPORT_BATCH_SIZE: ${maxExportBatchSize} is over OTEL_BSP_MAX_QUEUE_SIZE (${maxQueueSize})`
  }
  return {
    maxQueueSize: maxQueueSize as number,
    maxExportBatchSize: maxExportBatchSize as number,
    scheduledDelayMillis: scheduledDelayMillis as number,
    exportTimeoutMillis: exportTimeoutMillis as number
  }
}
