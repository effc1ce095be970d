/**
 * `KafkaProducer` options checked and resolved to the settings the producer
 * uses, or the first problem as a `CircuitBreakerOptionsError` naming the
 * option, the value and what is allowed.
 *
 * @internal
 */
import { CircuitBreakerOptionsError } from "@neural-hive/resilience"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { CompressionTypes, logLevel as KafkaLogLevel } from "kafkajs"
import type { Options } from "../KafkaProducer.ts"
import { resolveTls, type TlsSettings } from "./tls.ts"

/** The breaker's `callTimeout` when `sendTimeout` is not given. */
export const DEFAULT_SEND_TIMEOUT = 10_000

export interface Settings {
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
  readonly ssl: TlsSettings
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

// The one options error of every package; the circuit is the breaker's name, as in the breaker's own errors.
const invalidFor =
  (circuit: string) => (option: string, value: unknown, expected: string): CircuitBreakerOptionsError =>
    new CircuitBreakerOptionsError({
      circuit,
      option,
      value: option === "sasl.password" ? "<redacted>" : value,
      expected
    })

const millis = (
  invalid: Invalid,
  option: string,
  value: Duration.Input | undefined,
  fallback: number
): number | CircuitBreakerOptionsError => {
  if (value === undefined) return fallback
  const decoded = Duration.fromInput(value)
  const ms = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
  return Number.isFinite(ms) && ms >= 1 && ms <= 2_147_483_647
    ? Math.round(ms)
    : invalid(option, value, "a finite duration of at least 1 millisecond (e.g. \"5 seconds\")")
}

type Invalid = ReturnType<typeof invalidFor>

/** Checks options; returns the first problem found. */
export const validate = (options: Options): Settings | CircuitBreakerOptionsError => {
  const invalid = invalidFor(options?.breaker?.name ?? "kafka_producer")
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
  const connectionTimeoutMillis = millis(invalid, "connectionTimeout", options.connectionTimeout, 3_000)
  if (connectionTimeoutMillis instanceof CircuitBreakerOptionsError) return connectionTimeoutMillis
  const requestTimeoutMillis = millis(invalid, "requestTimeout", options.requestTimeout, 5_000)
  if (requestTimeoutMillis instanceof CircuitBreakerOptionsError) return requestTimeoutMillis
  const ackTimeoutMillis = millis(
    invalid,
    "ackTimeout",
    options.ackTimeout,
    Math.max(1, Math.floor(requestTimeoutMillis * 0.8))
  )
  if (ackTimeoutMillis instanceof CircuitBreakerOptionsError) return ackTimeoutMillis
  const sendTimeoutMillis = options.sendTimeout === undefined
    ? undefined
    : millis(invalid, "sendTimeout", options.sendTimeout, DEFAULT_SEND_TIMEOUT)
  if (sendTimeoutMillis instanceof CircuitBreakerOptionsError) return sendTimeoutMillis
  const disconnectTimeoutMillis = millis(invalid, "disconnectTimeout", options.disconnectTimeout, 5_000)
  if (disconnectTimeoutMillis instanceof CircuitBreakerOptionsError) return disconnectTimeoutMillis
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
  const ssl = resolveTls(options.ssl)
  if (Array.isArray(ssl)) return invalid(...(ssl as [string, unknown, string]))
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
    ssl: ssl as TlsSettings,
    eagerConnect: options.eagerConnect ?? true,
    logLevel: LOG_LEVELS[level],
    secrets
  }
}
