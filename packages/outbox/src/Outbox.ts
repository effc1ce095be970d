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
 * - Hand-overs: a writer that passes the document it wrote to `notifyWritten`
 *   spares the relay a read of the collection (at least once): the relay sends it
 *   as written and marks it by `_id` alone, and reads the collection only on a
 *   sweep, a transition, or when a hand-over cannot be taken.
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
 *   const ticket = Outbox.pending({ _id: "t-1", plan: "p-1" }, now)
 *   yield* mongo.insertOne("tickets", ticket)
 *   yield* relay.notifyWritten(ticket)
 * })
 * ```
 *
 * @since 0.1.0
 */
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import type { CircuitBreakerError, CircuitBreakerOptionsError } from "@neural-hive/resilience"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { measure } from "./internal/backlog.ts"
import * as internalOptions from "./internal/options.ts"
import * as Poison from "./internal/poison.ts"
import * as Relay from "./internal/relay.ts"
import { round, writtenRound } from "./internal/sendRound.ts"

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
export const FIELD: "outbox" = Relay.FIELD

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
  /**
   * Pending documents as of the last read of the collection (every sweep, and every drain that reads it:
   * exact after each). Documents handed over with `notifyWritten` and sent are never counted.
   */
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
  /** Asks the relay to publish soon (after a write): it reads the collection for pending documents; never waits for Kafka. */
  readonly notify: Effect.Effect<void>
  /**
   * Hands the relay a document this process has just written pending (after the write succeeded, the
   * document as written, with its mark): with `delivery: "at-least-once"` the relay sends it without
   * reading the collection, and marks it published by its `_id` alone. A relay reads the collection only
   * on a sweep (every `sweepInterval`), a transition, a plain `notify`, or when a hand-over cannot be
   * taken: more than `10 × batchSize` waiting, a document with no `_id` or not marked pending, exactly-once
   * delivery, or a failed send (the documents are stored pending, and the read finds them). A document
   * written just before a sweep's read is sent once. Never waits for Kafka.
   */
  readonly notifyWritten: <D extends object>(document: Marked<D>) => Effect.Effect<void>
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
export const isPoison: (error: unknown) => boolean = Poison.isPoison

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
  const settings = yield* internalOptions.validate(options)
  const { collection, topic, transactionalId } = settings
  const store = yield* MongoStore.MongoStore
  const producer = yield* KafkaProducer.KafkaProducer
  const transactional = settings.delivery === "exactly-once"
    ? yield* producer.transactional(transactionalId).pipe(
      Effect.mapError((e) => internalOptions.bad("transactionalId", transactionalId, e.expected))
    )
    : undefined
  const r = Relay.fresh({
    collection,
    topic,
    batchSize: settings.batchSize,
    key: settings.key,
    encode: settings.encode,
    store,
    producer,
    transactional,
    transactionalId,
    group: progressGroup(transactionalId)
  })
  const wake = yield* Queue.sliding<void>(1)
  const oneAtATime = yield* Semaphore.make(1)

  // HALF_OPEN: one document is the trial; CLOSED: publish what queued up while Kafka was out.
  yield* producer.breaker.listen({
    onTransition: (transition) => {
      if (transition.to === "Open") return
      r.scanNeeded = true
      Queue.offerUnsafe(wake, undefined)
    }
  })

  /** The handed-over documents, then (when asked, or a sweep interval after the last) the collection's. */
  const drainWith = (scan: (now: number) => boolean): Effect.Effect<number> =>
    oneAtATime.withPermits(1)(
      Effect.gen(function*() {
        const before = r.published
        while (yield* writtenRound(r)) {
          // more handed over: go on while the breaker stays CLOSED
        }
        const now = yield* Clock.currentTimeMillis
        if (scan(now)) {
          r.scanNeeded = false
          r.lastScanAt = now
          while (yield* round(r)) {
            // more to publish: go on while the breaker stays CLOSED
          }
          yield* Effect.ignore(measure(r))
        }
        return r.published - before
      })
    )
  const drain = drainWith(() => true)
  const sweepMillis = settings.sweepMillis
  const backgroundDrain = drainWith((now) => r.scanNeeded || now - r.lastScanAt >= sweepMillis)

  // Sweeps on start, on every wake-up, and every sweepInterval.
  yield* Effect.forkScoped(
    Effect.forever(
      Effect.andThen(backgroundDrain, Effect.raceFirst(Queue.take(wake), Effect.sleep(sweepMillis)))
    )
  )

  const clock = yield* Clock.Clock
  const statsUnsafe = (): Stats => Relay.statsAt(r, clock.currentTimeMillisUnsafe())
  const wakeUp = Effect.asVoid(Queue.offer(wake, undefined))
  const notify = Effect.andThen(Effect.sync(() => (r.scanNeeded = true)), wakeUp)
  const notifyWritten = <D extends object>(document: Marked<D>) =>
    Effect.andThen(
      Effect.sync(() => {
        if (r.transactional === undefined && r.written.length < r.writtenLimit && Relay.isHandOver(document)) {
          r.written.push(document as unknown as Relay.Document)
        } else {
          r.scanNeeded = true
        }
      }),
      wakeUp
    )
  return OutboxRelay.of({
    notify,
    notifyWritten,
    drain,
    stats: Effect.sync(statsUnsafe),
    statsUnsafe,
    requeue: (id) => requeue(r, notify, id),
    requeueAllDead: requeueAllDead(r, notify)
  })
})

/** Puts one dead document back to pending; the same request again (a retry after a lost answer) is `AlreadyPending`. */
const requeue = (r: Relay.Relay, notify: Effect.Effect<void>, id: unknown) =>
  Effect.gen(function*() {
    const { collection, store } = r
    const now = yield* Clock.currentTimeMillis
    const moved = yield* store.updateOne(
      collection,
      { _id: id, ...Relay.deadFilter } as never,
      { $set: { [Relay.STATE]: "pending", [`${FIELD}.requeuedAt`]: now } }
    )
    if (moved.matchedCount > 0) {
      yield* Effect.logWarning("outbox_ticket_requeued").pipe(Effect.annotateLogs({ collection, id: String(id) }))
      yield* notify
      return "Requeued" as const
    }
    const found = yield* store.findOne<Relay.Document>(collection, { _id: id } as never, {
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

/** Puts every dead document back to pending; how many. */
const requeueAllDead = (r: Relay.Relay, notify: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const moved = yield* r.store.updateMany(
      r.collection,
      Relay.deadFilter,
      { $set: { [Relay.STATE]: "pending", [`${FIELD}.requeuedAt`]: now } }
    )
    yield* Effect.logWarning("outbox_dead_requeued").pipe(
      Effect.annotateLogs({ collection: r.collection, count: moved.modifiedCount })
    )
    if (moved.modifiedCount > 0) yield* notify
    return moved.modifiedCount
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
