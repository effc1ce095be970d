/**
 * The transactional outbox, in its single-document form: a document and its
 * "to publish" mark are written in ONE MongoDB write (`Outbox.pending(doc, now)`
 * adds the mark), so there is never a stored document without its mark, nor a
 * mark without its document, on any server (FerretDB included: no transaction is
 * needed). A relay then publishes pending documents to Kafka through the
 * `kafka_producer` breaker, keyed by their id, and marks them published.
 *
 * - Bounded memory: at most `batchSize` documents are read at a time.
 * - No polling storm: while the breaker is OPEN the relay sends nothing (so none
 *   of its calls is rejected by our own breaker) and waits for its transitions.
 *   When the breaker turns HALF_OPEN the relay sends one document as the trial
 *   (a real call, so an idle service recovers even without a probe); when it
 *   turns CLOSED the relay drains the backlog. It also sweeps on start and every
 *   `sweepInterval`, so documents left pending by a crash are published after a
 *   restart.
 * - No head-of-line blocking: a send Kafka refuses as the caller's fault (a
 *   message too large, an invalid record: see `isPoison`) is split in halves, down
 *   to one document; a single document still refused is marked `dead` with the
 *   reason, and the relay goes on with the rest in the same round. An outage (a
 *   timeout, a broker down) never splits nor dead-letters: the breaker handles it.
 *   `requeue` puts a dead document back to pending once the cause is fixed.
 * - At least once (`delivery: "at-least-once"`, the default): a document is
 *   marked published only after Kafka acknowledged it. A crash (or an unknown send
 *   outcome, a timeout) between the two publishes it again, with the same key:
 *   consumers deduplicate by key (or the topic is compacted). With the idempotent
 *   producer, retries inside one send never duplicate.
 * - Exactly once to `read_committed` readers (`delivery: "exactly-once"` with a
 *   `transactionalId` stable per relay): each batch is sent in a Kafka
 *   transaction together with a progress record, the consumer-group offset of
 *   group `outbox-progress.<transactionalId>` whose metadata is the batch's
 *   attempt id (written on the batch's documents, `outbox.attempt`, before the
 *   send). Batch k+1 is read only once batch k is marked published, so only the
 *   last committed batch can be left unmarked. On start, and after any send whose
 *   outcome is unknown, the relay first makes a new transactional producer (which
 *   fences the previous instance and settles its open transaction), reads the
 *   progress record, and marks that attempt's documents published: a committed
 *   batch is never sent twice, an aborted one is invisible to `read_committed`
 *   readers. A relay fenced by a newer one with the same `transactionalId` stops.
 *
 * **Example** (Queue, then publish)
 *
 * ```ts
 * import { Outbox } from "@neural-hive/outbox"
 * import { MongoStore } from "@neural-hive/mongodb"
 * import { Clock, Effect } from "effect"
 *
 * const store = Effect.gen(function*() {
 *   const mongo = yield* MongoStore.MongoStore
 *   const relay = yield* Outbox.OutboxRelay
 *   const now = yield* Clock.currentTimeMillis
 *   yield* mongo.insertOne("tickets", Outbox.pending({ _id: "t-1", plan: "p-1" }, now))
 *   yield* relay.notify
 * })
 * ```
 *
 * @since 0.1.0
 */
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { CircuitBreaker, CircuitBreakerError, CircuitBreakerOptionsError, redact } from "@neural-hive/resilience"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"

/**
 * The mark a document carries in the outbox: where it is in its publication.
 *
 * @since 0.1.0
 * @category models
 */
export interface Mark {
  readonly state: State
  /** When the document was written (Clock milliseconds): the backlog's age comes from it. */
  readonly enqueuedAt: number
  readonly publishedAt?: number | undefined
  /** When the relay last moved it to `dead` (kept after a requeue, for the record). */
  readonly deadAt?: number | undefined
  /** Why Kafka refused it, the last time it was moved to `dead`. */
  readonly error?: DeadReason | undefined
  /** When `requeue` last put it back to pending. */
  readonly requeuedAt?: number | undefined
}

/**
 * Where a document is: waiting, in Kafka, or refused by Kafka as its own fault
 * (`dead`: the relay skips it until `requeue`).
 *
 * @since 0.1.0
 * @category models
 */
export type State = "pending" | "published" | "dead"

/**
 * Why a document is `dead`: the `KafkaError` reason (or `Encode` when the
 * `key` or `encode` option threw on it), Kafka's protocol error type when the
 * broker answered with one, and the error's message, redacted and cut to
 * 500 characters.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeadReason {
  readonly reason: string
  readonly protocolError?: string | undefined
  readonly message: string
}

/**
 * A document with its outbox mark.
 *
 * @since 0.1.0
 * @category models
 */
export type Marked<D> = D & { readonly outbox: Mark }

/**
 * The field of the mark in a document.
 *
 * @since 0.1.0
 * @category constants
 */
export const FIELD = "outbox"

/**
 * `document` with a pending mark: write the result in one `insertOne` (or
 * `updateOne` with upsert) so the document and its mark are stored together.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pending = <D extends object>(document: D, now: number): Marked<D> => ({
  ...document,
  outbox: { state: "pending", enqueuedAt: now }
})

/**
 * A filter for the pending documents no exactly-once relay has started to send (it claims a batch,
 * with its attempt id, before the send): a writer taking back a pending document it wrote (a
 * compensation after an insert whose outcome was unknown) adds it to its own filter, so it never
 * deletes a document a relay may be committing. With the at-least-once relay nothing is claimed.
 *
 * @since 0.1.0
 * @category constants
 */
export const unclaimed: { readonly "outbox.state": "pending"; readonly "outbox.attempt": { readonly $exists: false } } =
  { "outbox.state": "pending", "outbox.attempt": { $exists: false } }

/**
 * The relay's counters at one moment.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Pending documents seen by the last sweep (exact after each drain round). */
  readonly pending: number
  /** Milliseconds since the oldest pending document was written, 0 when none. */
  readonly oldestPendingMillis: number
  /** Documents published since the relay started. */
  readonly published: number
  /** Sends that failed (the breaker counted them, or they were refused). */
  readonly failedSends: number
  /** The last send failure's message, or undefined. */
  readonly lastError: string | undefined
  /** Documents moved to `dead` by this relay since it started. */
  readonly deadLettered: number
  /** Dead documents seen by the last sweep (in the collection, whoever moved them). */
  readonly dead: number
  /** The dead document dead the longest, as of the last sweep, or undefined when none. */
  readonly oldestDead: OldestDead | undefined
}

/**
 * The dead document dead the longest: its `_id` (as a string), when it died
 * (Clock milliseconds) and the reason's class (never the message).
 *
 * @since 0.1.0
 * @category models
 */
export interface OldestDead {
  readonly id: string
  readonly deadAt: number
  readonly reason: string
}

/**
 * What `requeue` did: `Requeued` (dead, now pending) or `AlreadyPending` (an
 * earlier requeue already put it back and it is not published yet: the same
 * request again changes nothing).
 *
 * @since 0.1.0
 * @category models
 */
export type RequeueOutcome = "Requeued" | "AlreadyPending"

/**
 * `requeue` could not: no document has that `_id` (`NotFound`), or it is not
 * dead (`NotDead`, with its `state`).
 *
 * @since 0.1.0
 * @category errors
 */
export class OutboxRequeueError extends Data.TaggedError("OutboxRequeueError")<{
  readonly reason: "NotFound" | "NotDead"
  readonly id: string
  readonly state?: State | undefined
  readonly message: string
}> {}

/**
 * @since 0.1.0
 * @category services
 */
export class OutboxRelay extends Context.Service<OutboxRelay, {
  /** Asks the relay to publish soon (after a write); never waits for Kafka. */
  readonly notify: Effect.Effect<void>
  /** Publishes what is pending now, batch after batch, while the breaker is CLOSED; the count published. */
  readonly drain: Effect.Effect<number>
  readonly stats: Effect.Effect<Stats>
  /** The same, synchronously (for metrics collected at scrape time). */
  readonly statsUnsafe: () => Stats
  /** Puts a dead document back to pending (after the cause is fixed) and wakes the relay. */
  readonly requeue: (
    id: unknown
  ) => Effect.Effect<RequeueOutcome, OutboxRequeueError | MongoStore.MongoStoreError | CircuitBreakerError>
  /** Puts every dead document back to pending and wakes the relay; how many. */
  readonly requeueAllDead: Effect.Effect<number, MongoStore.MongoStoreError | CircuitBreakerError>
}>()("@neural-hive/outbox/OutboxRelay") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The MongoDB collection holding the documents and their marks. */
  readonly collection: string
  /** The Kafka topic to publish to. */
  readonly topic: string
  /** The message key (default: the document's `_id` as a string): consumers deduplicate by it. */
  readonly key?: ((document: Marked<Record<string, unknown>>) => string) | undefined
  /** The message value (default: the document without its mark, as JSON). */
  readonly encode?: ((document: Marked<Record<string, unknown>>) => string) | undefined
  /** Documents read and published per round (default 100, at most 10,000). */
  readonly batchSize?: number | undefined
  /** How often the relay sweeps without being asked (default 5 seconds). */
  readonly sweepInterval?: Duration.Input | undefined
  /**
   * `"at-least-once"` (default): plain sends, a crash or an unknown outcome resends. `"exactly-once"`:
   * Kafka transactions with a progress record, so a `read_committed` reader sees each document once
   * (needs `transactionalId`).
   */
  readonly delivery?: Delivery | undefined
  /**
   * With `delivery: "exactly-once"` only: the relay's transactional id, the same across its restarts
   * (a StatefulSet pod's name) and different from every other live relay's. A new relay with the same
   * id fences the old one.
   */
  readonly transactionalId?: string | undefined
}

/**
 * How the relay delivers: see `Options.delivery`.
 *
 * @since 0.1.0
 * @category models
 */
export type Delivery = "at-least-once" | "exactly-once"

/**
 * The consumer group whose committed offset on the relay's topic (partition 0) is the progress record
 * of the relay with this `transactionalId`: its metadata is the last committed batch's attempt id.
 *
 * @since 0.1.0
 * @category constants
 */
export const progressGroup = (transactionalId: string): string => `outbox-progress.${transactionalId}`

const defaultKey = (document: Record<string, unknown>): string => String(document["_id"])

const defaultEncode = (document: Record<string, unknown>): string => {
  const { outbox: _, ...rest } = document
  return JSON.stringify(rest)
}

const errorMessage = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error)

const MAX_REASON_CHARS = 500

const deadMessage = (text: string): string => {
  const clean = redact(text)
  return clean.length <= MAX_REASON_CHARS ? clean : `${clean.slice(0, MAX_REASON_CHARS)}...(${clean.length} chars)`
}

/** Kafka's answers that are about the records of the request, never about the broker nor the producer's settings. */
const POISON_PROTOCOL_ERRORS: ReadonlySet<string> = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_RECORD",
  "CORRUPT_MESSAGE",
  "INVALID_TIMESTAMP"
])

/**
 * Whether a send failure is about the documents sent, so a smaller send may
 * succeed: the relay then splits the batch, and marks `dead` a single document
 * still refused. True for `MessageTooLarge` (`MESSAGE_TOO_LARGE`,
 * `RECORD_LIST_TOO_LARGE`), `Serialization` (a value that cannot be encoded),
 * and `InvalidRecord` when Kafka named the record (`INVALID_RECORD`,
 * `CORRUPT_MESSAGE`, `INVALID_TIMESTAMP`) or kafkajs refused the message
 * before sending. False for everything else: what `kafka_producer` counts (a
 * timeout, a broker or the network down), and the caller's faults that every
 * document would meet alike (`InvalidTopic`, `Closed`, an `InvalidRecord` about
 * the producer's settings such as `INVALID_REQUIRED_ACKS` or
 * `UNSUPPORTED_COMPRESSION_TYPE`, `POLICY_VIOLATION`): those leave the
 * documents pending and show in `failedSends`.
 *
 * @since 0.1.0
 * @category classification
 */
export const isPoison = (error: unknown): boolean => {
  if (!(error instanceof KafkaError)) return false
  switch (error.reason) {
    case "MessageTooLarge":
    case "Serialization":
      return true
    case "InvalidRecord":
      return error.protocolError === undefined || POISON_PROTOCOL_ERRORS.has(error.protocolError)
    default:
      return false
  }
}

const bad = (option: string, value: unknown, expected: string) =>
  new CircuitBreakerOptionsError({ circuit: "outbox", option, value, expected })

/**
 * Starts a relay that lives as long as the scope. Fails only on bad options.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<
  OutboxRelay["Service"],
  CircuitBreakerOptionsError,
  MongoStore.MongoStore | KafkaProducer.KafkaProducer | Scope.Scope
> = Effect.fnUntraced(function*(options: Options) {
  if (typeof options?.collection !== "string" || options.collection === "") {
    return yield* bad("collection", options?.collection, "a collection name")
  }
  if (typeof options.topic !== "string" || options.topic === "") {
    return yield* bad("topic", options.topic, "a topic name")
  }
  const batchSize = options.batchSize ?? 100
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    return yield* bad("batchSize", options.batchSize, "an integer between 1 and 10000")
  }
  const sweepMillis = yield* CircuitBreaker.durationOption("outbox", "sweepInterval", options.sweepInterval, 5_000)
  const delivery = options.delivery ?? "at-least-once"
  if (delivery !== "at-least-once" && delivery !== "exactly-once") {
    return yield* bad("delivery", options.delivery, "\"at-least-once\" or \"exactly-once\"")
  }
  if (delivery === "exactly-once") {
    if (typeof options.transactionalId !== "string" || options.transactionalId.trim() === "") {
      return yield* bad(
        "transactionalId",
        options.transactionalId,
        "a transactional id stable per relay (e.g. the pod's name) with delivery \"exactly-once\""
      )
    }
  } else if (options.transactionalId !== undefined) {
    return yield* bad("transactionalId", options.transactionalId, "no transactionalId with delivery \"at-least-once\"")
  }
  const { collection, topic } = options
  const key = options.key ?? defaultKey
  const encode = options.encode ?? defaultEncode

  const store = yield* MongoStore.MongoStore
  const producer = yield* KafkaProducer.KafkaProducer
  const breaker = producer.breaker
  const transactionalId = options.transactionalId ?? ""
  const transactional = delivery === "exactly-once"
    ? yield* producer.transactional(transactionalId).pipe(
      Effect.mapError((e) => bad("transactionalId", transactionalId, e.expected))
    )
    : undefined
  const group = progressGroup(transactionalId)
  // Exactly once: false until the progress record was read after the last start or unknown outcome.
  let settled = false
  let fenced = false
  const wake = yield* Queue.sliding<void>(1)
  const oneAtATime = yield* Semaphore.make(1)
  let published = 0
  let failedSends = 0
  let pendingSeen = 0
  let oldestEnqueuedAt: number | undefined
  let lastError: string | undefined
  let deadLettered = 0
  let deadSeen = 0
  let oldestDead: OldestDead | undefined

  // HALF_OPEN: one document is the trial; CLOSED: publish what queued up while Kafka was out.
  yield* breaker.listen({
    onTransition: (transition) => {
      if (transition.to !== "Open") Queue.offerUnsafe(wake, undefined)
    }
  })

  const STATE = `${FIELD}.state`
  const ATTEMPT = `${FIELD}.attempt`
  // Filters on `_id` are cast: the driver types `_id` as an ObjectId unless the schema says otherwise.
  const pendingFilter = { [STATE]: "pending" }
  const deadFilter = { [STATE]: "dead" }

  /** Counts the backlog and its oldest entry, and the dead documents and the oldest of them (two reads each, one when none). */
  const measure = Effect.gen(function*() {
    const oldest = yield* store.find<Marked<Record<string, unknown>>>(collection, pendingFilter, {
      limit: 1,
      sort: { [`${FIELD}.enqueuedAt`]: 1 },
      projection: { [`${FIELD}.enqueuedAt`]: 1 }
    })
    oldestEnqueuedAt = oldest[0]?.outbox.enqueuedAt
    pendingSeen = oldest.length === 0 ? 0 : yield* store.countDocuments(collection, pendingFilter)
    const dead = yield* store.find<Marked<Record<string, unknown>>>(collection, deadFilter, {
      limit: 1,
      sort: { [`${FIELD}.deadAt`]: 1 },
      projection: { [`${FIELD}.deadAt`]: 1, [`${FIELD}.error.reason`]: 1 }
    })
    const first = dead[0]
    oldestDead = first === undefined ? undefined : {
      id: String(first["_id"]),
      deadAt: first.outbox.deadAt ?? 0,
      reason: first.outbox.error?.reason ?? "Unknown"
    }
    deadSeen = first === undefined ? 0 : yield* store.countDocuments(collection, deadFilter)
  })

  /** Marks documents `dead` with the reason; only those still pending (a requeue or another relay may have moved them). */
  const markDead = (ids: ReadonlyArray<unknown>, why: DeadReason) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const error: DeadReason = why.protocolError === undefined
        ? { reason: why.reason, message: deadMessage(why.message) }
        : { reason: why.reason, protocolError: why.protocolError, message: deadMessage(why.message) }
      const result = yield* store.updateMany(
        collection,
        { _id: { $in: ids }, ...pendingFilter } as never,
        { $set: { [STATE]: "dead", [`${FIELD}.deadAt`]: now, [`${FIELD}.error`]: error } }
      )
      deadLettered += result.modifiedCount
      lastError = `${why.reason}: ${error.message}`
      yield* Effect.logWarning("outbox_ticket_dead").pipe(
        Effect.annotateLogs({
          collection,
          topic,
          ids: ids.map(String).join(","),
          reason: error.reason,
          protocol_error: error.protocolError ?? "",
          message: error.message
        })
      )
    })

  interface Encoded {
    readonly id: unknown
    readonly message: { readonly key: string; readonly value: string }
  }

  /**
   * Sends `batch` and marks it published; when Kafka refuses it as the documents' fault, sends each half
   * the same way (oldest half first), down to one document, which is then marked dead. `false` when the
   * round must stop (a failure the breaker handles, or its rejection): what was not sent stays pending.
   */
  const publish = (
    read: ReadonlyArray<Encoded>
  ): Effect.Effect<boolean, MongoStore.MongoStoreError | CircuitBreakerError> =>
    Effect.gen(function*() {
      let batch = read
      let send: Effect.Effect<unknown, KafkaError | CircuitBreakerError> = producer.send({
        topic,
        messages: batch.map((entry) => entry.message)
      })
      if (transactional !== undefined) {
        // The attempt id names this send's documents: the progress record committed with them carries it.
        // It also claims them: a writer that takes back a pending document of its own (the example's
        // compensation) leaves a claimed one alone (`unclaimed`).
        const attempt = crypto.randomUUID()
        const claimed = yield* store.updateMany(
          collection,
          { _id: { $in: batch.map((entry) => entry.id) }, ...pendingFilter } as never,
          { $set: { [ATTEMPT]: attempt } }
        )
        if (claimed.modifiedCount < batch.length) {
          // Some changed since the read (deleted, or no longer pending): only those claimed are sent.
          const still = yield* store.find<Marked<Record<string, unknown>>>(collection, { [ATTEMPT]: attempt }, {
            limit: batch.length,
            sort: { [`${FIELD}.enqueuedAt`]: 1 },
            projection: { _id: 1 }
          })
          const ids = new Set(still.map((document) => String(document["_id"])))
          batch = batch.filter((entry) => ids.has(String(entry.id)))
          if (batch.length === 0) return true
        }
        const messages = batch.map((entry) => entry.message)
        send = transactional.send({ topicMessages: [{ topic, messages }] }, {
          groupId: group,
          topic,
          metadata: attempt
        })
      }
      const sent = yield* Effect.exit(
        send.pipe(Effect.withSpan("OutboxRelay.publish", { attributes: { "outbox.batch_size": batch.length } }))
      )
      if (Exit.isSuccess(sent)) {
        const now = yield* Clock.currentTimeMillis
        // Exactly once: a mark that fails (MongoDB out) leaves a committed batch pending, as a crash would:
        // the next round settles from the progress record first instead of sending it again.
        if (transactional !== undefined) settled = false
        yield* store.updateMany(
          collection,
          { _id: { $in: batch.map((entry) => entry.id) }, ...pendingFilter } as never,
          { $set: { [STATE]: "published", [`${FIELD}.publishedAt`]: now } }
        )
        if (transactional !== undefined) settled = true
        published += batch.length
        return true
      }
      const error = sent.cause.reasons.find((reason) => reason._tag === "Fail")
      // Refused by the breaker (another caller took the HALF_OPEN permit): nothing was sent, wait.
      if (error !== undefined && error.error instanceof CircuitBreakerError) return false
      failedSends++
      lastError = error === undefined ? "interrupted or defect" : errorMessage(error.error)
      if (transactional !== undefined && error !== undefined && KafkaProducer.isFenced(error.error)) {
        fenced = true
        yield* Effect.logError("outbox_relay_fenced").pipe(
          Effect.annotateLogs({ collection, topic, transactional_id: transactionalId, message: lastError })
        )
        return false
      }
      // A poison refusal aborted the transaction; anything else may have committed: settle before the next send.
      if (error === undefined || !isPoison(error.error)) {
        settled = false
        return false
      }
      const refusal = error.error as KafkaError
      if (batch.length === 1) {
        yield* markDead([batch[0]!.id], {
          reason: refusal.reason,
          protocolError: refusal.protocolError,
          message: refusal.message
        })
        return true
      }
      const half = Math.ceil(batch.length / 2)
      return (yield* publish(batch.slice(0, half))) && (yield* publish(batch.slice(half)))
    })

  /**
   * Exactly once, on start and after an unknown outcome: a new transactional producer (fencing the
   * previous one, settling its open transaction), then the documents of the last committed batch,
   * named by the progress record, marked published. Both Kafka calls go through the breaker.
   */
  const settle = (tx: KafkaProducer.TransactionalProducer) =>
    Effect.gen(function*() {
      yield* tx.reset
      const attempt = yield* tx.committedMetadata(group, topic)
      let recovered = 0
      if (attempt !== undefined && attempt !== "") {
        const now = yield* Clock.currentTimeMillis
        const result = yield* store.updateMany(
          collection,
          { [ATTEMPT]: attempt, ...pendingFilter },
          { $set: { [STATE]: "published", [`${FIELD}.publishedAt`]: now } }
        )
        recovered = result.modifiedCount
        published += recovered
      }
      settled = true
      yield* Effect.logInfo("outbox_relay_settled").pipe(
        Effect.annotateLogs({ collection, topic, transactional_id: transactionalId, recovered })
      )
    }).pipe(Effect.withSpan("OutboxRelay.settle"))

  /** One round: a batch read, its send (split while Kafka refuses documents), its marks. `false` when there is nothing more to do now. */
  const round: Effect.Effect<boolean> = Effect.gen(function*() {
    if (fenced) return false
    const state = yield* breaker.state
    if (state === "Open") return false
    if (transactional !== undefined && !settled) {
      const done = yield* Effect.exit(settle(transactional))
      if (Exit.isFailure(done)) {
        const error = done.cause.reasons.find((reason) => reason._tag === "Fail")
        if (error !== undefined && !(error.error instanceof CircuitBreakerError)) {
          lastError = errorMessage(error.error)
          if (error.error instanceof KafkaError) failedSends++
        }
        return false
      }
      // The breaker may have moved: read its state again.
      return true
    }
    const batch = yield* store.find<Marked<Record<string, unknown>>>(collection, pendingFilter, {
      limit: state === "HalfOpen" ? 1 : batchSize,
      sort: { [`${FIELD}.enqueuedAt`]: 1 }
    })
    if (batch.length === 0) return false
    const encoded: Array<Encoded> = []
    for (const document of batch) {
      const id = document["_id"]
      try {
        encoded.push({ id, message: { key: key(document), value: encode(document) } })
      } catch (cause) {
        // The `key` or `encode` option threw on this document: no send can carry it.
        yield* markDead([id], { reason: "Encode", message: errorMessage(cause) })
      }
    }
    const goOn = encoded.length === 0 || (yield* publish(encoded))
    return goOn && (batch.length === batchSize || state === "HalfOpen")
  }).pipe(
    // A MongoDB failure (its breaker counts it) ends this round; the next wake or sweep tries again.
    Effect.catch((error) =>
      Effect.sync(() => {
        lastError = errorMessage(error)
        return false
      })
    )
  )

  const drain: Effect.Effect<number> = oneAtATime.withPermits(1)(
    Effect.gen(function*() {
      const before = published
      while (yield* round) {
        // more to publish: go on while the breaker stays CLOSED
      }
      yield* Effect.ignore(measure)
      return published - before
    })
  )

  // Sweeps on start, on every wake-up, and every sweepInterval.
  yield* Effect.forkScoped(
    Effect.forever(
      Effect.andThen(drain, Effect.raceFirst(Queue.take(wake), Effect.sleep(sweepMillis)))
    )
  )

  const clock = yield* Clock.Clock
  const statsUnsafe = (): Stats => ({
    pending: pendingSeen,
    oldestPendingMillis: oldestEnqueuedAt === undefined
      ? 0
      : Math.max(0, clock.currentTimeMillisUnsafe() - oldestEnqueuedAt),
    published,
    failedSends,
    lastError,
    deadLettered,
    dead: deadSeen,
    oldestDead
  })
  const notify = Effect.asVoid(Queue.offer(wake, undefined))

  const requeue = (id: unknown) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const moved = yield* store.updateOne(
        collection,
        { _id: id, ...deadFilter } as never,
        { $set: { [STATE]: "pending", [`${FIELD}.requeuedAt`]: now } }
      )
      if (moved.matchedCount > 0) {
        yield* Effect.logWarning("outbox_ticket_requeued").pipe(Effect.annotateLogs({ collection, id: String(id) }))
        yield* notify
        return "Requeued" as const
      }
      const found = yield* store.findOne<Marked<Record<string, unknown>>>(collection, { _id: id } as never, {
        projection: { [FIELD]: 1 }
      })
      if (Option.isNone(found)) {
        return yield* new OutboxRequeueError({
          reason: "NotFound",
          id: String(id),
          message: `no document ${String(id)} in ${collection}`
        })
      }
      const mark = found.value.outbox as Mark | undefined
      // The same request again (a retry after a lost answer): it is back to pending and not published yet.
      if (mark?.state === "pending" && mark.requeuedAt !== undefined) return "AlreadyPending" as const
      return yield* new OutboxRequeueError({
        reason: "NotDead",
        id: String(id),
        state: mark?.state,
        message: `document ${String(id)} is ${mark?.state ?? "not in the outbox"}, not dead`
      })
    })

  const requeueAllDead = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const moved = yield* store.updateMany(
      collection,
      deadFilter,
      { $set: { [STATE]: "pending", [`${FIELD}.requeuedAt`]: now } }
    )
    yield* Effect.logWarning("outbox_dead_requeued").pipe(
      Effect.annotateLogs({ collection, count: moved.modifiedCount })
    )
    if (moved.modifiedCount > 0) yield* notify
    return moved.modifiedCount
  })

  return OutboxRelay.of({
    notify,
    drain,
    stats: Effect.sync(statsUnsafe),
    statsUnsafe,
    requeue,
    requeueAllDead
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<OutboxRelay, CircuitBreakerOptionsError, MongoStore.MongoStore | KafkaProducer.KafkaProducer> =>
  Layer.effect(OutboxRelay, make(options))

/**
 * `Duration` of the oldest pending document, for alerts and `/health`.
 *
 * @since 0.1.0
 * @category getters
 */
export const oldestPending = (stats: Stats): Duration.Duration => Duration.millis(stats.oldestPendingMillis)

/**
 * How long the oldest dead document has been dead at `now` (Clock milliseconds), 0 when none.
 *
 * @since 0.1.0
 * @category getters
 */
export const oldestDeadMillis = (stats: Stats, now: number): number =>
  stats.oldestDead === undefined ? 0 : Math.max(0, now - stats.oldestDead.deadAt)
