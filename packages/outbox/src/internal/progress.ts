/**
 * Exactly-once progress recovery: on start and after a send whose outcome is
 * unknown, a new transactional producer (fencing the previous one, settling
 * its open transaction), then the documents of the last committed batch,
 * named by the progress record, marked published.
 *
 * @internal
 */
import type { KafkaProducer } from "@neural-hive/kafka"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { ATTEMPT, FIELD, pendingFilter, type Relay, STATE } from "./relay.ts"

/** Resets the producer and marks the last committed batch published. Both Kafka calls go through the breaker. */
export const settle = (r: Relay, tx: KafkaProducer.TransactionalProducer) =>
  Effect.gen(function*() {
    if (r.unfenced) {
      yield* tx.reset
      r.unfenced = false
    }
    const attempt = yield* tx.committedMetadata(r.group, r.topic)
    let recovered = 0
    if (attempt !== undefined && attempt !== "") {
      const now = yield* Clock.currentTimeMillis
      const result = yield* r.store.updateMany(
        r.collection,
        { [ATTEMPT]: attempt, ...pendingFilter },
        { $set: { [STATE]: "published", [`${FIELD}.publishedAt`]: now } }
      )
      recovered = result.modifiedCount
      r.published += recovered
    }
    r.settled = true
    yield* Effect.logInfo("outbox_relay_settled").pipe(
      Effect.annotateLogs({ collection: r.collection, topic: r.topic, transactional_id: r.transactionalId, recovered })
    )
  }).pipe(Effect.withSpan("OutboxRelay.settle"))
