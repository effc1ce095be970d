/**
 * The outbox relay's throughput in each delivery mode: `npm run bench:outbox`.
 *
 * Starts a private Kafka broker and MongoDB-protocol server (FerretDB) from the test rig, writes
 * `OUTBOX_BENCH_TICKETS` pending tickets (default 2000) into a fresh collection, then starts a relay
 * (`batchSize` 100) and times how long it takes to publish them all: tickets per second, once
 * at-least-once (an idempotent producer) and once exactly-once (a transaction per batch, plus the
 * attempt id written on the batch before the send). Each mode runs `OUTBOX_BENCH_RUNS` times
 * (default 3), alternating; the median is printed with the machine's load average, which matters:
 * on a shared machine the figures are indicative.
 */
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { Effect, Layer } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { MongoClient } from "mongodb"
import * as os from "node:os"
import { type ServerHandle, startKafka, startMongo } from "../rig/servers.ts"
import "../rig/kafkajsQueue.ts"

const positive = (name: string, fallback: number): number => {
  const text = process.env[name]
  const value = text === undefined || text.trim() === "" ? fallback : Number(text)
  if (!Number.isSafeInteger(value) || value <= 0) {
    console.error(`${name}: got ${JSON.stringify(text)}, expected a positive integer`)
    process.exit(2)
  }
  return value
}

const TICKETS = positive("OUTBOX_BENCH_TICKETS", 2_000)
const RUNS = positive("OUTBOX_BENCH_RUNS", 3)
const BATCH = 100
const DATABASE = "outbox_bench"

type Delivery = "at-least-once" | "exactly-once"

/** One run: `TICKETS` pending tickets written first, then a relay started and timed until none is pending. */
const runOnce = (kafka: ServerHandle, mongo: ServerHandle, delivery: Delivery, run: number) =>
  Effect.gen(function*() {
    const suffix = `${delivery}-${run}-${Date.now()}`
    const topic = `outbox-bench-${suffix}`
    const collection = `bench_${suffix.replaceAll("-", "_")}`
    yield* Effect.promise(async () => {
      const admin = new Kafka({ clientId: "outbox-bench", brokers: [kafka.endpoint], logLevel: logLevel.NOTHING })
        .admin()
      await admin.connect()
      try {
        await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] })
      } finally {
        await admin.disconnect()
      }
    })
    // Written with the driver directly (one insertMany), not timed.
    yield* Effect.promise(async () => {
      const client = new MongoClient(mongo.endpoint, { directConnection: true })
      try {
        const docs = Array.from({ length: TICKETS }, (_, i) =>
          Outbox.pending({ _id: `t-${i}`, planId: `p-${i}`, steps: ["a", "b", "c"] }, i))
        await client.db(DATABASE).collection<{ _id: string }>(collection).insertMany(docs)
      } finally {
        await client.close()
      }
    })
    const started = performance.now()
    const published = yield* Effect.gen(function*() {
      const relay = yield* Outbox.OutboxRelay
      // The first sweep starts with the relay; drain waits for it, then publishes what is left.
      let total = 0
      while (total < TICKETS) {
        total += yield* relay.drain
        if ((yield* relay.stats).pending === 0) {
          break
        }
      }
      return (yield* relay.stats).published
    }).pipe(
      Effect.provide(
        Outbox.layer({
          collection,
          topic,
          batchSize: BATCH,
          sweepInterval: "1 hour",
          ...(delivery === "exactly-once" ? { delivery, transactionalId: `bench-${suffix}` } : {})
        })
      )
    )
    const seconds = (performance.now() - started) / 1_000
    if (published !== TICKETS) {
      throw new Error(`${delivery}: published ${published} of ${TICKETS}`)
    }
    return TICKETS / seconds
  })

const median = (xs: ReadonlyArray<number>) => {
  const sorted = xs.toSorted((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const main = async () => {
  console.log(`outbox bench: starting Kafka and MongoDB (FerretDB); ${TICKETS} tickets, batches of ${BATCH}`)
  const kafka = await startKafka({ startTimeoutMs: 180_000 })
  const mongo = await startMongo()
  try {
    const layer = Layer.merge(
      KafkaProducer.layer({
        brokers: [kafka.endpoint],
        clientId: "outbox-bench",
        idempotent: true,
        logLevel: "None",
        sendTimeout: "30 seconds",
        requestTimeout: "20 seconds"
      }),
      MongoStore.layer({ url: `${mongo.endpoint}${DATABASE}` })
    )
    const rates: Record<Delivery, Array<number>> = { "at-least-once": [], "exactly-once": [] }
    await Effect.runPromise(
      Effect.gen(function*() {
        // A warm-up of each mode (connections, topic metadata, the transaction coordinator).
        for (const delivery of ["at-least-once", "exactly-once"] as const) yield* runOnce(kafka, mongo, delivery, 0)
        for (let run = 1; run <= RUNS; run++) {
          for (const delivery of ["at-least-once", "exactly-once"] as const) {
            const rate = yield* runOnce(kafka, mongo, delivery, run)
            rates[delivery].push(rate)
            console.log(`  run ${run} ${delivery}: ${rate.toFixed(0)} tickets/s`)
          }
        }
      }).pipe(Effect.provide(layer), Effect.scoped)
    )
    const load = os.loadavg().map((l) => l.toFixed(1)).join(" ")
    for (const delivery of ["at-least-once", "exactly-once"] as const) {
      console.log(
        `outbox bench: ${delivery}: median ${median(rates[delivery]).toFixed(0)} tickets/s over ${RUNS} runs (${
          rates[delivery].map((r) => r.toFixed(0)).join(", ")
        })`
      )
    }
    console.log(`outbox bench: load average at the end ${load} (${os.cpus().length} cores)`)
  } finally {
    await mongo.stop()
    await kafka.stop()
  }
}

await main()
