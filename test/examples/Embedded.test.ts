/**
 * The embedded demo's in-memory dependencies stay bounded: more plans than
 * the capacity keep the stores at their limits (entries and bytes), the
 * oldest are evicted, and a lookup or insert costs the same at the end as at
 * the start (the MongoDB double used to scan every stored document per insert).
 */
import { assert, describe, it } from "@effect/vitest"
import { BoundedStore } from "@neural-hive/example-orchestrator-dynamic/BoundedStore"
import * as Embedded from "@neural-hive/example-orchestrator-dynamic/Embedded"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { RedisCache } from "@neural-hive/redis"
import { TemporalClient } from "@neural-hive/temporal"
import { Duration, Effect, Fiber, Layer, Logger, Option, Tracer } from "effect"
import { TestClock } from "effect/testing"

const limits = { capacity: 100, maxBytes: 1024 * 1024 }

const embedded = (l = limits) =>
  Embedded.layer(OrchestratorConfig.defaults, l).pipe(Layer.provideMerge(Embedded.Faults.layer()))

describe("BoundedStore", () => {
  it("keeps at most capacity entries and maxBytes, evicting the least recently used", () => {
    const store = new BoundedStore<number, string>({ capacity: 10, maxBytes: 10_000 })
    for (let i = 0; i < 1_000; i++) {
      store.set(i, "x")
      if (i === 5) store.get(0)
    }
    assert.strictEqual(store.size, 10)
    assert.deepStrictEqual([...store.keys()], [990, 991, 992, 993, 994, 995, 996, 997, 998, 999])
    assert.strictEqual(store.evicted, 990)

    const recent = new BoundedStore<number, string>({ capacity: 3, maxBytes: Infinity })
    recent.set(1, "a").set(2, "b").set(3, "c")
    recent.get(1)
    recent.set(4, "d")
    assert.deepStrictEqual([...recent.keys()], [3, 1, 4])

    // Large values: the byte limit binds first.
    const big = new BoundedStore<number, string>({ capacity: 1_000_000, maxBytes: 1024 * 1024 })
    for (let i = 0; i < 1_000; i++) big.set(i, "y".repeat(10_000))
    assert.isAtMost(big.bytes, 1024 * 1024)
    assert.strictEqual(big.size, Math.floor(1024 * 1024 / (2 * 10_000 + 16)))
    big.delete(999)
    assert.isFalse(big.has(999))
  })
})

describe("Embedded stores", () => {
  it.effect("more writes than the capacity: each store keeps the newest `capacity`, the oldest are gone", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoStore.MongoStore
      const cache = yield* RedisCache.RedisCache
      const temporal = yield* TemporalClient.TemporalClient
      const kafka = yield* KafkaProducer.KafkaProducer
      for (let i = 0; i < 1_000; i++) {
        yield* mongo.insertOne("tickets", { _id: `ticket-${i}`, n: i } as never)
        yield* cache.setex(`plan:${i}`, 300, `ticket ${i}`)
        yield* temporal.startWorkflow("orchestratePlan", { workflowId: `plan-${i}`, taskQueue: "q", args: [] })
        yield* kafka.send({ topic: "execution-tickets", messages: [{ key: `ticket-${i}`, value: `ticket ${i}` }] })
      }
      const all = yield* mongo.find("tickets", {}, { limit: 10_000 })
      assert.strictEqual(all.length, 100)
      assert.isTrue(Option.isNone(yield* mongo.findOne("tickets", { _id: "ticket-0" } as never)))
      assert.isTrue(Option.isSome(yield* mongo.findOne("tickets", { _id: "ticket-999" } as never)))
      // The index still answers duplicates of what it holds.
      const duplicate = yield* Effect.flip(mongo.insertOne("tickets", { _id: "ticket-999" } as never))
      assert.strictEqual(duplicate._tag === "MongoStoreError" ? duplicate.reason : duplicate._tag, "DuplicateKey")

      assert.isTrue(Option.isNone(yield* cache.get("plan:0")))
      assert.deepStrictEqual(yield* cache.get("plan:999"), Option.some("ticket 999"))

      const gone = yield* Effect.flip(temporal.describeWorkflow("plan-0"))
      assert.strictEqual(gone._tag === "TemporalError" ? gone.reason : gone._tag, "NotFound")
      yield* temporal.describeWorkflow("plan-999")

      // Kafka offsets keep growing past the capacity (only old messages are dropped).
      const [sent] = yield* kafka.send({ topic: "execution-tickets", messages: [{ value: "last" }] })
      assert.strictEqual(sent?.baseOffset, "1000")
    }).pipe(Effect.provide(embedded())))

  it.effect("large plans: the byte limit bounds memory whatever the document size", () =>
    Effect.gen(function*() {
      const mongo = yield* MongoStore.MongoStore
      const steps = Array.from({ length: 100 }, () => "s".repeat(200))
      for (let i = 0; i < 500; i++) yield* mongo.insertOne("tickets", { _id: `big-${i}`, steps } as never)
      const kept = (yield* mongo.find("tickets", {}, { limit: 10_000 })).length
      // About 40 KB each in memory, 1 MiB in all: 25 documents, not 500.
      assert.isAtLeast(kept, 20)
      assert.isAtMost(kept, 30)
    }).pipe(Effect.provide(embedded({ capacity: 10_000, maxBytes: 1024 * 1024 }))))

  it.effect(
    "inserts and lookups cost the same when the store is full as when it is empty (O(1))",
    () =>
      Effect.gen(function*() {
        const mongo = yield* MongoStore.MongoStore
        const block = (from: number) =>
          Effect.gen(function*() {
            const started = performance.now()
            for (let i = from; i < from + 5_000; i++) {
              yield* mongo.insertOne("tickets", { _id: `t-${i}` } as never)
              yield* mongo.findOne("tickets", { _id: `t-${i}` } as never)
            }
            return performance.now() - started
          })
        yield* block(0) // warm-up
        // The faster of two blocks each time: a pause of the shared machine must not decide the test.
        const early = Math.min(yield* block(5_000), yield* block(10_000))
        for (let from = 15_000; from < 35_000; from += 5_000) yield* block(from)
        const late = Math.min(yield* block(35_000), yield* block(40_000))
        // A scan per insert made the late blocks ~7x the early ones (quadratic); allow noise on a shared machine.
        assert.isBelow(late, early * 3 + 100, `early ${early.toFixed(0)} ms, late ${late.toFixed(0)} ms`)
        assert.strictEqual((yield* mongo.find("tickets", {}, { limit: 100_000 })).length, 10_000)
      }).pipe(Effect.provide(embedded({ capacity: 10_000, maxBytes: 64 * 1024 * 1024 }))),
    60_000
  )
})

describe("Embedded dependencies: the integrations' skeleton", () => {
  it.effect("each call is the integration's span; a slow call is its timeout error; Redis fails open, logged", () =>
    Effect.gen(function*() {
      const spans: Array<Tracer.NativeSpan> = []
      const tracer = Tracer.make({
        span: (options) => {
          const span = new Tracer.NativeSpan(options)
          spans.push(span)
          return span
        }
      })
      const logs: Array<readonly [string, string]> = []
      const capture = Logger.make((options) => {
        logs.push([options.logLevel, String(options.message)])
      })
      const settings = {
        ...OrchestratorConfig.defaults,
        kafka: { ...OrchestratorConfig.defaults.kafka, callTimeout: Duration.seconds(1) }
      }
      yield* Effect.gen(function*() {
        const producer = yield* KafkaProducer.KafkaProducer
        const cache = yield* RedisCache.RedisCache
        const faults = yield* Embedded.Faults
        yield* producer.send({ topic: "tickets", messages: [{ value: "t-1" }] })
        yield* faults.set("kafka", "slow")
        const slow = yield* Effect.forkChild(
          Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "t-2" }] }))
        )
        // Each attempt runs to the 1 s call timeout; Kafka's retry policy tries twice more (within its budget).
        for (let i = 0; i < 50 && slow.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
        const timedOut = yield* Fiber.join(slow)
        assert.strictEqual(timedOut instanceof KafkaError && timedOut.reason, "Timeout")
        // The first attempt and its two retries, each a timeout the breaker counted.
        assert.strictEqual(producer.breaker.view.totals().failures, 3)
        yield* faults.set("redis", "down")
        assert.isTrue(Option.isNone(yield* cache.get("plan:p1")))
      }).pipe(
        Effect.provide(
          Embedded.layer(settings, limits).pipe(Layer.provideMerge(Embedded.Faults.layer()))
        ),
        Effect.withTracer(tracer),
        Effect.provide(Logger.layer([capture]))
      )
      const send = spans.find((s) => s.name === "KafkaProducer.send")
      assert.deepStrictEqual([send?.kind, send?.attributes.get("messaging.batch.topics")], ["producer", "tickets"])
      assert.isDefined(spans.find((s) => s.name === "RedisCache.GET"))
      assert.deepInclude(logs, ["Warn", "redis GET failed open"])
    }))
})
