/**
 * One relay as its phases share it: what it relays (collection, topic, batch
 * size, key and value), its store, producer and breaker, and its counters.
 * `Outbox.make` builds it; the phases take it explicitly: the send round
 * (`sendRound.ts`: read, claim, send, mark, split a poison batch), the dead
 * tickets (`deadTickets.ts`), the exactly-once progress recovery
 * (`progress.ts`) and the backlog's measure (`backlog.ts`).
 *
 * @internal
 */
import type { KafkaProducer } from "@neural-hive/kafka"
import type { MongoStore } from "@neural-hive/mongodb"
import { redact } from "@neural-hive/resilience"
import type { Marked, OldestDead, Stats } from "../Outbox.ts"

/** The field of the mark in a document (`Outbox.FIELD`). */
export const FIELD = "outbox"
export const STATE = `${FIELD}.state`
export const ATTEMPT = `${FIELD}.attempt`
export const pendingFilter = { [STATE]: "pending" }
export const deadFilter = { [STATE]: "dead" }

export type Document = Marked<Record<string, unknown>>

/** A document read for a send: its `_id` and its message. */
export interface Encoded {
  readonly id: unknown
  readonly message: { readonly key: string; readonly value: string }
}

export interface Relay {
  readonly collection: string
  readonly topic: string
  readonly batchSize: number
  readonly key: (document: Document) => string
  readonly encode: (document: Document) => string
  readonly store: MongoStore.MongoStore["Service"]
  readonly producer: KafkaProducer.KafkaProducer["Service"]
  /** Exactly once only: the transactional producer, its id and the progress record's group. */
  readonly transactional: KafkaProducer.TransactionalProducer | undefined
  readonly transactionalId: string
  readonly group: string
  /** Exactly once: false until the progress record was read after the last start or unknown outcome. */
  settled: boolean
  /**
   * Exactly once: true until a new producer fenced the older ones after the last start or unknown outcome.
   * A progress read that failed after a fencing is tried again alone (the fencing stands), as after a
   * mark that failed (MongoDB out).
   */
  unfenced: boolean
  /** Fenced by a newer relay with the same `transactionalId`: it stops. */
  fenced: boolean
  /**
   * At least once: documents this process wrote pending and handed over (`notifyWritten`), oldest
   * first, at most `writtenLimit`: sent without being read back, and marked by `_id`.
   */
  readonly written: Array<Document>
  readonly writtenLimit: number
  /**
   * The collection must be read: on start, after a plain `notify`, a transition, a hand-over that did not
   * fit or was refused, or a failed send of handed-over documents; and every sweep interval.
   */
  scanNeeded: boolean
  /** When the collection was last read by a drain (Clock milliseconds). */
  lastScanAt: number
  /** The last round read fewer documents than a batch and every one of them was sent or marked dead. */
  readDry: boolean
  published: number
  failedSends: number
  lastError: string | undefined
  deadLettered: number
  /** As of the last measure. */
  pendingSeen: number
  oldestEnqueuedAt: number | undefined
  deadSeen: number
  oldestDead: OldestDead | undefined
}

/** What a relay is given; the rest of its state starts empty. */
type Given = Pick<
  Relay,
  | "collection"
  | "topic"
  | "batchSize"
  | "key"
  | "encode"
  | "store"
  | "producer"
  | "transactional"
  | "transactionalId"
  | "group"
>

/** A relay that has read nothing yet: its first drain reads the collection. */
export const fresh = (given: Given): Relay => ({
  ...given,
  settled: false,
  unfenced: true,
  fenced: false,
  written: [],
  writtenLimit: given.batchSize * WRITTEN_BATCHES,
  scanNeeded: true,
  lastScanAt: 0,
  readDry: false,
  published: 0,
  failedSends: 0,
  lastError: undefined,
  deadLettered: 0,
  pendingSeen: 0,
  oldestEnqueuedAt: undefined,
  deadSeen: 0,
  oldestDead: undefined
})

/** Hand-overs waiting at most, in batches: beyond, the relay reads the collection instead. */
const WRITTEN_BATCHES = 10

/** A document `notifyWritten` can send without reading it back: it has an `_id` and a pending mark. */
export const isHandOver = (document: object): boolean => {
  const fields = document as { readonly _id?: unknown; readonly outbox?: { readonly state?: unknown } }
  return fields._id !== undefined && fields._id !== null && fields.outbox?.state === "pending"
}

/** The relay's counters at `now` (Clock milliseconds). */
export const statsAt = (r: Relay, now: number): Stats => ({
  pending: r.pendingSeen,
  oldestPendingMillis: r.oldestEnqueuedAt === undefined ? 0 : Math.max(0, now - r.oldestEnqueuedAt),
  published: r.published,
  failedSends: r.failedSends,
  lastError: r.lastError,
  deadLettered: r.deadLettered,
  dead: r.deadSeen,
  oldestDead: r.oldestDead
})

export const errorMessage = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error)

const MAX_REASON_CHARS = 500

/** A dead document's reason as stored and logged: redacted, cut to 500 characters. */
export const deadMessage = (text: string): string => {
  const clean = redact(text)
  return clean.length <= MAX_REASON_CHARS ? clean : `${clean.slice(0, MAX_REASON_CHARS)}...(${clean.length} chars)`
}

/** What a relay needs in the context, for `Outbox.make`'s type. */
export type Requirements = MongoStore.MongoStore | KafkaProducer.KafkaProducer
