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
 * - At least once: a document is marked published only after Kafka acknowledged
 *   it. A crash (or an unknown send outcome, a timeout) between the two publishes
 *   it again, with the same key: consumers deduplicate by key (or the topic is
 *   compacted). With the idempotent producer, retries inside one send never
 *   duplicate.
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
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { CircuitBreaker, CircuitBreakerError, CircuitBreakerOptionsError } from "@neural-hive/resilience"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
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
  readonly state: "pending" | "published"
  /** When the document was written (Clock milliseconds): the backlog's age comes from it. */
  readonly enqueuedAt: number
  readonly publishedAt?: number | undefined
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
}

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
}

const defaultKey = (document: Record<string, unknown>): string => String(document["_id"])

const defaultEncode = (document: Record<string, unknown>): string => {
  const { outbox: _, ...rest } = document
  return JSON.stringify(rest)
}

const errorMessage = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error)

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
  const bad = (option: string, value: unknown, expected: string) =>
    new CircuitBreakerOptionsError({ circuit: "outbox", option, value, expected })
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
  const { collection, topic } = options
  const key = options.key ?? defaultKey
  const encode = options.encode ?? defaultEncode

  const store = yield* MongoStore.MongoStore
  const producer = yield* KafkaProducer.KafkaProducer
  const breaker = producer.breaker
  const wake = yield* Queue.sliding<void>(1)
  const oneAtATime = yield* Semaphore.make(1)
  let published = 0
  let failedSends = 0
  let pendingSeen = 0
  let oldestEnqueuedAt: number | undefined
  let lastError: string | undefined

  // HALF_OPEN: one document is the trial; CLOSED: publish what queued up while Kafka was out.
  yield* breaker.listen({
    onTransition: (transition) => {
      if (transition.to !== "Open") Queue.offerUnsafe(wake, undefined)
    }
  })

  const pendingFilter = { [`${FIELD}.state`]: "pending" }

  /** Counts the backlog and its oldest entry (two indexed reads). */
  const measure = Effect.gen(function*() {
    const oldest = yield* store.find<Marked<Record<string, unknown>>>(collection, pendingFilter, {
      limit: 1,
      sort: { [`${FIELD}.enqueuedAt`]: 1 },
      projection: { [`${FIELD}.enqueuedAt`]: 1 }
    })
    oldestEnqueuedAt = oldest[0]?.outbox.enqueuedAt
    pendingSeen = oldest.length === 0 ? 0 : yield* store.countDocuments(collection, pendingFilter)
  })

  /** One round: a batch read, one send, one update. `false` when there is nothing more to do now. */
  const round: Effect.Effect<boolean> = Effect.gen(function*() {
    const state = yield* breaker.state
    if (state === "Open") return false
    const batch = yield* store.find<Marked<Record<string, unknown>>>(collection, pendingFilter, {
      limit: state === "HalfOpen" ? 1 : batchSize,
      sort: { [`${FIELD}.enqueuedAt`]: 1 }
    })
    if (batch.length === 0) return false
    const sent = yield* Effect.exit(
      producer.send({ topic, messages: batch.map((document) => ({ key: key(document), value: encode(document) })) })
        .pipe(Effect.withSpan("OutboxRelay.publish", { attributes: { "outbox.batch_size": batch.length } }))
    )
    if (Exit.isFailure(sent)) {
      const error = sent.cause.reasons.find((reason) => reason._tag === "Fail")
      // Refused by the breaker (another caller took the HALF_OPEN permit): nothing was sent, wait.
      if (error !== undefined && error.error instanceof CircuitBreakerError) return false
      failedSends++
      lastError = error === undefined ? "interrupted or defect" : errorMessage(error.error)
      return false
    }
    const now = yield* Clock.currentTimeMillis
    const ids = batch.map((document) => document["_id"])
    yield* store.updateMany(
      collection,
      { _id: { $in: ids }, ...pendingFilter },
      { $set: { [`${FIELD}.state`]: "published", [`${FIELD}.publishedAt`]: now } }
    )
    published += batch.length
    return batch.length === batchSize || state === "HalfOpen"
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
    lastError
  })
  return OutboxRelay.of({
    notify: Effect.asVoid(Queue.offer(wake, undefined)),
    drain,
    stats: Effect.sync(statsUnsafe),
    statsUnsafe
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
