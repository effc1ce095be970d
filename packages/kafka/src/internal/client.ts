/**
 * The producer's first two phases: the kafkajs client made from the checked
 * settings, and the guarded client every call goes through (the breaker, the
 * probe on a short-lived admin connection, the `guard` of the sends and the
 * transaction steps, their spans and their timeout error).
 *
 * @internal
 */
import { type CircuitBreakerOptionsError, GuardedClient } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Kafka } from "kafkajs"
import type * as KafkaJS from "kafkajs"
import { fromCause, isFailure, KafkaError } from "../KafkaError.ts"
import type { Options } from "../KafkaProducer.ts"
import { makeLogCreator } from "./logs.ts"
import { DEFAULT_SEND_TIMEOUT, type Settings } from "./options.ts"
import { quietRequestQueue } from "./requestQueue.ts"

/** Runs a `guard`ed effect: the breaker, the `callTimeout` as a counted `Timeout`, a producer span. */
export type Guard = GuardedClient.GuardedClient<KafkaJS.Admin, KafkaError>["guard"]

/** The kafkajs client; its log lines go to Effect's logger (through `runLog`) without the secrets. */
export const makeKafka = (
  options: Options,
  settings: Settings,
  runLog: <A>(effect: Effect.Effect<A>) => A
): Kafka => {
  // kafkajs 2.2.4 polls every 1 ms with a negative timeout while idle (TimeoutNegativeWarning): see the module.
  quietRequestQueue()
  return new Kafka({
    clientId: settings.clientId,
    brokers: [...settings.brokers],
    connectionTimeout: settings.connectionTimeoutMillis,
    authenticationTimeout: settings.requestTimeoutMillis,
    requestTimeout: settings.requestTimeoutMillis,
    enforceRequestTimeout: true,
    retry: { retries: settings.retries, initialRetryTime: 100, maxRetryTime: 1_000 },
    logLevel: settings.logLevel,
    logCreator: makeLogCreator(runLog, settings.secrets),
    ...(settings.ssl === false ? {} : { ssl: settings.ssl }),
    ...(options.sasl === undefined ? {} : {
      sasl: {
        mechanism: options.sasl.mechanism,
        username: options.sasl.username,
        password: Redacted.value(options.sasl.password)
      } as KafkaJS.SASLOptions
    })
  })
}

/**
 * Every call goes through the guarded client: the probe as a `call` on its admin client (made per probe,
 * closed with the scope and when the breaker opens), the sends and the transaction steps as `guard`ed
 * effects (the producer connects once and stays connected; sendTimeout, the breaker's callTimeout, is
 * their only bound, a call past it a counted KafkaError Timeout).
 */
export const makeGuardedClient = (
  options: Options,
  settings: Settings,
  kafka: Kafka
): Effect.Effect<
  GuardedClient.GuardedClient<KafkaJS.Admin, KafkaError>,
  KafkaError | CircuitBreakerOptionsError,
  Scope.Scope
> => {
  const probeTopic = typeof options.probe === "object" ? options.probe.topic : undefined
  const probeDeadline = settings.connectionTimeoutMillis + settings.requestTimeoutMillis
  return GuardedClient.make<KafkaJS.Admin, KafkaError>({
    breaker: {
      ...options.breaker,
      name: options.breaker?.name ?? "kafka_producer",
      callTimeout: settings.sendTimeoutMillis ?? options.breaker?.callTimeout ?? DEFAULT_SEND_TIMEOUT,
      isFailure: options.breaker?.isFailure ?? isFailure
    },
    connect: () => kafka.admin(),
    close: (admin) => admin.disconnect(),
    closeTimeout: settings.disconnectTimeoutMillis,
    deadline: probeDeadline,
    onError: (_, cause) => fromCause(cause, settings.secrets),
    onTimeout: (operation, _, backstop) =>
      new KafkaError({
        reason: "Timeout",
        message: backstop?.message ?? `kafka ${operation}: no answer within ${probeDeadline} ms`,
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
    // The producer's eager connect is Kafka's start check.
    checkOnStart: false,
    policies: options.policies,
    // A retry follows only what Kafka marks retriable and the breaker counts: a broker that failed over, a
    // request that timed out; never a message too large or a missing authorization.
    isRetryable: (error) => error.retriable && (options.breaker?.isFailure ?? isFailure)(error)
  })
}

/** The error of a call after the producer's scope ended. */
export const closedError = (): KafkaError =>
  new KafkaError({
    reason: "Closed",
    message: "the Kafka producer is closed (its scope ended)",
    brokerFailure: false,
    retriable: false,
    retries: 0
  })
