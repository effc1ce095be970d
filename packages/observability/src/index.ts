/**
 * @neural-hive/observability: Prometheus metrics, transition logs,
 * OpenTelemetry tracing and the `/health` `/live` `/metrics` endpoints for the
 * breakers of `@neural-hive/resilience`. Alert rules and a Grafana dashboard
 * ship as files beside the sources (`alerts/`, `dashboards/`).
 *
 * @since 0.1.0
 */

/**
 * The `/health`, `/live` and `/metrics` HTTP endpoints.
 *
 * @since 0.1.0
 */
export * as Http from "./Http.ts"

/**
 * prom-client metrics read from the breakers at scrape time.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.ts"

/**
 * Metrics, logs and HTTP in one layer.
 *
 * @since 0.1.0
 */
export * as Observability from "./Observability.ts"

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
