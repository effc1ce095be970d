/**
 * HTTP server metrics with the OpenTelemetry semantic-convention name:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `http_server_request_duration_seconds` | histogram | service, method, route, status_class |
 *
 * Every label is bounded: `method` is one of the standard methods or `_OTHER`,
 * `route` is a route template of the server (`/plans`, `/admin/breakers/{name}/{action}`)
 * or `other`, and `status_class` is `2xx`, `3xx`, `4xx` or `5xx`. The duration
 * runs from the request to the response head (a streamed body, such as the
 * board's event stream, is not included).
 *
 * The server calls the recorder: `instrument(app)` wraps an HTTP app so that
 * every request it answers is recorded, when an `HttpMetrics` service is in
 * the context (and costs nothing otherwise).
 *
 * **Example** (Measuring an app)
 *
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { HttpServer, HttpServerResponse } from "effect/http"
 * import { HttpMetrics, Metrics } from "@neural-hive/observability"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 *
 * const app = Effect.succeed(HttpServerResponse.text("ok"))
 * const Served = Layer.unwrap(Effect.map(HttpMetrics.instrument(app), (measured) => HttpServer.serve(measured))).pipe(
 *   Layer.provide(HttpMetrics.layer()),
 *   Layer.provide(Metrics.layer()),
 *   Layer.provide(Registry.layer)
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerRequestTag from "effect/http/HttpServerRequest"
import type * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Prometheus from "prom-client"
import { PrometheusRegistry } from "./Metrics.ts"
import { ServiceName } from "./ServiceName.ts"

/**
 * @since 0.1.0
 * @category constants
 */
export const name = "http_server_request_duration_seconds"

/**
 * The OpenTelemetry semantic-convention buckets for HTTP durations, in seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBuckets: ReadonlyArray<number> = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10
]

/**
 * The routes of the service and of `Http`, as templates: `{name}` matches one
 * path segment.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRoutes: ReadonlyArray<string> = [
  "/",
  "/status",
  "/events",
  "/plans",
  "/health",
  "/live",
  "/ready",
  "/metrics",
  "/faults",
  "/faults/{dependency}/{mode}",
  "/admin/breakers/{name}/{action}",
  "/admin/outbox/{id}/requeue",
  "/admin/outbox/requeue-dead"
]

/**
 * @since 0.1.0
 * @category constants
 */
export const methods: ReadonlyArray<string> = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "CONNECT",
  "TRACE"
]

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The `service` label (default: the `ServiceName` reference). */
  readonly service?: string | undefined
  /** Route templates (default `defaultRoutes`); a path matching none is `other`. */
  readonly routes?: ReadonlyArray<string> | undefined
  readonly buckets?: ReadonlyArray<number> | undefined
}

/**
 * What the HTTP server calls once per answered request.
 *
 * @since 0.1.0
 * @category models
 */
export interface Recorder {
  /** Records one answered request: its method, path (mapped to a bounded route), status and duration. */
  readonly record: (method: string, path: string, status: number, seconds: number) => void
  /** The `route` label of a path. */
  readonly route: (path: string) => string
}

/**
 * @since 0.1.0
 * @category services
 */
export class HttpMetrics extends Context.Service<HttpMetrics, Recorder>()("@neural-hive/observability/HttpMetrics") {}

/**
 * The `status_class` label of a status code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const statusClass = (status: number): string =>
  status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : "5xx"

/**
 * Registers the histogram in the `PrometheusRegistry` (removed again when
 * the scope closes) and returns its recorder.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Recorder, never, PrometheusRegistry | Scope.Scope> = Effect
  .fnUntraced(function*(options?: Options) {
    const registry = yield* PrometheusRegistry
    const service = options?.service ?? (yield* ServiceName)
    const histogram = new Prometheus.Histogram({
      name,
      help: "Duration of HTTP server requests until the response head, in seconds",
      labelNames: ["service", "method", "route", "status_class"] as const,
      buckets: [...(options?.buckets ?? defaultBuckets)],
      registers: [registry]
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (registry.getSingleMetric(name) === histogram) registry.removeSingleMetric(name)
      })
    )
    const templates = (options?.routes ?? defaultRoutes).map((template) => ({
      template,
      pattern: new RegExp(
        `^${template.split("/").map((part) => (/^\{[^}]+\}$/.test(part) ? "[^/]+" : escape(part))).join("/")}$`
      )
    }))
    const route = (path: string): string => {
      for (const { pattern, template } of templates) if (pattern.test(path)) return template
      return "other"
    }
    return {
      route,
      record: (method, path, status, seconds) =>
        histogram.observe({
          service,
          method: methods.includes(method) ? method : "_OTHER",
          route: route(path),
          status_class: statusClass(status)
        }, seconds)
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<HttpMetrics, never, PrometheusRegistry> =>
  Layer.effect(HttpMetrics, make(options))

/**
 * Records every request `app` answers, when an `HttpMetrics` service is
 * provided; `app` unchanged otherwise.
 *
 * @since 0.1.0
 * @category combinators
 */
export const instrument = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<
  Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
> =>
  Effect.map(Effect.serviceOption(HttpMetrics), (metrics) => {
    if (metrics._tag === "None") return app
    const recorder = metrics.value
    return HttpServerRequestTag.HttpServerRequest.use((request) =>
      Effect.flatMap(Clock.currentTimeNanos, (start) =>
        Effect.onExit(app, (exit) =>
          Effect.map(Clock.currentTimeNanos, (end) => {
            const status = exit._tag === "Success" ? exit.value.status : 500
            recorder.record(request.method, pathOf(request.url), status, Number(end - start) / 1e9)
          })))
    )
  })

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

const pathOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}
