/**
 * A fix for kafkajs 2.2.4's request queue (tulios/kafkajs#1751, #1704; still open): after every response
 * or request timeout, `RequestQueue.scheduleCheckPendingRequests` computes `throttledUntil - Date.now()`
 * with `throttledUntil` still at its "never throttled" value `-1`, so with nothing pending it calls
 * `setTimeout(check, -1 - Date.now())`. Node 24 prints `TimeoutNegativeWarning: -1796… is a negative
 * number` (once per process) and runs the check after 1 ms, which schedules the next one the same way:
 * every open broker connection wakes up about 1,000 times a second for nothing, for as long as it lives.
 *
 * With nothing pending there is nothing to check: a request that has to wait (`push`) schedules its own
 * check, and each response or timeout checks again. So the patched method returns early then, and does
 * what kafkajs does otherwise. Applied once per kafkajs copy, by `KafkaProducer.make` (not on import:
 * the package has no import side effects); a kafkajs whose queue is not where 2.x keeps it is left as is.
 *
 * @internal
 */
import { createRequire } from "node:module"

interface Queue {
  readonly pending: ReadonlyArray<unknown>
}

interface QueueClass {
  readonly prototype: {
    scheduleCheckPendingRequests?: (this: Queue) => void
  }
}

const patched = Symbol.for("@neural-hive/kafka/requestQueue")

/** Makes kafkajs's request queue schedule no check while nothing is pending; true if it is (now) so. */
export const quietRequestQueue = (): boolean => {
  let RequestQueue: QueueClass
  try {
    // The copy `import "kafkajs"` loads: the same resolution from this file, and the same CommonJS cache.
    RequestQueue = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js") as QueueClass
  } catch {
    return false
  }
  const proto = RequestQueue.prototype as QueueClass["prototype"] & { [patched]?: true }
  if (proto[patched]) return true
  const original = proto.scheduleCheckPendingRequests
  if (typeof original !== "function") return false
  proto.scheduleCheckPendingRequests = function(this: Queue) {
    if (this.pending.length === 0) return
    original.call(this)
  }
  proto[patched] = true
  return true
}
