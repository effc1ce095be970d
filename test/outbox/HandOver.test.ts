/**
 * Hand-overs (`notifyWritten`), on in-memory stand-ins for MongoDB and Kafka: a document this process
 * just wrote is sent without reading the collection and marked by `_id` alone; the collection is read
 * only on a sweep, a plain `notify`, or when a hand-over cannot be taken (too many waiting, no `_id`,
 * exactly-once delivery, a failed send: ExactlyOnce.test.ts). Every document is published, and a document read by a sweep
 * while it was handed over is sent once. The real-server case (FerretDB, which reads the whole
 * collection for any filter but an `_id` alone) is measured by `BENCH_ONLY=ceiling npm run bench`.
 */
import { assert, describe, it } from "@effect/vitest"
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { CircuitBreaker } from "@neural-hive/resilience"
import { Effect, Fiber, Latch } from "effect"
import { TestClock } from "effect/testing"
import { type Doc, fakeStore } from "./fakes.ts"

const outage = () =>
  new KafkaError({ reason: "Timeout", brokerFailure: true, retriable: true, retries: 0, message: "no answer" })

interface Rig {
  readonly docs: Array<Doc>
  /** Every store call after the relay started: the operation and its filter. */
  readonly calls: Array<{ readonly op: string; readonly filter: Doc }>
  /** Every key accepted by the Kafka stand-in, in order. */
  readonly topic: Array<string>
  /** The sends that fail (as an outage) before the stand-in accepts again. */
  failing: number
  /** Closed: sends wait at the gate. */
  readonly gate: Latch.Latch
  readonly breaker: CircuitBreaker.CircuitBreaker
}

/** A relay on the stand-ins (the clock at 5 s, its first sweep done), and `body` run with it. */
const withRelay = <A>(
  body: (relay: Outbox.OutboxRelay["Service"], rig: Rig) => Effect.Effect<A, unknown>,
  options: Partial<Outbox.Options> = {},
  initial: ReadonlyArray<Doc> = []
) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(5_000)
    const docs: Array<Doc> = [...initial]
    const gate = yield* Latch.make(true)
    const breaker = yield* CircuitBreaker.make({
      name: "kafka_producer",
      failMax: 2,
      recoveryTimeout: "30 seconds",
      isFailure: KafkaProducer.isFailure
    })
    const rig: Rig = { docs, calls: [], topic: [], failing: 0, gate, breaker }
    const send = (record: KafkaProducer.ProducerRecord) =>
      breaker.protect(Effect.andThen(
        gate.await,
        Effect.suspend(() => {
          if (rig.failing > 0) {
            rig.failing--
            return Effect.fail(outage())
          }
          rig.topic.push(...record.messages.map((m) => String(m.key)))
          return Effect.succeed([])
        })
      ))
    const producer = KafkaProducer.KafkaProducer.of(
      { send, breaker } as unknown as KafkaProducer.KafkaProducer["Service"]
    )
    const plain = fakeStore(docs)
    let started = false
    const record = (op: string, filter: unknown) => {
      if (started) rig.calls.push({ op, filter: filter as Doc })
    }
    const store = MongoStore.MongoStore.of({
      ...plain,
      find: (collection, filter, o) => (record("find", filter), plain.find(collection, filter, o)),
      countDocuments: (collection, filter) => (record("count", filter), plain.countDocuments(collection, filter)),
      updateOne: (
        collection,
        filter,
        change
      ) => (record("updateOne", filter), plain.updateOne(collection, filter, change)),
      updateMany: (
        collection,
        filter,
        change
      ) => (record("updateMany", filter), plain.updateMany(collection, filter, change))
    })
    const relay = yield* Outbox.make({ collection: "tickets", topic: "tickets", batchSize: 10, ...options }).pipe(
      Effect.provideService(MongoStore.MongoStore, store),
      Effect.provideService(KafkaProducer.KafkaProducer, producer)
    )
    yield* settled(relay, (s) => s.published === initial.length)
    started = true
    return yield* body(relay, rig)
  }).pipe(Effect.scoped)

/** Lets the relay's fiber run until `done` holds of its stats (fails after 1,000 yields). */
const settled = (relay: Outbox.OutboxRelay["Service"], done: (stats: Outbox.Stats) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1_000; i++) {
      yield* Effect.yieldNow
      if (done(yield* relay.stats)) return
    }
    assert.fail(`the relay did not settle: ${JSON.stringify(yield* relay.stats)}`)
  })

/** Stores `ids` pending (at the clock's time) and hands each over, as a writer does. */
const write = (relay: Outbox.OutboxRelay["Service"], rig: Rig, ids: ReadonlyArray<string>) =>
  Effect.forEach(ids, (id) =>
    Effect.gen(function*() {
      const document = Outbox.pending({ _id: id, plan: id }, 5_000)
      rig.docs.push(structuredClone(document))
      yield* relay.notifyWritten(document)
    }), { discard: true })

const ids = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`)

const reads = (rig: Rig) => rig.calls.filter((c) => c.op === "find" || c.op === "count")

const states = (rig: Rig) => rig.docs.map((d) => d["outbox"].state)

describe("Outbox relay: hand-overs (notifyWritten)", () => {
  it.effect("handed-over documents are sent in order without a read, and each marked by its _id alone", () =>
    withRelay((relay, rig) =>
      Effect.gen(function*() {
        const written = ids("t", 25)
        yield* write(relay, rig, written)
        yield* settled(relay, (s) => s.published === 25)
        assert.deepStrictEqual(rig.topic, written)
        assert.deepStrictEqual(reads(rig), [])
        const marks = rig.calls.filter((c) => c.op === "updateOne")
        assert.strictEqual(marks.length, 25)
        for (const mark of marks) assert.deepStrictEqual(Object.keys(mark.filter), ["_id"])
        assert.deepStrictEqual(states(rig), written.map(() => "published"))
        assert.strictEqual(rig.docs[0]!["outbox"].publishedAt, 5_000)
        const stats = yield* relay.stats
        assert.strictEqual(stats.pending, 0)
        assert.strictEqual(stats.oldestPendingMillis, 0)
      })
    ))

  it.effect("a sweep interval after the last read, the collection is read: a crashed writer's document is published", () =>
    withRelay((relay, rig) =>
      Effect.gen(function*() {
        // Stored, never handed over (its writer died): only a read finds it.
        rig.docs.push(Outbox.pending({ _id: "orphan", plan: "orphan" }, 5_000))
        yield* write(relay, rig, ids("a", 3))
        yield* settled(relay, (s) => s.published === 3)
        assert.strictEqual(reads(rig).length, 0)
        assert.notInclude(rig.topic, "orphan")
        yield* TestClock.adjust("5 seconds")
        yield* settled(relay, (s) => s.published === 4)
        assert.include(rig.topic, "orphan")
        assert.isAbove(reads(rig).length, 0)
        assert.deepStrictEqual(states(rig), ["published", "published", "published", "published"])
      }), { sweepInterval: "5 seconds" }))

  it.effect("more than 10 × batchSize waiting: the rest is read from the collection, each sent once", () =>
    withRelay((relay, rig) =>
      Effect.gen(function*() {
        yield* rig.gate.close
        const written = ids("t", 15)
        yield* write(relay, rig, written)
        yield* rig.gate.open
        yield* settled(relay, (s) => s.published === 15)
        assert.isAbove(reads(rig).length, 0)
        assert.deepStrictEqual(rig.topic.toSorted(), written)
        assert.deepStrictEqual(states(rig), written.map(() => "published"))
      }), { batchSize: 1 }))

  it.effect("a document with no _id or no pending mark is not taken: a read finds what is stored", () =>
    withRelay((relay, rig) =>
      Effect.gen(function*() {
        rig.docs.push(Outbox.pending({ _id: "t-1", plan: "p" }, 5_000))
        yield* relay.notifyWritten({ plan: "p" } as never)
        yield* settled(relay, (s) => s.published === 1)
        assert.deepStrictEqual(rig.topic, ["t-1"])
        assert.isAbove(reads(rig).length, 0)
      })
    ))

  it.effect("a failed send drops the hand-overs: the documents stay pending, and a read publishes them once", () =>
    withRelay((relay, rig) =>
      Effect.gen(function*() {
        rig.failing = 1
        const written = ids("t", 4)
        yield* write(relay, rig, written)
        yield* settled(relay, (s) => s.failedSends === 1)
        // The failed batch's documents are pending; the read that follows sent them (the stand-in is up again).
        yield* settled(relay, (s) => s.published === 4)
        assert.isAbove(reads(rig).length, 0)
        assert.deepStrictEqual(rig.topic, written)
        assert.deepStrictEqual(states(rig), written.map(() => "published"))
      })
    ))

  it.effect("the breaker OPEN: nothing is sent; once CLOSED, a read publishes what was handed over", () =>
    withRelay((relay, rig) =>
      Effect.gen(function*() {
        // The hand-over's send fails, then the read's: the breaker (failMax 2) opens.
        rig.failing = 2
        yield* write(relay, rig, ["t-0"])
        yield* settled(relay, (s) => s.failedSends === 2)
        assert.strictEqual(yield* rig.breaker.state, "Open")
        yield* write(relay, rig, ["t-1", "t-2"])
        yield* settled(relay, (s) => s.pending === 1)
        assert.deepStrictEqual(rig.topic, [])
        assert.strictEqual((yield* rig.breaker.snapshot).totals.rejected, 0)
        yield* TestClock.adjust("31 seconds")
        // HALF_OPEN: one document is the trial; CLOSED: the rest, read from the collection.
        yield* settled(relay, (s) => s.published === 3)
        assert.deepStrictEqual(rig.topic, ["t-0", "t-1", "t-2"])
        assert.deepStrictEqual(states(rig), ["published", "published", "published"])
        assert.strictEqual((yield* relay.stats).pending, 0)
      })
    ))

  it.effect("a document handed over while a read has it is sent once", () =>
    withRelay((relay, rig) =>
      Effect.gen(function*() {
        rig.docs.push(Outbox.pending({ _id: "t-1", plan: "p" }, 5_000))
        yield* rig.gate.close
        // The read takes t-1 and waits at the gate to send it; the writer hands it over meanwhile.
        const reading = yield* Effect.forkChild(relay.drain)
        yield* Effect.yieldNow
        yield* relay.notifyWritten(Outbox.pending({ _id: "t-1", plan: "p" }, 5_000))
        yield* rig.gate.open
        assert.strictEqual(yield* Fiber.join(reading), 1)
        yield* TestClock.adjust("10 millis")
        yield* settled(relay, (s) => s.published === 1)
        assert.deepStrictEqual(rig.topic, ["t-1"])
      })
    ))
})
