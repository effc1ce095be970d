/**
 * A Kafka producer (kafkajs) whose every send goes through the
 * `kafka_producer` circuit breaker: the seed's "protects publishing execution
 * tickets".
 *
 * - Fail-fast: while the breaker is open a send fails at once with
 *   `CircuitBreakerError`, without touching the network.
 * - Only broker trouble counts (connection, timeout, leader/replica
 *   unavailable); caller errors (message too large, invalid topic, a value
 *   that cannot be serialized) come back as `KafkaError` and never move the
 *   breaker. See `KafkaError.ts` for the table.
 * - Bounded: kafkajs retries `retries` times (default 0) with the connection
 *   and request timeouts given here, so one send is one outcome for the
 *   breaker; `sendTimeout` (the breaker's `callTimeout`) ends a call that hangs
 *   anyway.
 * - The layer builds even when Kafka is down: the producer connects in the
 *   background and again, inside the breaker, on the first send after a
 *   failure. Closing the scope disconnects, within `disconnectTimeout`.
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
import { CircuitBreaker } from "@neural-hive/resilience"
import type { CircuitBreakerError, CircuitBreakerOptionsError } from "@neural-hive/resilience"
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
import { CompressionTypes, Kafka, logLevel as KafkaLogLevel, Partitioners } from "kafkajs"
import type * as KafkaJS from "kafkajs"
import { fromCause, isBrokerFailure, KafkaError, scrub } from "./KafkaError.ts"

export {
  /**
   * @since 0.1.0
   */
  classify,
  /**
   * @since 0.1.0
   */
  isBrokerFailure,
  /**
   * @since 0.1.0
   */
  KafkaError
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
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `host:port` of one or more brokers (bootstrap). */
  readonly brokers: ReadonlyArray<string>
  /** Default `"neural-hive"`. */
  readonly clientId?: string | undefined
  /** Breaker options; `name` defaults to `"kafka_producer"`, `isFailure` to `isBrokerFailure`. */
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
  readonly ssl?: boolean | undefined
  readonly sasl?: Sasl | undefined
  /** Connect when the layer is built, in the background and through the breaker. Default true. */
  readonly eagerConnect?: boolean | undefined
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
  /** The `kafka_producer` breaker (state, snapshot, manual control). */
  readonly breaker: CircuitBreaker.CircuitBreaker
}>()("@neural-hive/kafka/KafkaProducer") {}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Makes a producer that lives as long as the scope. Fails only on bad
 * options; an unreachable cluster shows in the breaker, not here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<KafkaProducer["Service"], KafkaError | CircuitBreakerOptionsError, Scope.Scope> = Effect.fnUntraced(
  function*(options: Options) {
    const settings = validate(options)
    if (settings instanceof KafkaError) return yield* settings
    const { secrets } = settings

    const context = yield* Effect.context<never>()
    const runLog = Effect.runSyncWith(context)
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
      ...(settings.ssl ? { ssl: true } : {}),
      ...(options.sasl === undefined ? {} : {
        sasl: {
          mechanism: options.sasl.mechanism,
          username: options.sasl.username,
          password: Redacted.value(options.sasl.password)
        } as KafkaJS.SASLOptions
      })
    })

    const breaker = yield* CircuitBreaker.make({
      ...options.breaker,
      name: options.breaker?.name ?? "kafka_producer",
      callTimeout: settings.sendTimeoutMillis ?? options.breaker?.callTimeout ?? DEFAULT_SEND_TIMEOUT,
      isFailure: options.breaker?.isFailure ?? isBrokerFailure
    })

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

    const sendBatch = (batch: ProducerBatch): Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError())
        const prepared = prepare(batch)
        if (prepared instanceof KafkaError) return Effect.fail(prepared)
        if (prepared.length === 0) return Effect.succeed([])
        // One client span per send: the breaker (with Tracing.layer) annotates it with its name, state and result.
        return breaker.protect(publish(prepared)).pipe(
          // sendTimeout is the breaker's callTimeout: a send that ran past it is a counted KafkaError Timeout.
          Effect.catchTag("CircuitBreakerTimeoutError", (e) =>
            Effect.fail(
              new KafkaError({
                reason: "Timeout",
                message: e.message,
                brokerFailure: true,
                retriable: true,
                retries: 0
              })
            )),
          Effect.withSpan("KafkaProducer.send", {
            kind: "producer",
            attributes: {
              "messaging.system": "kafka",
              "messaging.batch.topics": prepared.map((t) => t.topic).join(",")
            }
          })
        )
      })

    if (settings.eagerConnect) yield* Effect.forkScoped(Effect.ignore(breaker.protect(connect)))

    return KafkaProducer.of({
      send: (record) => sendBatch({ topicMessages: [record] }),
      sendBatch,
      breaker
    })
  }
)

/**
 * Provides `KafkaProducer`. The breaker registers in a
 * `CircuitBreaker.Registry` when one is in the context (so metrics and
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
export const layer = (options: Options): Layer.Layer<KafkaProducer, KafkaError | CircuitBreakerOptionsError> =>
  Layer.effect(KafkaProducer, make(options))

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
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<KafkaProducer, KafkaError | CircuitBreakerOptionsError | Config.ConfigError> =>
  Layer.effect(KafkaProducer, Config.unwrap(options).pipe(Effect.flatMap(make)))

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

const DEFAULT_SEND_TIMEOUT = 10_000

const closedError = () =>
  new KafkaError({
    reason: "Closed",
    message: "the Kafka producer is closed (its scope ended)",
    brokerFailure: false,
    retriable: false,
    retries: 0
  })

interface Settings {
  readonly clientId: string
  readonly brokers: ReadonlyArray<string>
  readonly connectionTimeoutMillis: number
  readonly requestTimeoutMillis: number
  readonly ackTimeoutMillis: number
  readonly sendTimeoutMillis: number | undefined
  readonly disconnectTimeoutMillis: number
  readonly retries: number
  readonly acks: -1 | 0 | 1
  readonly idempotent: boolean
  readonly allowAutoTopicCreation: boolean
  readonly compression: CompressionTypes
  readonly ssl: boolean
  readonly eagerConnect: boolean
  readonly logLevel: KafkaLogLevel
  readonly secrets: ReadonlyArray<string>
}

const BROKER = /^(?:\[[0-9a-fA-F:.]+\]|[^\s:/@]+):(\d{1,5})$/

const LOG_LEVELS: Record<NonNullable<Options["logLevel"]>, KafkaLogLevel> = {
  None: KafkaLogLevel.NOTHING,
  Error: KafkaLogLevel.ERROR,
  Warn: KafkaLogLevel.WARN,
  Info: KafkaLogLevel.INFO,
  Debug: KafkaLogLevel.DEBUG
}

const invalid = (option: string, value: unknown, expected: string): KafkaError =>
  new KafkaError({
    reason: "InvalidOptions",
    message: `kafka producer: option ${option} is ${
      option === "sasl.password" ? "<redacted>" : describeValue(value)
    }, expected ${expected}`,
    brokerFailure: false,
    retriable: false,
    retries: 0
  })

const describeValue = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

const millis = (
  option: string,
  value: Duration.Input | undefined,
  fallback: number
): number | KafkaError => {
  if (value === undefined) return fallback
  const decoded = Duration.fromInput(value)
  const ms = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
  return Number.isFinite(ms) && ms >= 1 && ms <= 2_147_483_647
    ? Math.round(ms)
    : invalid(option, value, "a finite duration of at least 1 millisecond (e.g. \"5 seconds\")")
}

/** Checks options; returns the first problem found. */
const validate = (options: Options): Settings | KafkaError => {
  const brokers = options?.brokers
  if (!Array.isArray(brokers) || brokers.length === 0) {
    return invalid("brokers", brokers, "a non-empty list of host:port")
  }
  for (const broker of brokers) {
    const match = typeof broker === "string" ? BROKER.exec(broker.trim()) : null
    const port = match === null ? NaN : Number(match[1])
    if (!(port >= 1 && port <= 65_535)) return invalid("brokers", broker, "host:port entries")
  }
  const clientId = options.clientId ?? "neural-hive"
  if (typeof clientId !== "string" || clientId.length === 0) {
    return invalid("clientId", clientId, "a non-empty string")
  }
  const connectionTimeoutMillis = millis("connectionTimeout", options.connectionTimeout, 3_000)
  if (connectionTimeoutMillis instanceof KafkaError) return connectionTimeoutMillis
  const requestTimeoutMillis = millis("requestTimeout", options.requestTimeout, 5_000)
  if (requestTimeoutMillis instanceof KafkaError) return requestTimeoutMillis
  const ackTimeoutMillis = millis(
    "ackTimeout",
    options.ackTimeout,
    Math.max(1, Math.floor(requestTimeoutMillis * 0.8))
  )
  if (ackTimeoutMillis instanceof KafkaError) return ackTimeoutMillis
  const sendTimeoutMillis = options.sendTimeout === undefined
    ? undefined
    : millis("sendTimeout", options.sendTimeout, DEFAULT_SEND_TIMEOUT)
  if (sendTimeoutMillis instanceof KafkaError) return sendTimeoutMillis
  const disconnectTimeoutMillis = millis("disconnectTimeout", options.disconnectTimeout, 5_000)
  if (disconnectTimeoutMillis instanceof KafkaError) return disconnectTimeoutMillis
  const idempotent = options.idempotent ?? false
  if (typeof idempotent !== "boolean") return invalid("idempotent", idempotent, "true or false")
  const retries = options.retries ?? (idempotent ? 1 : 0)
  if (!Number.isSafeInteger(retries) || retries < 0 || retries > 10) {
    return invalid("retries", retries, "an integer between 0 and 10")
  }
  const acks = options.acks ?? -1
  if (acks !== -1 && acks !== 0 && acks !== 1) return invalid("acks", acks, "-1, 0 or 1")
  if (idempotent && retries < 1) return invalid("retries", retries, "at least 1 with idempotent: true")
  if (idempotent && acks !== -1) return invalid("acks", acks, "-1 with idempotent: true")
  const compression = options.compression ?? "none"
  if (compression !== "none" && compression !== "gzip") {
    return invalid("compression", compression, `"none" or "gzip"`)
  }
  const level = options.logLevel ?? "Warn"
  if (!Object.hasOwn(LOG_LEVELS, level)) return invalid("logLevel", level, `"None", "Error", "Warn", "Info" or "Debug"`)
  const secrets: Array<string> = []
  if (options.sasl !== undefined) {
    const { mechanism, password, username } = options.sasl
    if (mechanism !== "plain" && mechanism !== "scram-sha-256" && mechanism !== "scram-sha-512") {
      return invalid("sasl.mechanism", mechanism, `"plain", "scram-sha-256" or "scram-sha-512"`)
    }
    if (typeof username !== "string" || username.length === 0) {
      return invalid("sasl.username", username, "a non-empty string")
    }
    if (!Redacted.isRedacted(password)) return invalid("sasl.password", password, "a Redacted string")
    const secret = Redacted.value(password)
    if (typeof secret !== "string" || secret.length === 0) {
      return invalid("sasl.password", password, "a non-empty Redacted string")
    }
    secrets.push(secret)
  }
  return {
    clientId,
    brokers: brokers.map((broker) => broker.trim()),
    connectionTimeoutMillis,
    requestTimeoutMillis,
    ackTimeoutMillis,
    sendTimeoutMillis,
    disconnectTimeoutMillis,
    retries,
    acks,
    idempotent,
    allowAutoTopicCreation: options.allowAutoTopicCreation ?? true,
    compression: compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
    ssl: options.ssl ?? false,
    eagerConnect: options.eagerConnect ?? true,
    logLevel: LOG_LEVELS[level],
    secrets
  }
}

// --- messages ----------------------------------------------------------------

// Kafka's own rule for topic names (org.apache.kafka.common.internals.Topic).
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/

const callerError = (reason: "Serialization" | "InvalidTopic", message: string, cause?: unknown): KafkaError =>
  new KafkaError({ reason, message, brokerFailure: false, retriable: false, retries: 0, cause })

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const encodeValue = (value: unknown, where: string): Buffer | string | null | KafkaError => {
  if (value === null || typeof value === "string") return value
  if (value instanceof Uint8Array) return toBuffer(value)
  if (value === undefined) return callerError("Serialization", `${where}: no value (use null for a tombstone)`)
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch (cause) {
    // The message names the place, never the value: it may hold personal data.
    return callerError(
      "Serialization",
      `${where}: the value cannot be JSON-encoded (${cause instanceof Error ? cause.message : "error"})`,
      cause
    )
  }
  return json === undefined
    ? callerError("Serialization", `${where}: a ${typeof value} value cannot be JSON-encoded`)
    : json
}

const encodeHeaders = (
  headers: NonNullable<Message["headers"]>,
  where: string
): KafkaJS.IHeaders | KafkaError => {
  if (typeof headers !== "object" || headers === null) {
    return callerError("Serialization", `${where}: headers must be an object`)
  }
  const out: KafkaJS.IHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || typeof value === "string") out[name] = value
    else if (value instanceof Uint8Array) out[name] = toBuffer(value)
    else if (Array.isArray(value) && value.every((v) => typeof v === "string" || v instanceof Uint8Array)) {
      out[name] = value.map((v) => (typeof v === "string" ? v : toBuffer(v)))
    } else {
      return callerError("Serialization", `${where}: header "${name}" must be a string, bytes or a list of them`)
    }
  }
  return out
}

const encodeMessage = (message: Message, where: string): KafkaJS.Message | KafkaError => {
  if (typeof message !== "object" || message === null) {
    return callerError("Serialization", `${where}: not a message object`)
  }
  const value = encodeValue(message.value, where)
  if (value instanceof KafkaError) return value
  const out: KafkaJS.Message = { value }
  const key = message.key
  if (key !== undefined) {
    if (key === null || typeof key === "string") out.key = key
    else if (key instanceof Uint8Array) out.key = toBuffer(key)
    else return callerError("Serialization", `${where}: the key must be a string, bytes or null`)
  }
  if (message.headers !== undefined) {
    const headers = encodeHeaders(message.headers, where)
    if (headers instanceof KafkaError) return headers
    out.headers = headers
  }
  if (message.partition !== undefined) {
    if (!Number.isSafeInteger(message.partition) || message.partition < 0) {
      return callerError("Serialization", `${where}: partition must be an integer >= 0`)
    }
    out.partition = message.partition
  }
  if (message.timestamp !== undefined) {
    if (typeof message.timestamp !== "string" || !/^\d+$/.test(message.timestamp)) {
      return callerError("Serialization", `${where}: timestamp must be milliseconds as a string of digits`)
    }
    out.timestamp = message.timestamp
  }
  return out
}

/** Validates and encodes a batch before it reaches the breaker: caller errors never count. */
const prepare = (batch: ProducerBatch): Array<KafkaJS.TopicMessages> | KafkaError => {
  const records = batch?.topicMessages
  if (!Array.isArray(records)) return callerError("Serialization", "topicMessages must be an array")
  const out: Array<KafkaJS.TopicMessages> = []
  for (const record of records as ReadonlyArray<ProducerRecord>) {
    const topic = record?.topic
    if (typeof topic !== "string" || !TOPIC.test(topic) || topic === "." || topic === "..") {
      return callerError(
        "InvalidTopic",
        `invalid topic name ${describeValue(topic)}: 1-249 of [a-zA-Z0-9._-], not "." or ".."`
      )
    }
    if (!Array.isArray(record.messages)) {
      return callerError("Serialization", `topic "${topic}": messages must be an array`)
    }
    if (record.messages.length === 0) continue
    const messages: Array<KafkaJS.Message> = []
    for (let i = 0; i < record.messages.length; i++) {
      const encoded = encodeMessage(record.messages[i]!, `topic "${topic}", message ${i}`)
      if (encoded instanceof KafkaError) return encoded
      messages.push(encoded)
    }
    out.push({ topic, messages })
  }
  return out
}

// --- logs --------------------------------------------------------------------

const SEVERITY: Record<number, "Error" | "Warn" | "Info" | "Debug"> = {
  [KafkaLogLevel.ERROR]: "Error",
  [KafkaLogLevel.WARN]: "Warn",
  [KafkaLogLevel.INFO]: "Info",
  [KafkaLogLevel.DEBUG]: "Debug"
}

// Fields of a kafkajs log entry worth keeping; `stack` and request payloads are dropped.
const LOG_FIELDS = ["broker", "clientId", "error", "retryCount", "retryTime", "topic"] as const

/** Routes kafkajs's log lines to Effect's logger, annotated, with secrets removed. */
const makeLogCreator =
  (runLog: (effect: Effect.Effect<void>) => void, secrets: ReadonlyArray<string>): KafkaJS.logCreator =>
  () =>
  (entry) => {
    const severity = SEVERITY[entry.level]
    if (severity === undefined) return
    const annotations: Record<string, unknown> = { kafkajs: entry.namespace }
    for (const field of LOG_FIELDS) {
      const value: unknown = entry.log[field]
      if (typeof value === "string") annotations[`kafkajs.${field}`] = scrub(value, secrets)
      else if (typeof value === "number" || typeof value === "boolean") annotations[`kafkajs.${field}`] = value
    }
    try {
      runLog(
        Effect.logWithLevel(severity)(scrub(String(entry.log.message), secrets)).pipe(
          Effect.annotateLogs(annotations)
        )
      )
    } catch {
      // a failing logger must not break the client
    }
  }
