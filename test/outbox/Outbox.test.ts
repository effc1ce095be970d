/**
 * The outbox relay against real servers: a private Kafka broker (killed and restarted for the
 * outage) and the shared MongoDB-protocol server (FerretDB). Documents written with their pending
 * mark while Kafka is down are published once it is back, without a single call rejected by our
 * own breaker; everything ends in Kafka exactly once, read back by a plain consumer. Both ways of waking
 * the relay after a write: `notify` (it reads the collection) and `notifyWritten` (it sends the document
 * handed over, and reads the collection only when that send fails).
 */
import { assert, describe, inject, it } from "@effect/vitest"
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { Clock, Effect, Layer } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { afterAll, beforeAll } from "vitest"
import { type ServerHandle, startKafka } from "../../tools/rig/servers.ts"
import { eventually } from "../integration/eventually.ts"

const TOPIC = "outbox-tickets"
let kafka: ServerHandle

const raw = () =>
  new Kafka({
    clientId: "outbox-raw",
    brokers: [kafka.endpoint],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    retry: { retries: 5 }
  })

beforeAll(async () => {
  kafka = await startKafka({ startTimeoutMs: 180_000 })
  const admin = raw().admin()
  await admin.connect()
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: TOPIC, numPartitions: 1 }] })
  } finally {
    await admin.disconnect()
  }
}, 240_000)

afterAll(async () => {
  await kafka?.stop()
}, 60_000)

/** Every key on the topic starting with `prefix`, with how many times it is there. */
const readBack = async (prefix: string, expected: number): Promise<Map<string, number>> => {
  const consumer = raw().consumer({ groupId: `outbox-read-${Math.random()}` })
  const counts = new Map<string, number>()
  await consumer.connect()
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true })
    let seen = 0
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          const key = message.key?.toString() ?? "<none>"
          if (!key.startsWith(prefix)) return
          counts.set(key, (counts.get(key) ?? 0) + 1)
          if (++seen >= expected) resolve()
        }
      })
    })
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 20_000))])
    // A little longer, so a duplicate after the expected count would be seen too.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
  } finally {
    await consumer.disconnect()
  }
  return counts
}

describe("Outbox relay (real Kafka and MongoDB)", () => {
  it.live.each(
    [
      ["notify", "n"],
      ["notifyWritten", "w"]
    ] as const
  )("queues through a Kafka outage and publishes every document once when Kafka is back (%s)", ([how, prefix]) => {
    const collection = `tickets_${prefix}_${Date.now()}`
    const layer = Outbox.layer({ collection, topic: TOPIC, batchSize: 20, sweepInterval: "1 second" }).pipe(
      Layer.provideMerge(
        KafkaProducer.layer({
          brokers: [kafka.endpoint],
          clientId: "outbox-it",
          connectionTimeout: "1 second",
          requestTimeout: "2 seconds",
          sendTimeout: "4 seconds",
          logLevel: "None",
          breaker: { failMax: 2, recoveryTimeout: "1 second", maxOpenDuration: "2 seconds" }
        })
      ),
      Layer.provideMerge(MongoStore.layer({ url: `${inject("mongodbUrl")}outbox` }))
    )
    return Effect.gen(function*() {
      const relay = yield* Outbox.OutboxRelay
      const store = yield* MongoStore.MongoStore
      const producer = yield* KafkaProducer.KafkaProducer
      const write = (from: number, count: number) =>
        Effect.forEach(Array.from({ length: count }, (_, i) => from + i), (i) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const document = Outbox.pending({ _id: `${prefix}-${i}`, plan: `p-${i}` }, now)
            yield* store.insertOne(collection, document)
            // notifyWritten: sent as written, marked by _id alone; a failed send leaves it to a read.
            yield* how === "notify" ? relay.notify : relay.notifyWritten(document)
          }), { discard: true })

      // 1. Kafka up: 50 documents published, in batches of at most 20.
      yield* write(0, 50)
      yield* eventually(relay.stats, (s) => s.published === 50 && s.pending === 0, 30_000)

      // 2. Kafka down: 60 more documents are stored with their mark; the breaker opens on the relay's
      //    failed sends and the relay then waits instead of calling.
      yield* Effect.promise(() => kafka.kill())
      yield* write(50, 60)
      yield* eventually(producer.breaker.state, (s) => s !== "Closed", 30_000)
      yield* Effect.sleep("3 seconds")
      const during = yield* relay.stats
      assert.strictEqual(during.published, 50)
      assert.strictEqual(during.pending, 60)
      assert.isAbove(during.oldestPendingMillis, 0)
      assert.strictEqual((yield* producer.breaker.snapshot).totals.rejected, 0) // no call refused by our own breaker

      // 3. Kafka back: the backlog drains with no new write to trigger it.
      yield* Effect.promise(() => kafka.restart())
      yield* eventually(relay.stats, (s) => s.published === 110 && s.pending === 0, 60_000)
      const left = yield* store.find(collection, { "outbox.state": "pending" }, { limit: 10 })
      assert.strictEqual(left.length, 0)

      const counts = yield* Effect.promise(() => readBack(`${prefix}-`, 110))
      assert.strictEqual(counts.size, 110)
      const duplicated = [...counts.entries()].filter(([, n]) => n > 1)
      assert.deepStrictEqual(duplicated, [])
    }).pipe(Effect.provide(layer), Effect.scoped)
  }, 180_000)

  it.effect("bad options are typed errors naming the option", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Outbox.make({ collection: "c", topic: "t", batchSize: 0 }).pipe(Effect.scoped)
      )
      assert.strictEqual(error.option, "batchSize")
    }).pipe(
      Effect.provide(Layer.mergeAll(
        Layer.succeed(MongoStore.MongoStore)({} as MongoStore.MongoStore["Service"]),
        Layer.succeed(KafkaProducer.KafkaProducer)({} as KafkaProducer.KafkaProducer["Service"])
      ))
    ))
})
