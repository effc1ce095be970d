/**
 * The send round: a batch of pending documents read (one while the breaker is
 * HALF_OPEN), encoded, claimed with an attempt id (exactly once), sent, and
 * marked published; a batch Kafka refuses as the documents' fault is split in
 * halves down to one document, which is marked dead.
 *
 * @internal
 */
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import type { MongoStore } from "@neural-hive/mongodb"
import { CircuitBreakerError } from "@neural-hive/resilience"
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { markDead } from "./deadTickets.ts"
import { isPoison } from "./poison.ts"
import { settle } from "./progress.ts"
import { ATTEMPT, type Document, type Encoded, errorMessage, FIELD, pendingFilter, type Relay, STATE } from "./relay.ts"

/** One round: a batch read, its send (split while Kafka refuses documents), its marks. `false` when there is nothing more to do now. */
export const round = (r: Relay): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    r.readDry = false
    if (r.fenced) return false
    const state = yield* r.producer.breaker.state
    if (state === "Open") return false
    if (r.transactional !== undefined && !r.settled) return yield* recoverProgress(r, r.transactional)
    const batch = yield* r.store.find<Document>(r.collection, pendingFilter, {
      limit: state === "HalfOpen" ? 1 : r.batchSize,
      sort: { [`${FIELD}.enqueuedAt`]: 1 }
    })
    if (batch.length === 0) {
      r.readDry = true
      return false
    }
    const encoded = yield* encodeBatch(r, batch)
    const goOn = encoded.length === 0 || (yield* sendBatch(r, encoded, markPublished))
    r.readDry = goOn && batch.length < r.batchSize && state === "Closed"
    return goOn && (batch.length === r.batchSize || state === "HalfOpen")
  }).pipe(
    // A MongoDB failure (its breaker counts it) ends this round; the next wake or sweep tries again.
    Effect.catch((error) =>
      Effect.sync(() => {
        r.lastError = errorMessage(error)
        return false
      })
    )
  )

/**
 * At least once: one batch of the documents handed over by `notifyWritten`, sent without reading the
 * collection and marked by `_id` alone (a lookup every server answers from its primary index, FerretDB
 * included). `false` when none are left. Anything but a full success (the breaker not CLOSED, a failed
 * send or mark) drops the hand-overs and asks for a read of the collection: the documents are stored
 * pending, and the read finds them.
 */
export const writtenRound = (r: Relay): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    if (r.written.length === 0) return false
    const state = yield* r.producer.breaker.state
    if (state !== "Closed") return dropWritten(r)
    const batch = r.written.splice(0, r.batchSize)
    const encoded = yield* encodeBatch(r, batch)
    const sent = encoded.length === 0 || (yield* sendBatch(r, encoded, markEach))
    return sent ? r.written.length > 0 : dropWritten(r)
  }).pipe(
    Effect.catch((error) =>
      Effect.sync(() => {
        r.lastError = errorMessage(error)
        return dropWritten(r)
      })
    )
  )

const dropWritten = (r: Relay): false => {
  r.written.length = 0
  r.scanNeeded = true
  return false
}

/** Exactly once, before any send: the progress recovery; `true` when done (the breaker may have moved: read it again). */
const recoverProgress = (r: Relay, tx: KafkaProducer.TransactionalProducer) =>
  Effect.gen(function*() {
    const done = yield* Effect.exit(settle(r, tx))
    if (Exit.isSuccess(done)) return true
    const error = done.cause.reasons.find((reason) => reason._tag === "Fail")
    if (error !== undefined && !(error.error instanceof CircuitBreakerError)) {
      r.lastError = errorMessage(error.error)
      if (error.error instanceof KafkaError) r.failedSends++
    }
    return false
  })

/** The documents' messages; one the `key` or `encode` option throws on is marked dead (no send can carry it). */
const encodeBatch = (r: Relay, batch: ReadonlyArray<Document>) =>
  Effect.gen(function*() {
    const encoded: Array<Encoded> = []
    for (const document of batch) {
      const id = document["_id"]
      try {
        encoded.push({ id, message: { key: r.key(document), value: r.encode(document) } })
      } catch (cause) {
        yield* markDead(r, [id], { reason: "Encode", message: errorMessage(cause) })
      }
    }
    return encoded
  })

/**
 * Sends `batch` and marks it published; when Kafka refuses it as the documents' fault, sends each half
 * the same way (oldest half first), down to one document, which is then marked dead. `false` when the
 * round must stop (a failure the breaker handles, or its rejection): what was not sent stays pending.
 */
const sendBatch = (
  r: Relay,
  read: ReadonlyArray<Encoded>,
  mark: Mark
): Effect.Effect<boolean, MongoStore.MongoStoreError | CircuitBreakerError> =>
  Effect.gen(function*() {
    let batch = read
    let send: Effect.Effect<unknown, KafkaError | CircuitBreakerError>
    if (r.transactional === undefined) {
      send = r.producer.send({ topic: r.topic, messages: batch.map((entry) => entry.message) })
    } else {
      const attempt = crypto.randomUUID()
      batch = yield* claim(r, batch, attempt)
      if (batch.length === 0) return true
      const messages = batch.map((entry) => entry.message)
      send = r.transactional.send({ topicMessages: [{ topic: r.topic, messages }] }, {
        groupId: r.group,
        topic: r.topic,
        metadata: attempt
      })
    }
    const sent = yield* Effect.exit(
      send.pipe(Effect.withSpan("OutboxRelay.publish", { attributes: { "outbox.batch_size": batch.length } }))
    )
    if (Exit.isSuccess(sent)) {
      yield* mark(r, batch)
      return true
    }
    return yield* afterFailedSend(r, batch, sent.cause, mark)
  })

/**
 * Exactly once: the attempt id names this send's documents (the progress record committed with them carries it).
 * It also claims them: a writer that takes back a pending document of its own (the example's compensation) leaves a
 * claimed one alone (`unclaimed`). Only the documents claimed are sent.
 */
const claim = (r: Relay, batch: ReadonlyArray<Encoded>, attempt: string) =>
  Effect.gen(function*() {
    const claimed = yield* r.store.updateMany(
      r.collection,
      { _id: { $in: batch.map((entry) => entry.id) }, ...pendingFilter } as never,
      { $set: { [ATTEMPT]: attempt } }
    )
    if (claimed.modifiedCount >= batch.length) return batch
    // Some changed since the read (deleted, or no longer pending): only those claimed are sent.
    const still = yield* r.store.find<Document>(r.collection, { [ATTEMPT]: attempt }, {
      limit: batch.length,
      sort: { [`${FIELD}.enqueuedAt`]: 1 },
      projection: { _id: 1 }
    })
    const ids = new Set(still.map((document) => String(document["_id"])))
    return batch.filter((entry) => ids.has(String(entry.id)))
  })

/** How a sent batch is marked published. */
type Mark = (
  r: Relay,
  batch: ReadonlyArray<Encoded>
) => Effect.Effect<void, MongoStore.MongoStoreError | CircuitBreakerError>

/** Marks a sent batch published (only documents still pending), and drops them from the hand-overs. */
const markPublished: Mark = (r, batch) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    // Exactly once: a mark that fails (MongoDB out) leaves a committed batch pending, as a crash would:
    // the next round settles from the progress record first instead of sending it again.
    if (r.transactional !== undefined) r.settled = false
    yield* r.store.updateMany(
      r.collection,
      { _id: { $in: batch.map((entry) => entry.id) }, ...pendingFilter } as never,
      { $set: { [STATE]: "published", [`${FIELD}.publishedAt`]: now } }
    )
    if (r.transactional !== undefined) r.settled = true
    r.published += batch.length
    // A document handed over while this read had it already (written just before the read): sent once.
    if (r.written.length > 0) {
      const sent = new Set(batch.map((entry) => String(entry.id)))
      const rest = r.written.filter((document) => !sent.has(String(document["_id"])))
      r.written.splice(0, r.written.length, ...rest)
    }
  })

/** How many marks of handed-over documents are in flight at once. */
const MARKS_IN_FLIGHT = 16

/**
 * Marks handed-over documents published, one update by `_id` alone each (a filter on the state too would
 * make FerretDB read the whole collection): this relay sent them, whatever else moved them since.
 */
const markEach: Mark = (r, batch) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const set = { $set: { [STATE]: "published", [`${FIELD}.publishedAt`]: now } }
    yield* Effect.forEach(batch, (entry) => r.store.updateOne(r.collection, { _id: entry.id } as never, set), {
      concurrency: MARKS_IN_FLIGHT,
      discard: true
    })
    r.published += batch.length
  })

/** After a failed send: stop (rejected, fenced, an outage), or split a poison batch and mark a single poison document dead. */
const afterFailedSend = (
  r: Relay,
  batch: ReadonlyArray<Encoded>,
  cause: Cause.Cause<KafkaError | CircuitBreakerError>,
  mark: Mark
): Effect.Effect<boolean, MongoStore.MongoStoreError | CircuitBreakerError> =>
  Effect.gen(function*() {
    const error = cause.reasons.find((reason) => reason._tag === "Fail")
    // Refused by the breaker (another caller took the HALF_OPEN permit): nothing was sent, wait.
    if (error !== undefined && error.error instanceof CircuitBreakerError) return false
    r.failedSends++
    r.lastError = error === undefined ? "interrupted or defect" : errorMessage(error.error)
    if (r.transactional !== undefined && error !== undefined && KafkaProducer.isFenced(error.error)) {
      r.fenced = true
      yield* Effect.logError("outbox_relay_fenced").pipe(
        Effect.annotateLogs({
          collection: r.collection,
          topic: r.topic,
          transactional_id: r.transactionalId,
          message: r.lastError
        })
      )
      return false
    }
    // A poison refusal aborted the transaction; anything else may have committed: settle before the next send.
    if (error === undefined || !isPoison(error.error)) {
      r.settled = false
      r.unfenced = true
      return false
    }
    const refusal = error.error as KafkaError
    if (batch.length === 1) {
      yield* markDead(r, [batch[0]!.id], {
        reason: refusal.reason,
        protocolError: refusal.protocolError,
        message: refusal.message
      })
      return true
    }
    const half = Math.ceil(batch.length / 2)
    return (yield* sendBatch(r, batch.slice(0, half), mark)) && (yield* sendBatch(r, batch.slice(half), mark))
  })
