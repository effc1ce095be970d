/**
 * The one error of `@neural-hive/kafka`, and the classifier that decides which
 * kafkajs failures count against the `kafka_producer` breaker. When in doubt,
 * count: only the failures known to be the caller's own (a message too large,
 * an invalid topic or record, a value that cannot be serialized) never do.
 *
 * kafkajs wraps the error that ended a call: `KafkaJSNumberOfRetriesExceeded`
 * when it ran out of retries, `KafkaJSNonRetriableError` when it gave up at
 * once. The classifier follows `cause` down to the error that happened and
 * decides on that one, by `name` and protocol `type` (not `instanceof`, so two
 * copies of kafkajs classify alike).
 *
 * | counted (`brokerFailure: true`) | reason |
 * |---|---|
 * | `KafkaJSConnectionError`, `KafkaJSConnectionClosedError`, `KafkaJSBrokerNotFound`, `KafkaJSNoBrokerAvailableError`, `NETWORK_EXCEPTION`, socket errors (`ECONNREFUSED`, `ECONNRESET`, ...) | `Connection` |
 * | `KafkaJSRequestTimeoutError`, `KafkaJSTimeout`, `KafkaJSLockTimeout`, `REQUEST_TIMED_OUT` | `Timeout` |
 * | `LEADER_NOT_AVAILABLE`, `NOT_LEADER_FOR_PARTITION`, `BROKER_NOT_AVAILABLE`, `REPLICA_NOT_AVAILABLE`, `NOT_ENOUGH_REPLICAS`, `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, `KAFKA_STORAGE_ERROR`, `NOT_CONTROLLER`, the coordinator errors, `KafkaJSMetadataNotLoaded`, any other protocol error Kafka marks retriable | `Broker` |
 * | `UNKNOWN_TOPIC_OR_PARTITION` (a broker that lost or has not loaded the topic; also a misspelt topic when auto-creation is off) | `UnknownTopic` |
 * | `TOPIC_AUTHORIZATION_FAILED`, `CLUSTER_AUTHORIZATION_FAILED`, `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, `GROUP_AUTHORIZATION_FAILED` | `Authorization` |
 * | `SASL_AUTHENTICATION_FAILED`, `KafkaJSSASLAuthenticationError`, `UNSUPPORTED_SASL_MECHANISM`, `ILLEGAL_SASL_STATE` | `Authentication` |
 * | `UNSUPPORTED_VERSION`, `KafkaJSServerDoesNotSupportApiKey`, `KafkaJSNotImplemented` | `Unsupported` |
 * | anything else (other protocol errors, kafkajs errors or errors this package does not know) | `Unknown` |
 *
 * | not counted (`brokerFailure: false`): the caller's | reason |
 * |---|---|
 * | `MESSAGE_TOO_LARGE`, `RECORD_LIST_TOO_LARGE` | `MessageTooLarge` |
 * | `INVALID_TOPIC_EXCEPTION`, kafkajs "Invalid topic", a topic name Kafka would refuse (checked before sending) | `InvalidTopic` |
 * | `INVALID_RECORD`, `CORRUPT_MESSAGE`, `INVALID_TIMESTAMP`, `INVALID_REQUIRED_ACKS`, `UNSUPPORTED_COMPRESSION_TYPE`, `UNSUPPORTED_FOR_MESSAGE_FORMAT`, `POLICY_VIOLATION`, `INVALID_REQUEST`, `INVALID_PARTITIONS`, kafkajs "Invalid message" | `InvalidRecord` |
 * | a value, key or header that cannot be encoded (checked before sending) | `Serialization` |
 * | a send after the producer's scope closed | `Closed` |
 *
 * A SASL or ACL mistake is the service's configuration, not one message: it fails every send, so it opens
 * the breaker like an outage would (and shows in `/health` and the alerts).
 *
 * @since 0.1.0
 */
import { redact } from "@neural-hive/resilience"
import * as Data from "effect/Data"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * What went wrong. `MessageTooLarge`, `InvalidTopic`, `InvalidRecord`,
 * `Serialization` and `Closed` are the caller's and never count against the
 * breaker; every other reason does. `InvalidOptions` is no longer produced:
 * bad options fail with `CircuitBreakerOptionsError`, as in every package
 * (kept in the union for code that matches on it).
 *
 * @since 0.1.0
 * @category models
 */
export type Reason =
  | "Connection"
  | "Timeout"
  | "Broker"
  | "MessageTooLarge"
  | "InvalidTopic"
  | "UnknownTopic"
  | "InvalidRecord"
  | "Serialization"
  | "Authorization"
  | "Authentication"
  | "Unsupported"
  | "Closed"
  | "InvalidOptions"
  | "Unknown"

/**
 * The verdict of `classify`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Classification {
  readonly reason: Reason
  /** The broker (or the network to it) is unhealthy: the failure counts against the breaker. */
  readonly brokerFailure: boolean
  /** The same call may succeed later without changing it. */
  readonly retriable: boolean
  /** How many times kafkajs retried before giving up (0: the request was attempted once at most). */
  readonly retries: number
  /** Kafka's protocol error type, e.g. `"MESSAGE_TOO_LARGE"`, when the broker answered with one. */
  readonly protocolError: string | undefined
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * A send (or the producer) failed. `reason` tells the cases apart;
 * `brokerFailure` says whether it counted against the breaker; `retries` says
 * how many times kafkajs re-sent before giving up, so a message reported as
 * failed may be in the topic at most `retries + 1` times (0 or 1 with the
 * default `retries: 0`). The message never holds a password.
 *
 * **Example** (Telling a caller error from an outage)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaProducer } from "@neural-hive/kafka"
 *
 * const publish = Effect.gen(function*() {
 *   const producer = yield* KafkaProducer.KafkaProducer
 *   return yield* producer.send({ topic: "execution-tickets", messages: [{ value: { ticketId: "t-1" } }] })
 * }).pipe(
 *   Effect.catchTag("KafkaError", (error) =>
 *     error.reason === "MessageTooLarge" ? Effect.succeed([]) : Effect.fail(error))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class KafkaError extends Data.TaggedError("KafkaError")<{
  readonly reason: Reason
  readonly message: string
  readonly brokerFailure: boolean
  readonly retriable: boolean
  readonly retries: number
  readonly protocolError?: string | undefined
  readonly cause?: unknown
}> {}

// -----------------------------------------------------------------------------
// classification
// -----------------------------------------------------------------------------

/**
 * The Kafka classifier, the `isFailure` of the `kafka_producer` breaker: true
 * unless `error` is known to be the caller's (see the table). Accepts a
 * `KafkaError` or a raw kafkajs error; an error it does not know counts. A
 * `CircuitBreakerError` rejection is false (it did not reach Kafka).
 *
 * **Example**
 *
 * ```ts
 * import kafkajs from "kafkajs" // a default import: kafkajs's error classes are not ESM named exports
 * import { KafkaProducer } from "@neural-hive/kafka"
 *
 * KafkaProducer.isFailure(new kafkajs.KafkaJSConnectionError("Connection error: connect ECONNREFUSED")) // true
 * KafkaProducer.isFailure(new Error("something new")) // true
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const isFailure = (error: unknown): boolean => {
  if (error instanceof KafkaError) return error.brokerFailure
  if (isRejection(error)) return false
  return classify(error).brokerFailure
}

/**
 * Classifies a failure of a kafkajs call (see the table in the module docs).
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (error: unknown): Classification => {
  let current = error
  let retries = 0
  for (let depth = 0; depth < MAX_CAUSE_DEPTH; depth++) {
    if (current instanceof KafkaError) {
      return {
        reason: current.reason,
        brokerFailure: current.brokerFailure,
        retriable: current.retriable,
        retries: Math.max(retries, current.retries),
        protocolError: current.protocolError
      }
    }
    const cause = wrapped(current)
    if (cause === undefined) break
    const retryCount = (current as { retryCount?: unknown }).retryCount
    if (typeof retryCount === "number" && Number.isSafeInteger(retryCount)) retries = Math.max(retries, retryCount)
    current = cause
  }
  return leaf(current, retries)
}

/**
 * Makes a `KafkaError` from whatever a kafkajs call threw. `secrets` (e.g. the
 * SASL password) are replaced by `***` in the message, on top of `redact`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCause = (cause: unknown, secrets: ReadonlyArray<string> = []): KafkaError => {
  const verdict = classify(cause)
  return new KafkaError({
    ...verdict,
    message: scrub(describe(cause), secrets),
    cause
  })
}

/**
 * Removes `secrets` and the credentials `redact` knows from a text.
 *
 * @since 0.1.0
 * @category redaction
 */
export const scrub = (text: string, secrets: ReadonlyArray<string> = []): string => {
  let out = text
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join("***")
  }
  return redact(out)
}

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

const MAX_CAUSE_DEPTH = 8

interface Verdict {
  readonly reason: Reason
  readonly brokerFailure: boolean
}

type CallerReason = "MessageTooLarge" | "InvalidTopic" | "InvalidRecord" | "Serialization" | "Closed"

const counted = (reason: Exclude<Reason, CallerReason | "InvalidOptions">): Verdict => ({ reason, brokerFailure: true })
const notCounted = (reason: CallerReason): Verdict => ({ reason, brokerFailure: false })

const BY_NAME: ReadonlyMap<string, Verdict> = new Map([
  ["KafkaJSConnectionError", counted("Connection")],
  ["KafkaJSConnectionClosedError", counted("Connection")],
  ["KafkaJSBrokerNotFound", counted("Connection")],
  ["KafkaJSNoBrokerAvailableError", counted("Connection")],
  ["KafkaJSRequestTimeoutError", counted("Timeout")],
  ["KafkaJSTimeout", counted("Timeout")],
  ["KafkaJSLockTimeout", counted("Timeout")],
  ["KafkaJSMetadataNotLoaded", counted("Broker")],
  ["KafkaJSTopicMetadataNotLoaded", counted("Broker")],
  ["KafkaJSStaleTopicMetadataAssignment", counted("Broker")],
  ["KafkaJSGroupCoordinatorNotFound", counted("Broker")],
  ["KafkaJSSASLAuthenticationError", counted("Authentication")],
  ["KafkaJSServerDoesNotSupportApiKey", counted("Unsupported")],
  ["KafkaJSNotImplemented", counted("Unsupported")]
])

// Protocol error types (kafkajs/src/protocol/error.js). Types not listed here
// count, as "Broker" when Kafka marks them retriable and as "Unknown" otherwise.
const BY_PROTOCOL_TYPE: ReadonlyMap<string, Verdict> = new Map([
  ["NETWORK_EXCEPTION", counted("Connection")],
  ["REQUEST_TIMED_OUT", counted("Timeout")],
  ["LEADER_NOT_AVAILABLE", counted("Broker")],
  ["NOT_LEADER_FOR_PARTITION", counted("Broker")],
  // kafkajs marks it non-retriable, but it says a broker is down
  ["BROKER_NOT_AVAILABLE", counted("Broker")],
  ["REPLICA_NOT_AVAILABLE", counted("Broker")],
  ["NOT_ENOUGH_REPLICAS", counted("Broker")],
  ["NOT_ENOUGH_REPLICAS_AFTER_APPEND", counted("Broker")],
  ["KAFKA_STORAGE_ERROR", counted("Broker")],
  ["NOT_CONTROLLER", counted("Broker")],
  ["GROUP_COORDINATOR_NOT_AVAILABLE", counted("Broker")],
  ["NOT_COORDINATOR_FOR_GROUP", counted("Broker")],
  ["GROUP_LOAD_IN_PROGRESS", counted("Broker")],
  ["MESSAGE_TOO_LARGE", notCounted("MessageTooLarge")],
  ["RECORD_LIST_TOO_LARGE", notCounted("MessageTooLarge")],
  ["INVALID_TOPIC_EXCEPTION", notCounted("InvalidTopic")],
  // A broker that should have the topic and does not is unhealthy; a misspelt one fails every send too
  ["UNKNOWN_TOPIC_OR_PARTITION", counted("UnknownTopic")],
  ["INVALID_RECORD", notCounted("InvalidRecord")],
  // Kafka marks it retriable, but it also means "null key on a compacted topic": the caller's
  ["CORRUPT_MESSAGE", notCounted("InvalidRecord")],
  ["INVALID_TIMESTAMP", notCounted("InvalidRecord")],
  ["INVALID_REQUIRED_ACKS", notCounted("InvalidRecord")],
  ["UNSUPPORTED_COMPRESSION_TYPE", notCounted("InvalidRecord")],
  ["UNSUPPORTED_FOR_MESSAGE_FORMAT", notCounted("InvalidRecord")],
  ["POLICY_VIOLATION", notCounted("InvalidRecord")],
  ["INVALID_REQUEST", notCounted("InvalidRecord")],
  ["INVALID_PARTITIONS", notCounted("InvalidRecord")],
  ["TOPIC_AUTHORIZATION_FAILED", counted("Authorization")],
  ["CLUSTER_AUTHORIZATION_FAILED", counted("Authorization")],
  ["TRANSACTIONAL_ID_AUTHORIZATION_FAILED", counted("Authorization")],
  ["GROUP_AUTHORIZATION_FAILED", counted("Authorization")],
  ["SASL_AUTHENTICATION_FAILED", counted("Authentication")],
  ["UNSUPPORTED_SASL_MECHANISM", counted("Authentication")],
  ["ILLEGAL_SASL_STATE", counted("Authentication")],
  ["UNSUPPORTED_VERSION", counted("Unsupported")]
])

// Socket errors that reach us unwrapped (e.g. from a custom socket factory).
const SOCKET_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN"
])

// kafkajs's own argument checks throw plain KafkaJSNonRetriableErrors; told apart by message.
const INVALID_TOPIC_MESSAGE = /^Invalid topic\b/
const INVALID_MESSAGES_MESSAGE = /^Invalid messages? /

// The breaker's own rejection never reached Kafka.
const isRejection = (u: unknown): boolean =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "CircuitBreakerError"

/** The error a kafkajs wrapper carries, or `undefined` when `error` is the one that happened. */
const wrapped = (error: unknown): unknown => {
  if (typeof error !== "object" || error === null) return undefined
  const cause = (error as { cause?: unknown }).cause
  if (cause === undefined || cause === null || cause === error) return undefined
  const name = (error as { name?: unknown }).name
  return name === "KafkaJSNumberOfRetriesExceeded" || name === "KafkaJSNonRetriableError" || name === "KafkaJSError"
    ? cause
    : undefined
}

const leaf = (error: unknown, retries: number): Classification => {
  const fields = typeof error === "object" && error !== null ? error as Record<string, unknown> : {}
  const name = typeof fields["name"] === "string" ? fields["name"] : undefined
  const type = typeof fields["type"] === "string" ? fields["type"] : undefined
  const flag = typeof fields["retriable"] === "boolean" ? fields["retriable"] : undefined
  const message = typeof fields["message"] === "string" ? fields["message"] : ""
  const code = typeof fields["code"] === "string" ? fields["code"] : undefined

  let verdict: Verdict | undefined = name === undefined ? undefined : BY_NAME.get(name)
  if (verdict === undefined && type !== undefined) {
    verdict = BY_PROTOCOL_TYPE.get(type) ?? (flag === true ? counted("Broker") : counted("Unknown"))
  }
  if (verdict === undefined && code !== undefined && SOCKET_CODES.has(code)) verdict = counted("Connection")
  if (verdict === undefined && name === "KafkaJSNonRetriableError") {
    if (INVALID_TOPIC_MESSAGE.test(message)) verdict = notCounted("InvalidTopic")
    else if (INVALID_MESSAGES_MESSAGE.test(message)) verdict = notCounted("InvalidRecord")
  }
  verdict ??= counted("Unknown")
  return {
    ...verdict,
    // Counting is not retrying: only outage-like reasons may succeed later unchanged.
    retriable: flag ?? (verdict.reason === "Connection" || verdict.reason === "Timeout" || verdict.reason === "Broker"),
    retries,
    protocolError: type
  }
}

const describe = (error: unknown): string => {
  let current = error
  for (let depth = 0; depth < MAX_CAUSE_DEPTH; depth++) {
    const cause = wrapped(current)
    if (cause === undefined) break
    current = cause
  }
  if (current instanceof Error) {
    return current.message === "" ? current.name : `${current.name}: ${current.message}`
  }
  return String(current)
}
