/**
 * @neural-hive/kafka: a kafkajs producer guarded by the `kafka_producer`
 * circuit breaker (fail-fast), with a classifier that counts every failure
 * but the caller's own.
 *
 * @since 0.1.0
 */

/**
 * The `KafkaProducer` service: `send`, `sendBatch`, `layer`, `layerConfig`.
 *
 * @since 0.1.0
 */
export * as KafkaProducer from "./KafkaProducer.ts"

export {
  /**
   * @since 0.1.0
   */
  KafkaError
} from "./KafkaError.ts"
