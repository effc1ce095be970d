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
  classify,
  /**
   * @since 0.1.0
   */
  fromCause,
  /**
   * @since 0.1.0
   */
  isBrokerFailure,
  /**
   * @since 0.2.0
   */
  isFailure,
  /**
   * @since 0.1.0
   */
  KafkaError
} from "./KafkaError.ts"

export type {
  /**
   * @since 0.1.0
   */
  Classification as KafkaErrorClassification,
  /**
   * @since 0.1.0
   */
  Reason as KafkaErrorReason
} from "./KafkaError.ts"
