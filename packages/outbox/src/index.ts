/**
 * @neural-hive/outbox: a transactional outbox relay from MongoDB to Kafka, through
 * the `kafka_producer` breaker. A Kafka outage queues documents instead of
 * refusing them; a relay publishes them when Kafka is back.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as Outbox from "./Outbox.ts"

/**
 * @since 0.1.0
 */
export * as OutboxMetrics from "./OutboxMetrics.ts"
