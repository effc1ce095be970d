/**
 * The backlog's measure, after each drain: the pending documents and the
 * oldest of them, the dead documents and the one dead the longest.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { deadFilter, type Document, FIELD, pendingFilter, type Relay } from "./relay.ts"

/**
 * Counts the backlog and its oldest entry, and the dead documents and the oldest of them (two reads each,
 * one when none). After a drain whose last read came back short with every document sent (`readDry`), the
 * backlog is known to be empty without reading it.
 */
export const measure = (r: Relay) =>
  Effect.gen(function*() {
    if (r.readDry) {
      r.oldestEnqueuedAt = undefined
      r.pendingSeen = 0
    } else {
      const oldest = yield* r.store.find<Document>(r.collection, pendingFilter, {
        limit: 1,
        sort: { [`${FIELD}.enqueuedAt`]: 1 },
        projection: { [`${FIELD}.enqueuedAt`]: 1 }
      })
      r.oldestEnqueuedAt = oldest[0]?.outbox.enqueuedAt
      r.pendingSeen = oldest.length === 0 ? 0 : yield* r.store.countDocuments(r.collection, pendingFilter)
    }
    const dead = yield* r.store.find<Document>(r.collection, deadFilter, {
      limit: 1,
      sort: { [`${FIELD}.deadAt`]: 1 },
      projection: { [`${FIELD}.deadAt`]: 1, [`${FIELD}.error.reason`]: 1 }
    })
    const first = dead[0]
    r.oldestDead = first === undefined ? undefined : {
      id: String(first["_id"]),
      deadAt: first.outbox.deadAt ?? 0,
      reason: first.outbox.error?.reason ?? "Unknown"
    }
    r.deadSeen = first === undefined ? 0 : yield* r.store.countDocuments(r.collection, deadFilter)
  })
