/**
 * No head-of-line blocking on the real servers (the rig's Kafka and MongoDB-protocol server): a topic
 * whose `max.message.bytes` is 2 KiB, 29 small tickets and one of 4 KiB in the same batch. Kafka refuses
 * the batch (over the limit) and then the big ticket alone (MESSAGE_TOO_LARGE): in the one round that read
 * them, the relay publishes the 29 (in halves) and marks the big one dead with the reason; the
 * `kafka_producer` breaker never counts it. Then the runbook's procedure: the topic's limit is raised,
 * the dead ticket is requeued and published. A plain consumer reads the topic back.
 */
import { assert, describe, inject, it } from "@effect/vitest"
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { Effect, Layer } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { eventually } from "../integration/eventually.ts"

const raw = () =>
  new Kafka({
    clientId: "outbox-dead-raw",
    brokers: inject("kafkaBrokers").split(","),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    retry: { retries: 5 }
  })

const withAdmin = <A>(f: (admin: ReturnType<ReturnType<typeof raw>["admin"]>) => Promise<A>) =>
  Effect.promise(async () => {
    const admin = raw().admin()
    await admin.connect()
    try {
      return await f(admin)
    } finally {
      await admin.disconnect()
    }
  })

/** The keys on the topic, in order, once `expected` are there (or after 20 s). */
const readBack = (topic: string, expected: number) =>
  Effect.promise(async () => {
    const consumer = raw().consumer({ groupId: `outbox-dead-read-${Math.random()}` })
    const keys: Array<string> = []
    await consumer.connect()
    try {
      await consumer.subscribe({ topic, fromBeginning: true })
      const done = new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message }) => {
            keys.push(message.key?.toString() ?? "<none>")
            if (keys.length >= expected) resolve()
          }
        })
      })
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 20_000))])
      // A little longer, so a message after the expected count would be seen too.
      await new Promise((resolve) => setTimeout(resolve, 1_000))
    } finally {
      await consumer.disconnect()
    }
    return keys
  })

const POISON = "t-13"

describe("Outbox relay: a ticket Kafka refuses (real Kafka and MongoDB)", () => {
  it.live(
    "ends dead within the round that read it while every other ticket is published; requeued after the fix, it is published",
    () => {
      const suffix = `${Date.now()}-${Math.floor(Math.random() * 1e6)}`
      const topic = `outbox-dead-${suffix}`
      const collection = `tickets_dead_${suffix}`
      // The relay itself is started below, once the tickets are written.
      const layer = Layer.merge(
        KafkaProducer.layer({
          brokers: inject("kafkaBrokers").split(","),
          clientId: "outbox-dead-it",
          connectionTimeout: "2 seconds",
          requestTimeout: "5 seconds",
          sendTimeout: "10 seconds",
          idempotent: true,
          logLevel: "None",
          breaker: { failMax: 3, recoveryTimeout: "5 seconds" }
        }),
        MongoStore.layer({ url: `${inject("mongodbUrl")}outbox` })
      )
      return Effect.gen(function*() {
        yield* withAdmin((admin) =>
          admin.createTopics({
            waitForLeaders: true,
            topics: [{ topic, numPartitions: 1, configEntries: [{ name: "max.message.bytes", value: "2048" }] }]
          })
        )
        // Written before the relay starts: its first sweep reads all 30 in one batch (one round: 30 < batchSize).
        const store = yield* MongoStore.MongoStore
        for (let i = 0; i < 30; i++) {
          const id = `t-${String(i).padStart(2, "0")}`
          const payload = id === POISON ? "x".repeat(4_096) : `plan ${i}`
          yield* store.insertOne(collection, Outbox.pending({ _id: id, payload }, 1_000 + i) as never)
        }

        return yield* Effect.gen(function*() {
          const relay = yield* Outbox.OutboxRelay
          const producer = yield* KafkaProducer.KafkaProducer
          // Waits for the first sweep (drains are one at a time), then finds nothing left to do.
          yield* relay.drain
          const stats = yield* relay.stats
          assert.strictEqual(stats.published, 29)
          assert.strictEqual(stats.pending, 0)
          assert.strictEqual(stats.dead, 1)
          assert.strictEqual(stats.deadLettered, 1)
          assert.strictEqual(stats.oldestDead?.id, POISON)
          assert.strictEqual(stats.oldestDead?.reason, "MessageTooLarge")
          const dead = yield* store.findOne<Record<string, any>>(collection, { _id: POISON } as never)
          assert.strictEqual(dead._tag === "Some" && dead.value["outbox"].state, "dead")
          const mark = dead._tag === "Some" ? dead.value["outbox"] : undefined
          assert.strictEqual(mark.error.reason, "MessageTooLarge")
          assert.include(["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"], mark.error.protocolError)
          assert.isNumber(mark.deadAt)
          // The refusals are the caller's: kafka_producer did not count one.
          const breaker = yield* producer.breaker.snapshot
          assert.strictEqual(breaker.state, "Closed")
          assert.strictEqual(breaker.totals.failures, 0)
          assert.strictEqual(breaker.totals.trips, 0)

          const keys = yield* readBack(topic, 29)
          assert.deepStrictEqual(
            [...new Set(keys)].toSorted(),
            Array.from({ length: 30 }, (_, i) => `t-${String(i).padStart(2, "0")}`).filter((k) => k !== POISON)
          )

          // The runbook's procedure: fix the cause (here the topic's limit), then requeue.
          yield* withAdmin((admin) =>
            admin.alterConfigs({
              validateOnly: false,
              resources: [{ type: 2, name: topic, configEntries: [{ name: "max.message.bytes", value: "1048588" }] }]
            })
          )
          assert.strictEqual(yield* relay.requeue(POISON), "Requeued")
          const after = yield* eventually(relay.stats, (s) => s.published === 30 && s.dead === 0, 30_000)
          assert.isUndefined(after.oldestDead)
          const again = yield* readBack(topic, 30)
          assert.include(again, POISON)
        }).pipe(Effect.provide(Outbox.layer({ collection, topic, batchSize: 100, sweepInterval: "1 hour" })))
      }).pipe(Effect.provide(layer), Effect.scoped)
    },
    120_000
  )
})
