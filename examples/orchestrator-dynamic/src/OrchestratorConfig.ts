/**
 * The Orchestrator Dynamic format, mapped onto the generic `ResilienceConfig`:
 * four dependencies under `circuitBreaker` (any other key of the file, such as
 * the rest of a Helm values file, is ignored), each with the Python service's
 * keys plus our extras.
 *
 * ```yaml
 * circuitBreaker:
 *   kafka:    { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
 *   temporal: { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
 *   redis:    { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 60 }
 *   mongodb:  { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
 * ```
 *
 * The mapping: `kafka` is the circuit `kafka_producer` (and so on), the
 * format's `timeoutSeconds` is the generic `maxOpenSeconds`, Redis is
 * fail-open and recovers after `RedisCache.breakerDefaults`' 60 s with a 2 s
 * call timeout (it is only a cache), every other value comes from
 * `ResilienceConfig.defaults`. Every circuit takes a trip policy and its keys
 * (`policy: failuresInWindow`, `failures`, `windowSeconds`, ...). Variables
 * `CIRCUIT_BREAKER_<DEPENDENCY>_<KEY>` override a key
 * (`CIRCUIT_BREAKER_KAFKA_FAIL_MAX=10`); an unknown one is an error.
 *
 * Each dependency also has the policies that fit it (`policies`, docs/integrations.md): an adaptive limit
 * on Temporal and MongoDB (a hanging dependency must not hold every fiber), retries within a budget on
 * Kafka's sends, hedged Redis reads. The file changes them under the same circuit (`adaptiveLimit`,
 * `retry`, `hedge`; `enabled: false` turns one off), and so do the variables
 * (`CIRCUIT_BREAKER_TEMPORAL_ADAPTIVE_LIMIT_MAX_LIMIT=50`).
 */
import { RedisCache } from "@neural-hive/redis"
import { type CircuitBreaker, type CircuitBreakerOptionsError, ResilienceConfig } from "@neural-hive/resilience"
import { Duration, type Effect } from "effect"

export type Dependency = "kafka" | "temporal" | "redis" | "mongodb"

export const dependencies: ReadonlyArray<Dependency> = ["kafka", "temporal", "redis", "mongodb"]

/** The `circuit` label of each dependency's breaker. */
export const circuitNames: Readonly<Record<Dependency, string>> = {
  kafka: "kafka_producer",
  temporal: "temporal_client",
  redis: "redis_client",
  mongodb: "mongodb_client"
}

/** The policies each dependency has unless its file or variables say otherwise (docs/integrations.md). */
export const policies = {
  // A hanging frontend must not hold every fiber: the limit follows Temporal's latency, 2 to 100 starts at once.
  temporal: {
    adaptiveLimit: { initialLimit: 20, minLimit: 2, maxLimit: 100, maxQueued: 50, queueTimeout: Duration.seconds(2) }
  },
  // The same for MongoDB, within the driver's pool of 10 connections and its wait queue.
  mongodb: {
    adaptiveLimit: { initialLimit: 10, minLimit: 2, maxLimit: 50, maxQueued: 50, queueTimeout: Duration.seconds(2) }
  },
  // A broker failing over is retried (the producer is idempotent), at most 2 times and 10 % of the sends.
  kafka: {
    retry: {
      maxRetries: 2,
      budgetRatio: 0.1,
      budgetMinPerSecond: 1,
      budgetWindow: Duration.seconds(10),
      baseDelay: Duration.millis(100)
    }
  },
  // A GET is idempotent and cheap with a slow tail: a second one after the p95 latency.
  redis: { hedge: { percentile: 0.95, minDelay: Duration.millis(5), samples: 200 } }
} as const satisfies Readonly<Record<Dependency, Partial<ResilienceConfig.CircuitSettings>>>

/** The format: its section, its four dependencies with their own defaults, its name for `maxOpenSeconds`. */
export const format: ResilienceConfig.Format = {
  section: "circuitBreaker",
  circuits: {
    // The outbox queues tickets while Kafka is out: an open kafka_producer degrades the service (/health 200
    // "degraded"), it does not refuse plans.
    kafka: { failureMode: "fail-open", ...policies.kafka },
    temporal: policies.temporal,
    redis: {
      recoveryTimeout: RedisCache.breakerDefaults.recoveryTimeout,
      callTimeout: Duration.seconds(2),
      failureMode: RedisCache.breakerDefaults.failureMode,
      ...policies.redis
    },
    mongodb: policies.mongodb
  },
  closed: true,
  // Each service fixes its failure mode in code (Redis answers a miss), so the file does not offer it.
  names: { maxOpenSeconds: "timeoutSeconds", failureMode: null }
}

/** The settings of the four dependencies. */
export interface Settings extends Readonly<Record<Dependency, ResilienceConfig.CircuitSettings>> {}

/** Every problem of the file and the environment (a `ResilienceConfigError`). */
export interface ConfigError extends ResilienceConfig.ResilienceConfigError {}

/** What an empty file gives. */
export const defaults = ResilienceConfig.decode(undefined, {}, format) as Settings

/** Validates a parsed document and the environment (see `ResilienceConfig.decode`). */
export const decode = (
  document: unknown,
  env: Readonly<Record<string, string | undefined>> = {}
): Settings | ReadonlyArray<ResilienceConfig.Problem> =>
  ResilienceConfig.decode(document, env, format) as Settings | ReadonlyArray<ResilienceConfig.Problem>

/** Parses YAML in this format (see `ResilienceConfig.parse`). */
export const parse = (
  text: string,
  options: Pick<ResilienceConfig.ParseOptions, "env" | "source" | "maxBytes" | "section"> = {}
): Effect.Effect<Settings, ConfigError> =>
  ResilienceConfig.parse(text, { ...format, ...options }) as Effect.Effect<Settings, ConfigError>

/** Reads a YAML file in this format, such as a whole Helm values file (see `ResilienceConfig.load`). */
export const load = (
  path: string,
  options: Pick<ResilienceConfig.ParseOptions, "env" | "source" | "maxBytes" | "section"> = {}
): Effect.Effect<Settings, ConfigError> =>
  ResilienceConfig.load(path, { ...format, ...options }) as Effect.Effect<Settings, ConfigError>

/** The policies of one dependency, made under its circuit name (`ResilienceConfig.policiesOf`). */
export const policiesOf = (
  dependency: Dependency,
  settings: ResilienceConfig.CircuitSettings
): Effect.Effect<ResilienceConfig.Policies, CircuitBreakerOptionsError> =>
  ResilienceConfig.policiesOf(circuitNames[dependency], settings)

/** The breaker options of one dependency, under its circuit name. */
export const toBreakerOptions = (
  dependency: Dependency,
  settings: ResilienceConfig.CircuitSettings
): CircuitBreaker.Options => ResilienceConfig.toBreakerOptions(circuitNames[dependency], settings)
