/**
 * A Kafka producer (kafkajs) whose every send goes through the
 * `kafka_producer` circuit breaker: the Orchestrator Dynamic's "protects publishing execution
 * tickets".
 *
 * - Fail-fast: while the breaker is open a send fails at once with
 *   `CircuitBreakerError`, without touching the network.
 * - When in doubt, count: caller errors (message too large, invalid topic or
 *   record, a value that cannot be serialized) come back as `KafkaError` and
 *   never move the breaker; everything else counts (connection, timeout,
 *   leader/replica unavailable, unknown topic, authentication and authorization,
 *   and any error this package does not recognise). See `KafkaError.ts` for the
 *   table.
 * - Bounded: kafkajs retries `retries` times (default 0) with the connection
 *   and request timeouts given here, so one send is one outcome for the
 *   breaker; `sendTimeout` (the breaker's `callTimeout`) ends a call that hangs
 *   anyway.
 * - The layer builds even when Kafka is down: the producer connects in the
 *   background through the breaker (the start check: an unreachable cluster is
 *   counted at once) and again, inside the breaker, on the first send after a
 *   failure. Closing the scope disconnects, within `disconnectTimeout`.
 * - Idle recovery: when the open period ends and no send comes, the breaker's
 *   probe (a metadata request through a short-lived kafkajs admin connection)
 *   tries the cluster, so an idle producer's breaker closes by itself.
 *
 * **Example** (Publishing an execution ticket)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaProducer } from "@neural-hive/kafka"
 *
 * const publish = (ticket: { readonly ticketId: string }) =>
 *   Effect.gen(function*() {
 *     const producer = yield* KafkaProducer.KafkaProducer
 *     return yield* producer.send({ topic: "execution-tickets", messages: [{ key: ticket.ticketId, value: ticket }] })
 *   })
 *
 * const main = publish({ ticketId: "t-1" }).pipe(
 *   Effect.provide(KafkaProducer.layer({ brokers: ["kafka:9092"], breaker: { failMax: 5, recoveryTimeout: "30 seconds" } }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { CircuitBreaker, CircuitBreakerOptionsError, GuardedClient } from "@neural-hive/resilience"
import type { CircuitBreakerError, ResilienceConfig } from "@neural-hive/resilience"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as KafkaJS from "kafkajs"
import { makeGuardedClient, makeKafka } from "./internal/client.ts"
import { validate } from "./internal/options.ts"
import { makeProducer } from "./internal/producer.ts"
import { makeTransactional } from "./internal/transactional.ts"
import { KafkaError } from "./KafkaError.ts"

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

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * A message value: a string or bytes as they are, `null` (a tombstone), or
 * anything else JSON-encoded. A value `JSON.stringify` cannot encode (a
 * `BigInt`, a cycle, a function) fails the send with reason `Serialization`
 * before it reaches the breaker.
 *
 * @since 0.1.0
 * @category models
 */
export type Value = string | number | boolean | object | null

/**
 * @since 0.1.0
 * @category models
 */
export interface Message {
  readonly key?: string | Uint8Array | null | undefined
  readonly value: Value
  readonly headers?:
    | Readonly<Record<string, string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined>>
    | undefined
  readonly partition?: number | undefined
  /** Milliseconds since the epoch, as a string (kafkajs's format). */
  readonly timestamp?: string | undefined
}

/**
 * Messages for one topic.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProducerRecord {
  readonly topic: string
  readonly messages: ReadonlyArray<Message>
}

/**
 * Messages for several topics, sent in one call (one outcome for the breaker).
 *
 * @since 0.1.0
 * @category models
 */
export interface ProducerBatch {
  readonly topicMessages: ReadonlyArray<ProducerRecord>
}

/**
 * Where each partition's messages landed, as kafkajs reports it.
 *
 * @since 0.1.0
 * @category models
 */
export type RecordMetadata = KafkaJS.RecordMetadata

/**
 * SASL credentials. The password stays `Redacted` and is removed from every
 * error message and log line this package writes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sasl {
  readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"
  readonly username: string
  readonly password: Redacted.Redacted<string>
}

/**
 * TLS settings of the broker connections (`ssl`), checked like every option.
 *
 * @since 0.1.0
 * @category models
 */
export interface Tls {
  /** PEM certificates the brokers' chain must end in (replaces the system's CAs); default: the system's. */
  readonly ca?: string | ReadonlyArray<string> | undefined
  /** The name the broker's certificate must hold (SNI and check); default: the broker's host. */
  readonly servername?: string | undefined
  /** `false` accepts any certificate: for tests only. Default true. */
  readonly rejectUnauthorized?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `host:port` of one or more brokers (bootstrap). */
  readonly brokers: ReadonlyArray<string>
  /** Default `"neural-hive"`. */
  readonly clientId?: string | undefined
  /** Breaker options; `name` defaults to `"kafka_producer"`, `isFailure` to this package's `isFailure`. */
  readonly breaker?: Partial<CircuitBreaker.Options> | undefined
  /** TCP connect (and first handshake) deadline. Default 3 seconds. */
  readonly connectionTimeout?: Duration.Input | undefined
  /** Deadline of every request to a broker (metadata, produce). Default 5 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
  /** How long the broker may wait for replicas to acknowledge (`acks: -1`). Default 80% of `requestTimeout`. */
  readonly ackTimeout?: Duration.Input | undefined
  /** The breaker's `callTimeout`: a send running longer is abandoned and counts. Default 10 seconds. */
  readonly sendTimeout?: Duration.Input | undefined
  /** Bound of the disconnect when the scope closes. Default 5 seconds. */
  readonly disconnectTimeout?: Duration.Input | undefined
  /**
   * kafkajs retries inside one send. Default 0 (1 with `idempotent`, which
   * needs at least 1). With retries a message reported as failed may be in
   * the topic up to `retries + 1` times, and a sent one more than once unless
   * the producer is idempotent.
   */
  readonly retries?: number | undefined
  /** -1 all in-sync replicas (default), 1 the leader, 0 none. */
  readonly acks?: -1 | 0 | 1 | undefined
  /** Idempotent producer (needs `acks: -1` and `retries >= 1`). Default false. */
  readonly idempotent?: boolean | undefined
  /** Let a send to a missing topic create it (kafkajs default: true). */
  readonly allowAutoTopicCreation?: boolean | undefined
  /** Default `"none"`. */
  readonly compression?: "none" | "gzip" | undefined
  /**
   * TLS to the brokers: `true` trusts the system's CAs, a `Tls` adds a private CA or a server name (e.g. a
   * `SASL_SSL` listener signed by the cluster's own CA). Default false (plaintext).
   */
  readonly ssl?: boolean | Tls | undefined
  /** SASL credentials (`SASL_PLAINTEXT`, or `SASL_SSL` with `ssl`). */
  readonly sasl?: Sasl | undefined
  /** Connect when the layer is built, in the background and through the breaker (the start check). Default true. */
  readonly eagerConnect?: boolean | undefined
  /**
   * The breaker's trial when its open period ends with no send to try it: a metadata request for the
   * cluster (`true`, the default) or for one topic (`{ topic }`, so a topic the cluster lost counts), over a
   * kafkajs admin connection opened for the probe only. `false`: none.
   */
  readonly probe?: boolean | { readonly topic: string } | undefined
  /** kafkajs log lines below this level are dropped; the rest go to Effect's logger. Default `"Warn"`. */
  readonly logLevel?: "None" | "Error" | "Warn" | "Info" | "Debug" | undefined
  /**
   * The circuit's policies (`ResilienceConfig.policiesOf`), composed around every send by `GuardedClient`:
   * `retry` retries a send that failed with an error Kafka marks retriable, within the retry budget, never
   * while the breaker is not CLOSED (a retried send may write its messages twice unless the producer is
   * `idempotent`). A transaction's steps are never retried one by one, nor is anything hedged.
   */
  readonly policies?: ResilienceConfig.Policies | undefined
}

// -----------------------------------------------------------------------------
// the service
// -----------------------------------------------------------------------------

/**
 * The producer. Both operations are guarded by `breaker` (fail-fast).
 *
 * @since 0.1.0
 * @category services
 */
export class KafkaProducer extends Context.Service<KafkaProducer, {
  /** Sends messages to one topic: one call, one breaker outcome. */
  readonly send: (record: ProducerRecord) => Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError>
  /** Sends messages to several topics in one call. */
  readonly sendBatch: (batch: ProducerBatch) => Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError>
  /**
   * A transactional producer on the same cluster and behind the same breaker (see
   * `TransactionalProducer`), closed with the scope. Fails only on a bad `transactionalId`.
   */
  readonly transactional: (
    transactionalId: string,
    options?: TransactionalOptions
  ) => Effect.Effect<TransactionalProducer, CircuitBreakerOptionsError, Scope.Scope>
  /** The `kafka_producer` breaker (state, snapshot, manual control). */
  readonly breaker: CircuitBreaker.CircuitBreaker
}>()("@neural-hive/kafka/KafkaProducer") {}

/**
 * A consumer-group offset committed in the same transaction as a send, with `metadata` (at most a few
 * KiB: Kafka's `offset.metadata.max.bytes`, 4096 by default). Read it back with
 * `TransactionalProducer.committedMetadata`: it is there if and only if the transaction committed.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransactionProgress {
  readonly groupId: string
  readonly topic: string
  /** Default 0. */
  readonly partition?: number | undefined
  readonly metadata: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TransactionalOptions {
  /**
   * How long the broker lets a transaction stay open before aborting it (a producer that died mid-send,
   * and no new instance came): `read_committed` readers wait behind it that long. Default 60 seconds.
   */
  readonly transactionTimeout?: Duration.Input | undefined
}

/**
 * A kafkajs transactional producer (`idempotent`, one request in flight) whose every call goes
 * through the `kafka_producer` breaker, classified like `send` (a timeout counts).
 *
 * - `send`: the messages and, optionally, a consumer-group offset (`TransactionProgress`) in one
 *   transaction, committed before it returns. Each Kafka step (the messages, the offset, the commit) is
 *   one breaker call bounded by the `callTimeout`, so a slow link needs a timeout that covers a step's
 *   two or three round trips, not the transaction's. A failure before the
 *   commit aborts the transaction (the messages are invisible to `read_committed` readers). A failure
 *   of the commit itself, or a call that timed out, leaves the outcome unknown: the next call first
 *   makes a new producer, as `reset` does.
 * - `reset`: makes a new kafkajs producer with the same `transactionalId`; its `initTransactions`
 *   fences every older instance (their next call fails with `PRODUCER_FENCED` or
 *   `INVALID_PRODUCER_EPOCH`) and settles the transaction they left open (committed if its commit
 *   reached the coordinator, aborted otherwise). After it, `committedMetadata` tells what committed.
 * - `committedMetadata`: the metadata of a group's committed offset; `undefined` when the group has
 *   none. It reads through an admin connection that every new producer opens in the same step as its
 *   own (one round of connection set-up after a restart instead of two) and keeps until it fails.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransactionalProducer {
  readonly transactionalId: string
  /**
   * Sends `batch` in one Kafka transaction and commits it, with `progress` (a consumer-group offset
   * and its metadata) committed in the same transaction; aborts it when a step fails.
   */
  readonly send: (
    batch: ProducerBatch,
    progress?: TransactionProgress
  ) => Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError>
  /** A new producer session: fences an older instance with the same `transactionalId` and settles its open transaction. */
  readonly reset: Effect.Effect<void, KafkaError | CircuitBreakerError>
  /** The metadata of `groupId`'s committed offset on `topic`'s `partition` (default 0), if any: the progress record. */
  readonly committedMetadata: (
    groupId: string,
    topic: string,
    partition?: number
  ) => Effect.Effect<string | undefined, KafkaError | CircuitBreakerError>
}

/**
 * Whether a failure says another producer with the same `transactionalId` took over (this one is
 * fenced: nothing it sends can commit any more).
 *
 * @since 0.1.0
 * @category classification
 */
export const isFenced = (error: unknown): boolean =>
  error instanceof KafkaError &&
  (error.protocolError === "PRODUCER_FENCED" || error.protocolError === "INVALID_PRODUCER_EPOCH" ||
    /\bfenced\b/i.test(error.message))

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Makes a producer that lives as long as the scope. Fails only on bad options
 * (`CircuitBreakerOptionsError` naming the option); an unreachable cluster
 * shows in the breaker, not here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<KafkaProducer["Service"], KafkaError | CircuitBreakerOptionsError, Scope.Scope> = Effect.fnUntraced(
  function*(options: Options) {
    const settings = validate(options)
    if (settings instanceof Error) return yield* settings
    const runLog = Effect.runSyncWith(yield* Effect.context<never>())
    const kafka = makeKafka(options, settings, runLog)
    const { breaker, guard } = yield* makeGuardedClient(options, settings, kafka)
    const producer = yield* makeProducer(kafka, settings, guard)
    const transactional = makeTransactional({
      kafka,
      settings,
      guard,
      circuit: breaker.name,
      isClosed: producer.isClosed
    })
    // The start check: connect in the background, through the breaker (an unreachable cluster is counted).
    if (settings.eagerConnect) {
      yield* Effect.forkScoped(Effect.ignore(guard("connect", producer.connect, undefined, { retry: false })))
    }
    return KafkaProducer.of({
      send: (record) => producer.sendBatch({ topicMessages: [record] }),
      sendBatch: producer.sendBatch,
      transactional,
      breaker
    })
  }
)

const layers = GuardedClient.layers(KafkaProducer, make)

/**
 * Provides `KafkaProducer`. The breaker registers in a
 * `Registry.Registry` when one is in the context (so metrics and
 * `/health` see it).
 *
 * **Example**
 *
 * ```ts
 * import { KafkaProducer } from "@neural-hive/kafka"
 *
 * const KafkaLive = KafkaProducer.layer({
 *   brokers: ["127.0.0.1:9092"],
 *   breaker: { failMax: 5, recoveryTimeout: "30 seconds", maxOpenDuration: "60 seconds" },
 *   sendTimeout: "10 seconds"
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options: Options) => Layer.Layer<KafkaProducer, KafkaError | CircuitBreakerOptionsError> =
  layers.layer

/**
 * Provides `KafkaProducer` from `Config`: pass a `Config` per option, or
 * `KafkaProducer.config` to read the `KAFKA_*` environment variables.
 *
 * **Example**
 *
 * ```ts
 * import { Config, Schema } from "effect"
 * import { KafkaProducer } from "@neural-hive/kafka"
 *
 * const KafkaLive = KafkaProducer.layerConfig({
 *   brokers: Config.Array(Schema.String, "KAFKA_BROKERS"),
 *   sendTimeout: Config.Duration("KAFKA_SEND_TIMEOUT").pipe(Config.withDefault("10 seconds"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  options: Config.Wrap<Options>
) => Layer.Layer<KafkaProducer, KafkaError | CircuitBreakerOptionsError | Config.ConfigError> = layers.layerConfig

/**
 * Options from the environment: `KAFKA_BROKERS` (comma separated, required),
 * `KAFKA_CLIENT_ID`, `KAFKA_SEND_TIMEOUT`, `KAFKA_REQUEST_TIMEOUT`,
 * `KAFKA_CONNECTION_TIMEOUT`, `KAFKA_SSL`, and SASL when `KAFKA_SASL_USERNAME`
 * is set (`KAFKA_SASL_MECHANISM`, default `plain`; `KAFKA_SASL_PASSWORD`,
 * read as `Redacted`).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  brokers: Config.Array(Schema.String, "KAFKA_BROKERS"),
  clientId: optional(Config.String("KAFKA_CLIENT_ID")),
  sendTimeout: optional(Config.Duration("KAFKA_SEND_TIMEOUT")),
  requestTimeout: optional(Config.Duration("KAFKA_REQUEST_TIMEOUT")),
  connectionTimeout: optional(Config.Duration("KAFKA_CONNECTION_TIMEOUT")),
  ssl: optional(Config.Boolean("KAFKA_SSL")),
  sasl: Config.all({
    username: Config.option(Config.String("KAFKA_SASL_USERNAME")),
    mechanism: Config.Literals(["plain", "scram-sha-256", "scram-sha-512"], "KAFKA_SASL_MECHANISM").pipe(
      Config.withDefault("plain" as const)
    ),
    password: Config.option(Config.Redacted("KAFKA_SASL_PASSWORD"))
  }).pipe(Config.map(({ mechanism, password, username }): Sasl | undefined =>
    Option.isNone(username) ? undefined : {
      mechanism,
      username: username.value,
      password: Option.getOrElse(password, () => Redacted.make(""))
    }
  ))
})

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

function optional<A>(self: Config.Config<A>): Config.Config<A | undefined> {
  return Config.withDefault(self, undefined)
}
