/**
 * @neural-hive/observability: Prometheus metrics, transition logs,
 * OpenTelemetry tracing and the `/health` `/live` `/metrics` endpoints for the
 * breakers of `@neural-hive/resilience`. Alert rules and a Grafana dashboard
 * ship as files beside the sources (`alerts/`, `dashboards/`).
 *
 * @since 0.1.0
 */

/**
 * The live breaker board: one self-contained page and its event stream.
 *
 * @since 0.1.0
 */
export * as Board from "./Board.ts"

/**
 * The `/health`, `/live` and `/metrics` HTTP endpoints.
 *
 * @since 0.1.0
 */
export * as Http from "./Http.ts"

/**
 * `http_server_request_duration_seconds`, recorded by the HTTP server.
 *
 * @since 0.1.0
 */
export * as HttpMetrics from "./HttpMetrics.ts"

/**
 * JSON log lines in the Python service's schema, as one `Logger` layer.
 *
 * @since 0.1.0
 */
export * as Logging from "./Logging.ts"

/**
 * prom-client metrics read from the breakers at scrape time.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.ts"

/**
 * prom-client metrics read from the bulkheads, retry budgets and hedges at scrape time.
 *
 * @since 0.1.0
 */
export * as PolicyMetrics from "./PolicyMetrics.ts"

/**
 * Metrics, logs and HTTP in one layer.
 *
 * @since 0.1.0
 */
export * as Observability from "./Observability.ts"

/**
 * OpenTelemetry trace export configured by the standard `OTEL_*` variables.
 *
 * @since 0.1.0
 */
export * as Otel from "./Otel.ts"

/**
 * The `service` label and annotation shared by every layer.
 *
 * @since 0.1.0
 */
export * as ServiceName from "./ServiceName.ts"

/**
 * Span attributes for protected calls, and an OpenTelemetry tracer layer.
 *
 * @since 0.1.0
 */
export * as Tracing from "./Tracing.ts"

/**
 * One log line per breaker transition.
 *
 * @since 0.1.0
 */
export * as TransitionLog from "./TransitionLog.ts"
