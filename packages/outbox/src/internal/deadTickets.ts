/**
 * Dead tickets: a document Kafka refuses as its own fault (or that the `key`
 * or `encode` option cannot encode) is marked `dead` with the reason, counted
 * and logged; `Outbox.requeue` puts it back.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { DeadReason } from "../Outbox.ts"
import { deadMessage, FIELD, pendingFilter, type Relay, STATE } from "./relay.ts"

/** Marks documents `dead` with the reason; only those still pending (a requeue or another relay may have moved them). */
export const markDead = (r: Relay, ids: ReadonlyArray<unknown>, why: DeadReason) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const error: DeadReason = why.protocolError === undefined
      ? { reason: why.reason, message: deadMessage(why.message) }
      : { reason: why.reason, protocolError: why.protocolError, message: deadMessage(why.message) }
    const result = yield* r.store.updateMany(
      r.collection,
      { _id: { $in: ids }, ...pendingFilter } as never,
      { $set: { [STATE]: "dead", [`${FIELD}.deadAt`]: now, [`${FIELD}.error`]: error } }
    )
    r.deadLettered += result.modifiedCount
    r.lastError = `${why.reason}: ${error.message}`
    yield* Effect.logWarning("outbox_ticket_dead").pipe(
      Effect.annotateLogs({
        collection: r.collection,
        topic: r.topic,
        ids: ids.map(String).join(","),
        reason: error.reason,
        protocol_error: error.protocolError ?? "",
        message: error.message
      })
    )
  })
