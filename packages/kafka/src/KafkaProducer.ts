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
import type { CircuitBreakerError } from "@neural-hive/resilience"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Kafka, Partitioners } from "kafkajs"
import type * as KafkaJS from "kafkajs"
import { prepare } from "./internal/encode.ts"
import { makeLogCreator } from "./internal/logs.ts"
import { DEFAULT_SEND_TIMEOUT, validate } from "./internal/options.ts"
import { quietRequestQueue } from "./internal/requestQueue.ts"
import { fromCause, isFailure, KafkaError } from "./KafkaError.ts"

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
    const { secrets } = settings

    const context = yield* Effect.context<never>()
    const runLog = Effect.runSyncWith(context)
    // kafkajs 2.2.4 polls every 1 ms with a negative timeout while idle (TimeoutNegativeWarning): see the module.
    quietRequestQueue()
    const kafka = new Kafka({
      clientId: settings.clientId,
      brokers: [...settings.brokers],
      connectionTimeout: settings.connectionTimeoutMillis,
      authenticationTimeout: settings.requestTimeoutMillis,
      requestTimeout: settings.requestTimeoutMillis,
      enforceRequestTimeout: true,
      retry: { retries: settings.retries, initialRetryTime: 100, maxRetryTime: 1_000 },
      logLevel: settings.logLevel,
      logCreator: makeLogCreator(runLog, secrets),
      ...(settings.ssl === false ? {} : { ssl: settings.ssl }),
      ...(options.sasl === undefined ? {} : {
        sasl: {
          mechanism: options.sasl.mechanism,
          username: options.sasl.username,
          password: Redacted.value(options.sasl.password)
        } as KafkaJS.SASLOptions
      })
    })

    // Every call goes through the guarded client: the probe as a `call` on its admin client (made per probe,
    // closed with the scope and when the breaker opens), the sends and the transaction steps as `guard`ed
    // effects (the producer connects once and stays connected; sendTimeout, the breaker's callTimeout, is
    // their only bound, a call past it a counted KafkaError Timeout).
    const probeTopic = typeof options.probe === "object" ? options.probe.topic : undefined
    const guardedClient = yield* GuardedClient.make<KafkaJS.Admin, KafkaError>({
      breaker: {
        ...options.breaker,
        name: options.breaker?.name ?? "kafka_producer",
        callTimeout: settings.sendTimeoutMillis ?? options.breaker?.callTimeout ?? DEFAULT_SEND_TIMEOUT,
        isFailure: options.breaker?.isFailure ?? isFailure
      },
      connect: () => kafka.admin(),
      close: (admin) => admin.disconnect(),
      closeTimeout: settings.disconnectTimeoutMillis,
      deadline: settings.connectionTimeoutMillis + settings.requestTimeoutMillis,
      onError: (_, cause) => fromCause(cause, secrets),
      onTimeout: (operation, _, backstop) =>
        new KafkaError({
          reason: "Timeout",
          message: backstop?.message ??
            `kafka ${operation}: no answer within ${
              settings.connectionTimeoutMillis + settings.requestTimeoutMillis
            } ms`,
          brokerFailure: true,
          retriable: true,
          retries: 0
        }),
      // One producer span per call; a send's detail is its topics.
      span: {
        prefix: "KafkaProducer",
        kind: "producer",
        attributes: (topics) =>
          topics === undefined
            ? { "messaging.system": "kafka" }
            : { "messaging.system": "kafka", "messaging.batch.topics": topics }
      },
      probe: options.probe === false ?
        false :
        (admin) =>
          admin.connect().then((): Promise<unknown> =>
            probeTopic === undefined ? admin.describeCluster() : admin.fetchTopicMetadata({ topics: [probeTopic] })
          ).finally(() => admin.disconnect()),
      // The eager connect below is Kafka's start check.
      checkOnStart: false
    })
    const { breaker, guard } = guardedClient

    // false until a connect succeeds, and again after a failure that was not the caller's:
    // the next send then (re)connects first, inside the breaker.
    let ready = false
    let closed = false

    const producer = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          kafka.producer({
            createPartitioner: Partitioners.DefaultPartitioner,
            allowAutoTopicCreation: settings.allowAutoTopicCreation,
            idempotent: settings.idempotent,
            retry: { retries: settings.retries, initialRetryTime: 100, maxRetryTime: 1_000 },
            ...(settings.idempotent ? { maxInFlightRequests: 1 } : {})
          }),
        catch: (cause) => fromCause(cause, secrets)
      }),
      (producer) =>
        Effect.suspend(() => {
          closed = true
          return Effect.tryPromise({ try: () => producer.disconnect(), catch: (cause) => fromCause(cause, secrets) })
        }).pipe(
          Effect.timeoutOrElse({
            duration: settings.disconnectTimeoutMillis,
            orElse: () =>
              Effect.logWarning(`kafka producer did not disconnect within ${settings.disconnectTimeoutMillis} ms`)
          }),
          Effect.ignore({ log: "Warn", message: "kafka producer disconnect failed" })
        )
    )

    const notReadyAfter = <A>(exit: Exit.Exit<A, KafkaError>) =>
      Effect.sync(() => {
        if (exit._tag === "Success") return
        for (const reason of exit.cause.reasons) {
          if (reason._tag !== "Fail" || reason.error.brokerFailure) ready = false
        }
      })

    // One connection attempt at a time: the eager connect and the first sends share it. Two concurrent
    // producer.connect() calls race in kafkajs (an idempotent producer's initProducerId runs twice and a
    // send releases a broker lock it never took).
    let connecting: Promise<void> | undefined
    const ensureConnected = (): Promise<void> => {
      if (ready) return Promise.resolve()
      connecting ??= producer.connect().then(
        () => {
          ready = true
          connecting = undefined
        },
        (error: unknown) => {
          connecting = undefined
          throw error
        }
      )
      return connecting
    }

    const connect = Effect.tryPromise({
      try: ensureConnected,
      catch: (cause) => fromCause(cause, secrets)
    }).pipe(Effect.onExit(notReadyAfter))

    const publish = (topicMessages: Array<KafkaJS.TopicMessages>) =>
      Effect.tryPromise({
        try: async () => {
          await ensureConnected()
          return producer.sendBatch({
            topicMessages,
            acks: settings.acks,
            timeout: settings.ackTimeoutMillis,
            compression: settings.compression
          })
        },
        catch: (cause) => fromCause(cause, secrets)
      }).pipe(Effect.onExit(notReadyAfter))

    // A transactional relay's progress read: on its admin connection, so a timeout leaves the producer as it was.
    const readStep = <A>(operation: string, run: () => Promise<A>) =>
      guard(operation, Effect.tryPromise({ try: run, catch: (cause) => fromCause(cause, secrets) }))

    const sendBatch = (batch: ProducerBatch): Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError())
        const prepared = prepare(batch)
        if (prepared instanceof KafkaError) return Effect.fail(prepared)
        if (prepared.length === 0) return Effect.succeed([])
        // One producer span per send, KafkaProducer.send: the breaker (with Tracing.layer) annotates it.
        return guard("send", publish(prepared), prepared.map((t) => t.topic).join(","))
      })

    const transactional = (
      transactionalId: string,
      txOptions?: TransactionalOptions
    ): Effect.Effect<TransactionalProducer, CircuitBreakerOptionsError, Scope.Scope> =>
      Effect.gen(function*() {
        const circuit = options.breaker?.name ?? "kafka_producer"
        if (
          typeof transactionalId !== "string" || transactionalId.trim() === "" || transactionalId.length > 200 ||
          [...transactionalId].some((c) => c.charCodeAt(0) < 0x20)
        ) {
          return yield* new CircuitBreakerOptionsError({
            circuit,
            option: "transactionalId",
            value: transactionalId,
            expected: "a non-empty string of at most 200 characters without control characters, stable per relay"
          })
        }
        const transactionTimeoutMillis = yield* CircuitBreaker.durationOption(
          circuit,
          "transactionTimeout",
          txOptions?.transactionTimeout,
          60_000
        )
        // The kafkajs producer in use; `stale` when the last call's outcome is not known (or it never
        // connected): the next call makes a new one first, whose InitProducerId settles the old one's.
        let current: KafkaJS.Producer | undefined
        let stale = true
        // The progress reads' admin connection, kept between reads (two requests a read instead of four).
        let admin: KafkaJS.Admin | undefined
        yield* Effect.addFinalizer(() =>
          Effect.promise(async () => {
            const producer = current
            const reader = admin
            current = undefined
            admin = undefined
            await Promise.all([
              producer?.disconnect().catch(() => undefined),
              reader?.disconnect().catch(() => undefined)
            ])
          }).pipe(Effect.timeoutOrElse({ duration: settings.disconnectTimeoutMillis, orElse: () => Effect.void }))
        )
        const attempt = <A>(run: () => Promise<A>): Effect.Effect<A, KafkaError> =>
          Effect.tryPromise({ try: run, catch: (cause) => fromCause(cause, secrets) }).pipe(
            // Interrupted (the breaker's callTimeout): the promise runs on, its outcome unknown.
            Effect.onInterrupt(() => Effect.sync(() => void (stale = true)))
          )
        // Each Kafka step is one breaker call, bounded by its callTimeout: a transaction is several.
        const step = <A>(operation: string, run: () => Promise<A>) => guard(`transaction.${operation}`, attempt(run))
        // Whether `admin` finished a connect: kafkajs's connect on a connected admin still costs a round trip.
        let adminConnected = false
        /**
         * A step on the admin connection that failed: the connection is dropped and the next read makes a new
         * one, except after a timeout. Then the request runs on and leaves the connections it made (to the
         * group's coordinator too) warm, so the next read needs fewer round trips: on a link slow enough that
         * a cold read does not fit in the `callTimeout`, dropping it would make every read cold.
         */
        const dropAdminOnFailure =
          (reader: KafkaJS.Admin) => <A>(effect: Effect.Effect<A, KafkaError | CircuitBreakerError>) =>
            Effect.tapError(effect, (error) =>
              error instanceof KafkaError && error.reason === "Timeout"
                ? Effect.void
                : Effect.sync(() => {
                  if (admin === reader) {
                    admin = undefined
                    adminConnected = false
                  }
                  void reader.disconnect().catch(() => undefined)
                }))
        /** The admin connection for progress reads, connected (no request when it already is). */
        const connectAdmin = (reader: KafkaJS.Admin): Promise<void> =>
          adminConnected && admin === reader ? Promise.resolve() : reader.connect().then(() => {
            if (admin === reader) adminConnected = true
          })

        /** A new producer, connected (two steps: the connection, then InitProducerId), unless the current one is fine. */
        const ready: Effect.Effect<KafkaJS.Producer, KafkaError | CircuitBreakerError> = Effect.suspend(() => {
          if (closed) return Effect.fail(closedError())
          if (!stale && current !== undefined) return Effect.succeed(current)
          return Effect.gen(function*() {
            retire(current)
            const producer = kafka.producer({
              createPartitioner: Partitioners.DefaultPartitioner,
              allowAutoTopicCreation: settings.allowAutoTopicCreation,
              transactionalId,
              transactionTimeout: transactionTimeoutMillis,
              // The transaction's own sends are idempotent whatever this says; true would add a second
              // (non-transactional) InitProducerId to connect.
              idempotent: false,
              maxInFlightRequests: 1,
              // Safe inside a transaction (its sends are idempotent), and InitProducerId needs a few while the
              // coordinator settles an older instance's transaction (CONCURRENT_TRANSACTIONS); the breaker's
              // callTimeout bounds them.
              retry: { retries: Math.max(5, settings.retries), initialRetryTime: 100, maxRetryTime: 1_000 }
            })
            current = producer
            // The progress reads' admin connects in the same step: after a restart or an unknown outcome the
            // relay reads its progress next, and on a slow link one round of connection set-up is cheaper than two.
            const reader = admin ?? kafka.admin()
            admin = reader
            yield* step("connect", () => Promise.all([producer.connect(), connectAdmin(reader)])).pipe(
              dropAdminOnFailure(reader)
            )
            // kafkajs runs InitProducerId for the transactional id on the first transaction(), not on connect:
            // an empty transaction makes it happen now (its abort sends nothing, nothing was registered).
            yield* step("initProducerId", async () => {
              const transaction = await producer.transaction()
              await transaction.abort()
            })
            stale = false
            return producer
          })
        })

        const send = (batch: ProducerBatch, progress?: TransactionProgress) =>
          Effect.suspend(() => {
            if (closed) return Effect.fail(closedError())
            const prepared = prepare(batch)
            if (prepared instanceof KafkaError) return Effect.fail(prepared)
            return Effect.gen(function*() {
              const producer = yield* ready
              let transaction: KafkaJS.Transaction | undefined
              const sent = yield* Effect.exit(Effect.gen(function*() {
                const metadata = yield* step("sendBatch", async () => {
                  transaction = await producer.transaction()
                  return transaction.sendBatch({
                    topicMessages: prepared,
                    acks: -1,
                    timeout: settings.ackTimeoutMillis,
                    compression: settings.compression
                  })
                })
                if (progress !== undefined) {
                  // kafkajs sends each partition's `metadata` (TxnOffsetCommit), its types omit it.
                  const partition = { partition: progress.partition ?? 0, offset: "0", metadata: progress.metadata }
                  yield* step("sendOffsets", () =>
                    transaction!.sendOffsets({
                      consumerGroupId: progress.groupId,
                      topics: [{ topic: progress.topic, partitions: [partition] }]
                    }))
                }
                return metadata
              }))
              if (sent._tag === "Failure") {
                // Not committed: abort (through the breaker too); if that fails, the next call's InitProducerId does.
                // No transaction began (the breaker refused the first step): nothing to undo.
                const open = transaction
                if (open === undefined) return yield* sent
                if (!open.isActive()) stale = true
                else {
                  const aborted = yield* Effect.exit(step("abort", () => open.abort()))
                  if (aborted._tag === "Failure") stale = true
                }
                return yield* sent
              }
              // A commit that fails or times out leaves the outcome unknown: the next call starts afresh.
              yield* step("commit", () => transaction!.commit()).pipe(
                Effect.tapError(() => Effect.sync(() => void (stale = true)))
              )
              return sent.value
            }).pipe(
              Effect.withSpan("KafkaProducer.transaction", {
                kind: "producer",
                attributes: {
                  "messaging.system": "kafka",
                  "messaging.batch.topics": prepared.map((t) => t.topic).join(",")
                }
              })
            )
          })

        const reset = Effect.suspend(() => {
          stale = true
          return Effect.asVoid(ready)
        }).pipe(Effect.withSpan("KafkaProducer.initTransactions", { attributes: { "messaging.system": "kafka" } }))

        const committedMetadata = (groupId: string, topic: string, partition = 0) =>
          Effect.gen(function*() {
            // Two steps, each within the callTimeout on a slow link: the connection (kept), then the read.
            const reader = admin ?? kafka.admin()
            admin = reader
            // Connected already by `ready` (then no request is sent); a failure drops the connection.
            yield* readStep("progress.connect", () => connectAdmin(reader)).pipe(dropAdminOnFailure(reader))
            const offsets = yield* readStep(
              "progress.fetchOffsets",
              () => reader.fetchOffsets({ groupId, topics: [topic] })
            ).pipe(
              dropAdminOnFailure(reader)
            )
            const found = offsets.find((t) => t.topic === topic)?.partitions.find((p) => p.partition === partition)
            return found === undefined || Number(found.offset) < 0 ? undefined : found.metadata ?? undefined
          })

        return { transactionalId, send, reset, committedMetadata } satisfies TransactionalProducer
      })

    if (settings.eagerConnect) yield* Effect.forkScoped(Effect.ignore(guard("connect", connect)))

    return KafkaProducer.of({
      send: (record) => sendBatch({ topicMessages: [record] }),
      sendBatch,
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

/** A transactional producer replaced by a new one: disconnected in the background, its outcome unneeded. */
const retire = (producer: KafkaJS.Producer | undefined) => {
  if (producer !== undefined) void producer.disconnect().catch(() => undefined)
}

const closedError = () =>
  new KafkaError({
    reason: "Closed",
    message: "the Kafka producer is closed (its scope ended)",
    brokerFailure: false,
    retriable: false,
    retries: 0
  })
