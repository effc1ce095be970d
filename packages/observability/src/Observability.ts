/**
 * Everything at once: metrics, transition logs and the HTTP endpoints for
 * every breaker of the `Registry.Registry`.
 *
 * **Example** (The Orchestrator Dynamic service: metrics, JSON logs and port 8000)
 *
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 * import { Observability } from "@neural-hive/observability"
 *
 * const MainLayer = Observability.layer({ service: "orchestrator-dynamic" }).pipe(
 *   Layer.provideMerge(Registry.layer)
 * )
 * ```
 *
 * @since 0.1.0
 */
import type { Registry } from "@neural-hive/resilience"
import type * as HttpServer from "effect/http/HttpServer"
import type * as HttpServerError from "effect/http/HttpServerError"
import * as Layer from "effect/Layer"
import * as Http from "./Http.ts"
import * as Metrics from "./Metrics.ts"
import * as PolicyMetrics from "./PolicyMetrics.ts"
import * as TransitionLog from "./TransitionLog.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The `service` of metrics, logs and `/health` (default: the `ServiceName` reference). */
  readonly service?: string | undefined
  readonly metrics?: Omit<Metrics.Options, "service"> | undefined
  readonly http?: Omit<Http.Options, "service"> | undefined
  /** `"json"` (default) writes JSON lines whatever the program's loggers; `"current"` uses the program's loggers. */
  readonly logs?: "json" | "current" | undefined
}

/**
 * Metrics in the `PrometheusRegistry` (the breakers', and the policies' of
 * every circuit that registered some), one log line per transition, and
 * `/health`, `/live`, `/ready`, `/metrics` on port 8000 (by default).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<
  Metrics.PrometheusRegistry | HttpServer.HttpServer,
  HttpServerError.ServeError | Http.HttpOptionsError,
  Registry.Registry
> => {
  const service = options?.service === undefined ? {} : { service: options.service }
  const logs = options?.logs === "current" ? TransitionLog.layer(service) : TransitionLog.layerJson(service)
  return Layer.mergeAll(Http.layer({ ...options?.http, ...service }), logs, PolicyMetrics.layerRegistry(service)).pipe(
    Layer.provideMerge(Metrics.layer({ ...options?.metrics, ...service }))
  )
}
