/**
 * The embedded MongoDB's indexes answer what a scan answered: queries on
 * `_id`, `$in` of ids and the outbox's indexed fields find the same documents,
 * the indexes follow every update, delete and eviction, and an indexed query
 * touches only the documents it names (a store full of published tickets does
 * not slow a read of the pending ones).
 */
import { assert, describe, it } from "@effect/vitest"
import * as DocumentStore from "@neural-hive/example-orchestrator-dynamic/DocumentStore"
import { Effect } from "effect"

const ticket = (state: string, extra: Record<string, unknown> = {}) => ({ outbox: { state, ...extra } })

describe("DocumentStore", () => {
  it.effect("an indexed query follows inserts, updates, deletes and evictions", () =>
    Effect.gen(function*() {
      const store = DocumentStore.make({ capacity: 5, maxBytes: Infinity })
      for (let i = 0; i < 4; i++) yield* store.insertOne("tickets", ticket("pending", { n: i }))
      yield* store.insertOne("other", ticket("pending"))
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.state": "pending" }), 4)
      assert.strictEqual(yield* store.countDocuments("other", { "outbox.state": "pending" }), 1)

      // Moved out of "pending" by $set: the index follows.
      const moved = yield* store.updateMany(
        "tickets",
        { _id: { $in: ["embedded-1", "embedded-2", "embedded-1"] }, "outbox.state": "pending" },
        { $set: { "outbox.state": "published" } }
      )
      assert.strictEqual((moved as { modifiedCount: number }).modifiedCount, 2)
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.state": "pending" }), 2)
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.state": "published" }), 2)
      const pending = yield* store.find("tickets", { "outbox.state": "pending" }, 10)
      assert.deepStrictEqual((pending as Array<{ _id: string }>).map((d) => d._id), ["embedded-3", "embedded-4"])

      yield* store.deleteOne("tickets", { _id: "embedded-3" })
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.state": "pending" }), 1)

      // A scan (no index on n) agrees with the index.
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.n": 3 }), 1)
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.n": 2 }), 0)

      // Store order now: 4, other's 5, then 1 and 2 (re-stored by the update). Five inserts over capacity 5
      // evict those four: the indexes forget them.
      for (let i = 0; i < 5; i++) yield* store.insertOne("tickets", ticket("dead"))
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.state": "published" }), 0)
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.state": "pending" }), 0)
      assert.strictEqual(yield* store.countDocuments("other", { "outbox.state": "pending" }), 0)
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.state": "dead" }), 5)
    }))

  it.effect("an indexed query with other conditions still checks them", () =>
    Effect.gen(function*() {
      const store = DocumentStore.make({ capacity: 100, maxBytes: Infinity })
      yield* store.insertOne("tickets", ticket("pending", { attempt: "a" }))
      yield* store.insertOne("tickets", ticket("pending"))
      assert.strictEqual(
        yield* store.countDocuments("tickets", { "outbox.state": "pending", "outbox.attempt": { $exists: false } }),
        1
      )
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.attempt": "a" }), 1)
      assert.strictEqual(yield* store.countDocuments("tickets", { "outbox.attempt": "b" }), 0)
    }))

  it.effect("an indexed query reads only what it names: pending among 20,000 published costs as with none", () =>
    Effect.gen(function*() {
      const store = DocumentStore.make({ capacity: 30_000, maxBytes: Infinity })
      for (let i = 0; i < 20_000; i++) yield* store.insertOne("tickets", ticket("published"))
      yield* store.insertOne("tickets", ticket("pending"))
      // Counted, not timed: every document the query's filter is matched against.
      const seen = { n: 0 }
      const counting = new Proxy({ "outbox.state": "pending" }, {
        ownKeys: (target) => {
          seen.n++
          return Reflect.ownKeys(target)
        }
      })
      assert.strictEqual(yield* store.countDocuments("tickets", counting), 1)
      assert.isAtMost(seen.n, 5)
    }))
})
