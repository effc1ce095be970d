/**
 * The relay's exactly-once mode on real servers: a private Kafka broker behind the rig's fault proxy
 * (the broker advertises the proxy, so every kafkajs connection goes through it) and the shared
 * MongoDB-protocol server. A `read_committed` consumer reads each topic back:
 * 1. a send slowed past `sendTimeout` (its outcome unknown) and its connections cut: the relay settles
 *    from the progress record and resumes; each ticket once to `read_committed`;
 * 2. a second relay with the same transactionalId fences the first, which stops;
 * 3. a crash between Kafka's commit and the MongoDB mark (the commit done by hand, as the relay does it,
 *    then a new relay): the ticket is marked published from the progress record and never sent again.
 */
import { assert, describe, inject, it } from "@effect/vitest"
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { Clock, Context, Effect, Layer } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { afterAll, beforeAll } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { freePort, type ServerHandle, startKafka } from "../../tools/rig/servers.ts"
import { eventually } from "../integration/eventually.ts"

let kafka: ServerHandle
let proxy: FaultProxy

const raw = () =>
  new Kafka({
    clientId: "outbox-eos-raw",
    brokers: [proxy.address],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    retry: { retries: 5 }
  })

beforeAll(async () => {
  const proxyPort = await freePort()
  kafka = await startKafka({ advertisedPort: proxyPort, startTimeoutMs: 180_000 })
  proxy = await FaultProxy.start({ port: proxyPort, targetPort: kafka.port })
}, 240_000)

afterAll(async () => {
  await proxy?.close()
  await kafka?.stop()
}, 60_000)

const createTopic = (topic: string) =>
  Effect.promise(async () => {
    const admin = raw().admin()
    await admin.connect()
    try {
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] })
    } finally {
      await admin.disconnect()
    }
  })

/** Every key on the topic with how many times a reader at this isolation level sees it (20 s at most, then 1 s more). */
const readBack = (topic: string, expected: number, isolation: "read_committed" | "read_uncommitted") =>
  Effect.promise(async () => {
    const consumer = raw().consumer({
      groupId: `outbox-eos-read-${Math.random()}`,
      readUncommitted: isolation === "read_uncommitted"
    })
    const counts = new Map<string, number>()
    await consumer.connect()
    try {
      await consumer.subscribe({ topic, fromBeginning: true })
      let seen = 0
      const done = new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message }) => {
            const key = message.key?.toString() ?? "<none>"
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
  })

const producerLayer = (clientId: string) =>
  KafkaProducer.layer({
    brokers: [proxy.address],
    clientId,
    connectionTimeout: "1 second",
    requestTimeout: "3 seconds",
    sendTimeout: "3 seconds",
    idempotent: true,
    logLevel: "None",
    breaker: { failMax: 3, recoveryTimeout: "1 second", maxOpenDuration: "2 seconds" }
  })

const mongoLayer = MongoStore.layer({ url: `${inject("mongodbUrl")}outbox` })

const relayLayer = (clientId: string, collection: string, topic: string, transactionalId: string) =>
  Outbox.layer({
    collection,
    topic,
    batchSize: 10,
    sweepInterval: "1 second",
    delivery: "exactly-once",
    transactionalId
  })
    .pipe(Layer.provideMerge(producerLayer(clientId)), Layer.provideMerge(mongoLayer))

const write = (collection: string, from: number, count: number) =>
  Effect.gen(function*() {
    const store = yield* MongoStore.MongoStore
    for (let i = from; i < from + count; i++) {
      const now = yield* Clock.currentTimeMillis
      yield* store.insertOne(collection, Outbox.pending({ _id: `t-${i}`, plan: `p-${i}` }, now + i) as never)
    }
  })

const published = (collection: string) =>
  Effect.gen(function*() {
    const store = yield* MongoStore.MongoStore
    return yield* store.countDocuments(collection, { "outbox.state": "published" })
  })

const unique = () => `${Date.now()}-${Math.floor(Math.random() * 1e6)}`

const onceEach = (counts: Map<string, number>, expected: number) => {
  assert.strictEqual(counts.size, expected)
  assert.deepStrictEqual([...counts.entries()].filter(([, n]) => n !== 1), [])
}

describe("Outbox relay, exactly once (real Kafka and MongoDB)", () => {
  it.live(
    "a send whose outcome is unknown (Kafka slowed past sendTimeout, connections cut): each ticket once to read_committed",
    () => {
      const suffix = unique()
      const topic = `outbox-eos-cut-${suffix}`
      const collection = `tickets_eos_cut_${suffix}`
      return Effect.gen(function*() {
        yield* createTopic(topic)
        const relay = yield* Outbox.OutboxRelay
        yield* write(collection, 0, 10)
        yield* relay.notify
        yield* eventually(relay.stats, (s) => s.published === 10, 30_000)

        // Every chunk 2 s late: the transaction (several round trips) runs past the 3 s sendTimeout.
        yield* Effect.promise(() => proxy.delay(2_000))
        yield* write(collection, 10, 10)
        yield* relay.notify
        yield* eventually(relay.stats, (s) => s.failedSends >= 1, 30_000)
        // Then the connections drop mid-transaction, and Kafka is fast again.
        proxy.cut()
        yield* Effect.promise(() => proxy.pass())
        yield* write(collection, 20, 10)
        yield* relay.notify
        yield* eventually(relay.stats, (s) => s.published === 30 && s.pending === 0, 60_000)
        assert.strictEqual(yield* published(collection), 30)
        onceEach(yield* readBack(topic, 30, "read_committed"), 30)
        const uncommitted = yield* readBack(topic, 30, "read_uncommitted")
        // What an aborted transaction left in the log is there for read_uncommitted readers only.
        assert.isAtLeast([...uncommitted.values()].reduce((a, b) => a + b, 0), 30)
      }).pipe(
        Effect.provide(relayLayer("outbox-eos-cut", collection, topic, `relay-cut-${suffix}`)),
        Effect.ensuring(Effect.promise(() => proxy.pass())),
        Effect.scoped
      )
    },
    180_000
  )

  it.live("a second relay with the same transactionalId fences the first, which stops", () => {
    const suffix = unique()
    const topic = `outbox-eos-fence-${suffix}`
    const collection = `tickets_eos_fence_${suffix}`
    const transactionalId = `relay-fence-${suffix}`
    return Effect.gen(function*() {
      yield* createTopic(topic)
      const first = yield* Layer.build(relayLayer("outbox-eos-first", collection, topic, transactionalId))
      const a = Context.get(first, Outbox.OutboxRelay)
      yield* write(collection, 0, 5).pipe(Effect.provide(mongoLayer))
      yield* a.notify
      yield* eventually(a.stats, (s) => s.published === 5, 30_000)

      const second = yield* Layer.build(relayLayer("outbox-eos-second", collection, topic, transactionalId))
      const b = Context.get(second, Outbox.OutboxRelay)
      // B's start (initTransactions with the same id) fences A.
      yield* b.drain
      yield* write(collection, 5, 5).pipe(Effect.provide(mongoLayer))
      yield* a.drain
      const fenced = yield* a.stats
      assert.strictEqual(fenced.published, 5)
      assert.match(fenced.lastError ?? "", /fenc|epoch/i)
      // A stays stopped; B publishes what A could not.
      yield* b.notify
      yield* eventually(b.stats, (s) => s.published === 5 && s.pending === 0, 30_000)
      yield* a.drain
      assert.strictEqual((yield* a.stats).published, 5)
      onceEach(yield* readBack(topic, 10, "read_committed"), 10)
    }).pipe(Effect.scoped)
  }, 180_000)

  it.live(
    "a crash between Kafka's commit and the MongoDB mark: the next relay marks it from the progress record, never resends",
    () => {
      const suffix = unique()
      const topic = `outbox-eos-crash-${suffix}`
      const collection = `tickets_eos_crash_${suffix}`
      const transactionalId = `relay-crash-${suffix}`
      return Effect.gen(function*() {
        yield* createTopic(topic)
        yield* write(collection, 0, 3).pipe(Effect.provide(mongoLayer))
        // The relay's first half, by hand: the attempt id on the documents, the batch and the progress record
        // committed in one transaction; then the process "dies" (the scope closes) before the mark.
        yield* Effect.gen(function*() {
          const store = yield* MongoStore.MongoStore
          const producer = yield* KafkaProducer.KafkaProducer
          const tx = yield* producer.transactional(transactionalId)
          yield* store.updateMany(collection, { _id: { $in: ["t-0", "t-1"] } } as never, {
            $set: { "outbox.attempt": "attempt-before-the-crash" }
          })
          yield* tx.send(
            { topicMessages: [{ topic, messages: [{ key: "t-0", value: "p-0" }, { key: "t-1", value: "p-1" }] }] },
            { groupId: Outbox.progressGroup(transactionalId), topic, metadata: "attempt-before-the-crash" }
          )
        }).pipe(Effect.provide(Layer.merge(producerLayer("outbox-eos-dead"), mongoLayer)), Effect.scoped)

        yield* Effect.gen(function*() {
          const relay = yield* Outbox.OutboxRelay
          yield* relay.drain
          yield* eventually(relay.stats, (s) => s.published === 3 && s.pending === 0, 30_000)
          assert.strictEqual(yield* published(collection), 3)
        }).pipe(Effect.provide(relayLayer("outbox-eos-next", collection, topic, transactionalId)), Effect.scoped)
        onceEach(yield* readBack(topic, 3, "read_committed"), 3)
      })
    },
    180_000
  )
})
