/**
 * The outbox's backlog as Prometheus metrics, in the registry `/metrics` serves:
 *
 * - `outbox_pending` (gauge): documents waiting to be published;
 * - `outbox_oldest_pending_seconds` (gauge): age of the oldest of them (0 when none);
 * - `outbox_published_total` (counter): documents published since start;
 * - `outbox_failed_sends_total` (counter): sends that failed (an outage, or a refusal of the documents);
 * - `outbox_dead` (gauge): documents Kafka refused as their own fault, left aside until requeued;
 * - `outbox_dead_total` (counter): documents moved to `dead` by this relay since start.
 *
 * Read from the relay when Prometheus scrapes, so they are exact at that moment.
 * The alert rules are in `alerts/outbox.rules.yml`.
 *
 * @since 0.1.0
 */
import { Metrics, ServiceName } from "@neural-hive/observability"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Prometheus from "prom-client"
import { OutboxRelay } from "./Outbox.ts"

/**
 * @since 0.1.0
 * @category constants
 */
export const names = {
  pending: "outbox_pending",
  oldestPendingSeconds: "outbox_oldest_pending_seconds",
  published: "outbox_published_total",
  failedSends: "outbox_failed_sends_total",
  dead: "outbox_dead",
  deadTotal: "outbox_dead_total"
} as const

/**
 * Registers the outbox metrics for the relay in the context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never, never, OutboxRelay | Metrics.PrometheusRegistry> = Layer.effectDiscard(
  Effect.gen(function*() {
    const relay = yield* OutboxRelay
    const registry = yield* Metrics.PrometheusRegistry
    const service = yield* ServiceName.ServiceName
    const labels = { service }
    const registers = [registry]
    const gauge = (name: string, help: string, read: () => number) =>
      new Prometheus.Gauge({
        name,
        help,
        labelNames: ["service"],
        registers,
        collect() {
          this.set(labels, read())
        }
      })
    const counter = (name: string, help: string, read: () => number) => {
      let reported = 0
      return new Prometheus.Counter({
        name,
        help,
        labelNames: ["service"],
        registers,
        collect() {
          // The relay's count only goes up: add what happened since the last scrape.
          const total = read()
          if (total > reported) this.inc(labels, total - reported)
          reported = total
        }
      })
    }
    gauge(names.pending, "Outbox documents waiting to be published", () => relay.statsUnsafe().pending)
    gauge(
      names.oldestPendingSeconds,
      "Age of the oldest outbox document waiting to be published, in seconds (0 when none)",
      () => relay.statsUnsafe().oldestPendingMillis / 1000
    )
    counter(names.published, "Outbox documents published to Kafka", () => relay.statsUnsafe().published)
    counter(names.failedSends, "Outbox sends that failed", () => relay.statsUnsafe().failedSends)
    gauge(
      names.dead,
      "Outbox documents Kafka refused as their own fault, left aside until requeued",
      () => relay.statsUnsafe().dead
    )
    counter(names.deadTotal, "Outbox documents moved to dead", () => relay.statsUnsafe().deadLettered)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const name of Object.values(names)) registry.removeSingleMetric(name)
      })
    )
  })
)
