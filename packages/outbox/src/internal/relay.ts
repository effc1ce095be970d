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
