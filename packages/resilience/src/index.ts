/**
 * @neural-hive/resilience: Effect circuit breakers with a pure state machine,
 * trip policies, a registry, events and a Promise/sync facade.
 *
 * @since 0.1.0
 */

/**
 * The breaker: `make`, `layer`, policies, options.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.ts"

export {
  /**
   * @since 0.1.0
   */
  withBreaker
} from "./CircuitBreaker.ts"

export {
  /**
   * @since 0.1.0
   */
  failOpen
} from "./GuardedClient.ts"

export {
  /**
   * @since 0.1.0
   */
  CircuitBreakerError,
  /**
   * @since 0.1.0
   */
  CircuitBreakerOptionsError,
  /**
   * @since 0.1.0
   */
  CircuitBreakerTimeoutError
} from "./CircuitBreakerError.ts"

/**
 * The registry of a program's breakers.
 *
 * @since 0.1.0
 */
export * as Registry from "./Registry.ts"

/**
 * Wrappers for synchronous and Promise-returning functions.
 *
 * @since 0.1.0
 */
export * as Facade from "./Facade.ts"

/**
 * What a coordination backend may do with a breaker: observe its local
 * decisions, read what it may share, adopt decisions taken elsewhere.
 *
 * @since 0.1.0
 */
export * as Remote from "./Remote.ts"

/**
 * Trip policy counters, to write a policy of your own.
 *
 * @since 0.1.0
 */
export * as TripPolicy from "./TripPolicy.ts"

/**
 * @since 0.1.0
 */
export { redact, redactCause, redactError } from "./Redact.ts"

/**
 * The skeleton the client integrations share: a client behind a breaker, retired while it is open,
 * with a deadline, a span and an idle probe.
 *
 * @since 0.1.0
 */
export * as GuardedClient from "./GuardedClient.ts"

/**
 * The YAML configuration (circuits by name), with environment overrides and validation.
 *
 * @since 0.1.0
 */
export * as ResilienceConfig from "./ResilienceConfig.ts"

/**
 * A concurrency limit per circuit: calls in flight, a bounded queue with a timeout, typed rejections.
 *
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.ts"

/**
 * Retries within a budget (at most a share of the calls over a window), never while the breaker is not CLOSED.
 *
 * @since 0.1.0
 */
export * as RetryBudget from "./RetryBudget.ts"

/**
 * Hedged calls for idempotent reads: a second attempt after a delay (fixed or the recent p95), the first success kept.
 *
 * @since 0.1.0
 */
export * as Hedge from "./Hedge.ts"
