/**
 * The producer's plain (non-transactional) sends: one kafkajs producer for the
 * life of the scope, connected once (the eager connect and the first sends share
 * the attempt) and again after a failure that was not the caller's, each send
 * one `guard`ed call.
 *
 * @internal
 */
import type { CircuitBreakerError } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import { type Kafka, Partitioners } from "kafkajs"
import type * as KafkaJS from "kafkajs"
import { fromCause, KafkaError } from "../KafkaError.ts"
import type { ProducerBatch, RecordMetadata } from "../KafkaProducer.ts"
import { closedError, type Guard } from "./client.ts"
import { prepare } from "./encode.ts"
import type { Settings } from "./options.ts"

export interface Producer {
  /** Connects (or joins the connection attempt under way); not guarded: the caller guards it. */
  readonly connect: Effect.Effect<void, KafkaError>
  /** Sends messages to several topics in one guarded call. */
  readonly sendBatch: (batch: ProducerBatch) => Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError>
  /** Whether the scope ended (the transactional producers fail with `Closed` then too). */
  readonly isClosed: () => boolean
}

/** The plain producer for the life of the scope: disconnected when it closes, within `disconnectTimeout`. */
export const makeProducer = (
  kafka: Kafka,
  settings: Settings,
  guard: Guard
): Effect.Effect<Producer, KafkaError, Scope.Scope> =>
  Effect.gen(function*() {
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
        catch: (cause) => fromCause(cause, settings.secrets)
      }),
      (producer) =>
        Effect.suspend(() => {
          closed = true
          return disconnect(producer, settings)
        })
    )
    const { connect, publish } = connection(producer, settings)
    const sendBatch = (batch: ProducerBatch): Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError())
        const prepared = prepare(batch)
        if (prepared instanceof KafkaError) return Effect.fail(prepared)
        if (prepared.length === 0) return Effect.succeed([])
        // One producer span per send, KafkaProducer.send: the breaker (with Tracing.layer) annotates it.
        return guard("send", publish(prepared), prepared.map((t) => t.topic).join(","))
      })
    return { connect, sendBatch, isClosed: () => closed }
  })

/** Disconnects within `disconnectTimeout`; a failure or a timeout is logged, never fails the scope's end. */
const disconnect = (producer: KafkaJS.Producer, settings: Settings): Effect.Effect<void> =>
  Effect.tryPromise({ try: () => producer.disconnect(), catch: (cause) => fromCause(cause, settings.secrets) }).pipe(
    Effect.timeoutOrElse({
      duration: settings.disconnectTimeoutMillis,
      orElse: () => Effect.logWarning(`kafka producer did not disconnect within ${settings.disconnectTimeoutMillis} ms`)
    }),
    Effect.ignore({ log: "Warn", message: "kafka producer disconnect failed" })
  )

/**
 * The connection and the send, unguarded. `ready` is false until a connect succeeds, and again after a
 * failure that was not the caller's: the next send then (re)connects first, inside the breaker.
 */
const connection = (producer: KafkaJS.Producer, settings: Settings) => {
  let ready = false
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
    catch: (cause) => fromCause(cause, settings.secrets)
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
      catch: (cause) => fromCause(cause, settings.secrets)
    }).pipe(Effect.onExit(notReadyAfter))

  return { connect, publish }
}
