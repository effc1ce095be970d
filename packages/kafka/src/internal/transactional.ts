/**
 * `KafkaProducer.transactional`: a kafkajs transactional producer behind the
 * same breaker, in named phases: check the id, hold a session (the producer of
 * the moment, whether its last outcome is known, the progress reads' admin
 * connection), make it `ready` (connect, InitProducerId), `send` a batch in one
 * transaction (the messages, the offset, then the commit or the abort), and read
 * the `committedMetadata`. Every Kafka step is one `guard`ed call, bounded by the
 * breaker's `callTimeout`.
 *
 * @internal
 */
import { CircuitBreaker, CircuitBreakerOptionsError } from "@neural-hive/resilience"
import type { CircuitBreakerError } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type Kafka, Partitioners } from "kafkajs"
import type * as KafkaJS from "kafkajs"
import { fromCause, KafkaError } from "../KafkaError.ts"
import type {
  ProducerBatch,
  RecordMetadata,
  TransactionalOptions,
  TransactionalProducer,
  TransactionProgress
} from "../KafkaProducer.ts"
import { closedError, type Guard } from "./client.ts"
import { prepare } from "./encode.ts"
import type { Settings } from "./options.ts"

/** What a transactional producer shares with the producer that made it. */
export interface Deps {
  readonly kafka: Kafka
  readonly settings: Settings
  readonly guard: Guard
  /** The breaker's name, for the options errors. */
  readonly circuit: string
  /** Whether the producer's scope ended. */
  readonly isClosed: () => boolean
}

/** `producer.transactional(transactionalId, options)`: fails only on a bad `transactionalId` or `transactionTimeout`. */
export const makeTransactional = (deps: Deps) =>
(
  transactionalId: string,
  txOptions?: TransactionalOptions
): Effect.Effect<TransactionalProducer, CircuitBreakerOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = checkTransactionalId(deps.circuit, transactionalId)
    if (invalid !== undefined) return yield* invalid
    const transactionTimeoutMillis = yield* CircuitBreaker.durationOption(
      deps.circuit,
      "transactionTimeout",
      txOptions?.transactionTimeout,
      60_000
    )
    const session: Session = {
      deps,
      transactionalId,
      transactionTimeoutMillis,
      current: undefined,
      stale: true,
      admin: undefined,
      adminConnected: false
    }
    yield* Effect.addFinalizer(() => closeSession(session))
    return {
      transactionalId,
      send: (batch, progress) => send(session, batch, progress),
      reset: reset(session),
      committedMetadata: (groupId, topic, partition = 0) => committedMetadata(session, groupId, topic, partition)
    } satisfies TransactionalProducer
  })

const checkTransactionalId = (circuit: string, transactionalId: string): CircuitBreakerOptionsError | undefined =>
  typeof transactionalId !== "string" || transactionalId.trim() === "" || transactionalId.length > 200 ||
    [...transactionalId].some((c) => c.charCodeAt(0) < 0x20)
    ? new CircuitBreakerOptionsError({
      circuit,
      option: "transactionalId",
      value: transactionalId,
      expected: "a non-empty string of at most 200 characters without control characters, stable per relay"
    })
    : undefined

// -----------------------------------------------------------------------------
// the session
// -----------------------------------------------------------------------------

interface Session {
  readonly deps: Deps
  readonly transactionalId: string
  readonly transactionTimeoutMillis: number
  /**
   * The kafkajs producer in use; `stale` when the last call's outcome is not known (or it never
   * connected): the next call makes a new one first, whose InitProducerId settles the old one's.
   */
  current: KafkaJS.Producer | undefined
  stale: boolean
  /** The progress reads' admin connection, kept between reads (two requests a read instead of four). */
  admin: KafkaJS.Admin | undefined
  /** Whether `admin` finished a connect: kafkajs's connect on a connected admin still costs a round trip. */
  adminConnected: boolean
}

/** With the scope: both connections dropped, within `disconnectTimeout`. */
const closeSession = (session: Session): Effect.Effect<void> =>
  Effect.promise(async () => {
    const producer = session.current
    const reader = session.admin
    session.current = undefined
    session.admin = undefined
    await Promise.all([
      producer?.disconnect().catch(() => undefined),
      reader?.disconnect().catch(() => undefined)
    ])
  }).pipe(Effect.timeoutOrElse({ duration: session.deps.settings.disconnectTimeoutMillis, orElse: () => Effect.void }))

const NO_RETRY = { retry: false } as const

/** One Kafka step as one breaker call, bounded by its callTimeout: a transaction is several. */
const step = <A>(session: Session, operation: string, run: () => Promise<A>) =>
  session.deps.guard(
    `transaction.${operation}`,
    Effect.tryPromise({ try: run, catch: (cause) => fromCause(cause, session.deps.settings.secrets) }).pipe(
      // Interrupted (the breaker's callTimeout): the promise runs on, its outcome unknown.
      Effect.onInterrupt(() => Effect.sync(() => void (session.stale = true)))
    ),
    undefined,
    // A transaction's steps are retried as a whole transaction, never one by one.
    NO_RETRY
  )

/** A progress read's step: on its admin connection, so a timeout leaves the producer as it was. */
const readStep = <A>(session: Session, operation: string, run: () => Promise<A>) =>
  session.deps.guard(
    `progress.${operation}`,
    Effect.tryPromise({ try: run, catch: (cause) => fromCause(cause, session.deps.settings.secrets) }),
    undefined,
    NO_RETRY
  )

/**
 * A step on the admin connection that failed: the connection is dropped and the next read makes a new
 * one, except after a timeout. Then the request runs on and leaves the connections it made (to the
 * group's coordinator too) warm, so the next read needs fewer round trips: on a link slow enough that
 * a cold read does not fit in the `callTimeout`, dropping it would make every read cold.
 */
const dropAdminOnFailure =
  (session: Session, reader: KafkaJS.Admin) => <A>(effect: Effect.Effect<A, KafkaError | CircuitBreakerError>) =>
    Effect.tapError(effect, (error) =>
      error instanceof KafkaError && error.reason === "Timeout"
        ? Effect.void
        : Effect.sync(() => {
          if (session.admin === reader) {
            session.admin = undefined
            session.adminConnected = false
          }
          void reader.disconnect().catch(() => undefined)
        }))

/** The admin connection for progress reads, connected (no request when it already is). */
const connectAdmin = (session: Session, reader: KafkaJS.Admin): Promise<void> =>
  session.adminConnected && session.admin === reader ? Promise.resolve() : reader.connect().then(() => {
    if (session.admin === reader) session.adminConnected = true
  })

/** The progress reads' admin connection of the moment, made when there is none. */
const adminOf = (session: Session): KafkaJS.Admin => (session.admin ??= session.deps.kafka.admin())

// -----------------------------------------------------------------------------
// ready: a producer whose InitProducerId ran
// -----------------------------------------------------------------------------

/** A new producer, connected (two steps: the connection, then InitProducerId), unless the current one is fine. */
const ready = (session: Session): Effect.Effect<KafkaJS.Producer, KafkaError | CircuitBreakerError> =>
  Effect.suspend(() => {
    if (session.deps.isClosed()) return Effect.fail(closedError())
    if (!session.stale && session.current !== undefined) return Effect.succeed(session.current)
    return Effect.gen(function*() {
      retire(session.current)
      const producer = newProducer(session)
      session.current = producer
      // The progress reads' admin connects in the same step: after a restart or an unknown outcome the
      // relay reads its progress next, and on a slow link one round of connection set-up is cheaper than two.
      const reader = adminOf(session)
      yield* step(session, "connect", () => Promise.all([producer.connect(), connectAdmin(session, reader)])).pipe(
        dropAdminOnFailure(session, reader)
      )
      // kafkajs runs InitProducerId for the transactional id on the first transaction(), not on connect:
      // an empty transaction makes it happen now (its abort sends nothing, nothing was registered).
      yield* step(session, "initProducerId", async () => {
        const transaction = await producer.transaction()
        await transaction.abort()
      })
      session.stale = false
      return producer
    })
  })

const newProducer = (session: Session): KafkaJS.Producer =>
  session.deps.kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: session.deps.settings.allowAutoTopicCreation,
    transactionalId: session.transactionalId,
    transactionTimeout: session.transactionTimeoutMillis,
    // The transaction's own sends are idempotent whatever this says; true would add a second
    // (non-transactional) InitProducerId to connect.
    idempotent: false,
    maxInFlightRequests: 1,
    // Safe inside a transaction (its sends are idempotent), and InitProducerId needs a few while the
    // coordinator settles an older instance's transaction (CONCURRENT_TRANSACTIONS); the breaker's
    // callTimeout bounds them.
    retry: { retries: Math.max(5, session.deps.settings.retries), initialRetryTime: 100, maxRetryTime: 1_000 }
  })

/** A transactional producer replaced by a new one: disconnected in the background, its outcome unneeded. */
const retire = (producer: KafkaJS.Producer | undefined) => {
  if (producer !== undefined) void producer.disconnect().catch(() => undefined)
}

const reset = (session: Session): Effect.Effect<void, KafkaError | CircuitBreakerError> =>
  Effect.suspend(() => {
    session.stale = true
    return Effect.asVoid(ready(session))
  }).pipe(Effect.withSpan("KafkaProducer.initTransactions", { attributes: { "messaging.system": "kafka" } }))

// -----------------------------------------------------------------------------
// send: one transaction
// -----------------------------------------------------------------------------

const send = (
  session: Session,
  batch: ProducerBatch,
  progress?: TransactionProgress
): Effect.Effect<Array<RecordMetadata>, KafkaError | CircuitBreakerError> =>
  Effect.suspend(() => {
    if (session.deps.isClosed()) return Effect.fail(closedError())
    const prepared = prepare(batch)
    if (prepared instanceof KafkaError) return Effect.fail(prepared)
    return Effect.flatMap(ready(session), (producer) => transaction(session, producer, prepared, progress)).pipe(
      Effect.withSpan("KafkaProducer.transaction", {
        kind: "producer",
        attributes: {
          "messaging.system": "kafka",
          "messaging.batch.topics": prepared.map((t) => t.topic).join(",")
        }
      })
    )
  })

/** The messages and the offset, then the commit; on a failure before the commit, the abort. */
const transaction = (
  session: Session,
  producer: KafkaJS.Producer,
  prepared: Array<KafkaJS.TopicMessages>,
  progress: TransactionProgress | undefined
) =>
  Effect.gen(function*() {
    const { settings } = session.deps
    let open: KafkaJS.Transaction | undefined
    const sent = yield* Effect.exit(Effect.gen(function*() {
      const metadata = yield* step(session, "sendBatch", async () => {
        open = await producer.transaction()
        return open.sendBatch({
          topicMessages: prepared,
          acks: -1,
          timeout: settings.ackTimeoutMillis,
          compression: settings.compression
        })
      })
      if (progress !== undefined) {
        // kafkajs sends each partition's `metadata` (TxnOffsetCommit), its types omit it.
        const partition = { partition: progress.partition ?? 0, offset: "0", metadata: progress.metadata }
        yield* step(session, "sendOffsets", () =>
          open!.sendOffsets({
            consumerGroupId: progress.groupId,
            topics: [{ topic: progress.topic, partitions: [partition] }]
          }))
      }
      return metadata
    }))
    if (sent._tag === "Failure") {
      yield* abort(session, open)
      return yield* sent
    }
    // A commit that fails or times out leaves the outcome unknown: the next call starts afresh.
    yield* step(session, "commit", () => open!.commit()).pipe(
      Effect.tapError(() => Effect.sync(() => void (session.stale = true)))
    )
    return sent.value
  })

/**
 * Not committed: abort (through the breaker too); if that fails, the next call's InitProducerId does.
 * No transaction began (the breaker refused the first step): nothing to undo.
 */
const abort = (session: Session, open: KafkaJS.Transaction | undefined): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (open === undefined) return
    if (!open.isActive()) {
      session.stale = true
      return
    }
    const aborted = yield* Effect.exit(step(session, "abort", () => open.abort()))
    if (aborted._tag === "Failure") session.stale = true
  })

// -----------------------------------------------------------------------------
// committedMetadata: the progress read
// -----------------------------------------------------------------------------

const committedMetadata = (
  session: Session,
  groupId: string,
  topic: string,
  partition: number
): Effect.Effect<string | undefined, KafkaError | CircuitBreakerError> =>
  Effect.gen(function*() {
    // Two steps, each within the callTimeout on a slow link: the connection (kept), then the read.
    const reader = adminOf(session)
    // Connected already by `ready` (then no request is sent); a failure drops the connection.
    yield* readStep(session, "connect", () => connectAdmin(session, reader)).pipe(dropAdminOnFailure(session, reader))
    const offsets = yield* readStep(session, "fetchOffsets", () => reader.fetchOffsets({ groupId, topics: [topic] }))
      .pipe(dropAdminOnFailure(session, reader))
    const found = offsets.find((t) => t.topic === topic)?.partitions.find((p) => p.partition === partition)
    return found === undefined || Number(found.offset) < 0 ? undefined : found.metadata ?? undefined
  })
