/**
 * The relay's exactly-once mode on in-memory stand-ins (the real-server case is in
 * ExactlyOnceKafka.test.ts): a Kafka stand-in with transactions (committed or aborted, a
 * `read_committed` view, a progress record per transactional id, epochs that fence) behind a real
 * `kafka_producer` breaker. A commit whose answer is lost is settled from the progress record, never
 * sent again; the at-least-once mode, given the same fault, sends the batch twice.
 */
import { assert, describe, it } from "@effect/vitest"
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { CircuitBreaker, CircuitBreakerOptionsError } from "@neural-hive/resilience"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { type Doc, fakeStore } from "./fakes.ts"

/** What the stand-in does with one send: commit, commit and then lose the answer, or fail before committing. */
type Outcome = "commit" | "commitThenTimeout" | "timeout" | "fenced"

const timeout = () =>
  new KafkaError({ reason: "Timeout", brokerFailure: true, retriable: true, retries: 0, message: "no answer" })

interface Cluster {
  /** Every record written, with whether its transaction committed (at-least-once sends always do). */
  readonly log: Array<{ readonly key: string; readonly committed: boolean }>
  /** The progress record per group: the last committed transaction's metadata. */
  readonly progress: Map<string, string>
  readonly calls: Array<string>
  /** The outcome of each send, in order (then "commit"). */
  readonly outcomes: Array<Outcome>
  /** How many progress reads fail (a timeout) before one answers. */
  progressFailures?: number
}

const readCommitted = (cluster: Cluster) => cluster.log.filter((r) => r.committed).map((r) => r.key)

const keysOf = (messages: ReadonlyArray<{ readonly key?: unknown }>) => messages.map((m) => String(m.key))

const fakeProducer = Effect.fnUntraced(function*(cluster: Cluster) {
  const breaker = yield* CircuitBreaker.make({
    name: "kafka_producer",
    failMax: 3,
    recoveryTimeout: "30 seconds",
    isFailure: KafkaProducer.isFailure
  })
  const send = (record: KafkaProducer.ProducerRecord) =>
    breaker.protect(Effect.suspend(() => {
      cluster.calls.push("send")
      const outcome = cluster.outcomes.shift() ?? "commit"
      if (outcome === "timeout") return Effect.fail(timeout())
      for (const key of keysOf(record.messages)) cluster.log.push({ key, committed: true })
      return outcome === "commit" ? Effect.succeed([]) : Effect.fail(timeout())
    }))
  const transactional = (transactionalId: string) =>
    Effect.succeed({
      transactionalId,
      send: (batch: KafkaProducer.ProducerBatch, progress?: KafkaProducer.TransactionProgress) =>
        breaker.protect(Effect.suspend(() => {
          cluster.calls.push("transaction")
          const outcome = cluster.outcomes.shift() ?? "commit"
          if (outcome === "fenced") {
            return Effect.fail(
              new KafkaError({
                reason: "Unknown",
                protocolError: "PRODUCER_FENCED",
                brokerFailure: true,
                retriable: false,
                retries: 0,
                message: "There is a newer producer with the same transactionalId which fences the current one"
              })
            )
          }
          const committed = outcome === "commit" || outcome === "commitThenTimeout"
          for (const topic of batch.topicMessages) {
            for (const key of keysOf(topic.messages)) cluster.log.push({ key, committed })
          }
          if (committed && progress !== undefined) cluster.progress.set(progress.groupId, progress.metadata)
          return outcome === "commit" ? Effect.succeed([]) : Effect.fail(timeout())
        })),
      reset: breaker.protect(Effect.sync(() => void cluster.calls.push("reset"))),
      committedMetadata: (groupId: string) =>
        breaker.protect(Effect.suspend(() => {
          cluster.calls.push("progress")
          if ((cluster.progressFailures ?? 0) > 0) {
            cluster.progressFailures!--
            return Effect.fail(timeout())
          }
          return Effect.succeed(cluster.progress.get(groupId))
        }))
    } as any as KafkaProducer.TransactionalProducer)
  return KafkaProducer.KafkaProducer.of({ send, sendBatch: () => Effect.die("unused"), transactional, breaker } as any)
})

const withRelay = <A>(
  docs: Array<Doc>,
  cluster: Cluster,
  options: Partial<Outbox.Options>,
  body: (relay: Outbox.OutboxRelay["Service"]) => Effect.Effect<A, unknown>,
  store: MongoStore.MongoStore["Service"] = fakeStore(docs)
) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(5_000)
    const producer = yield* fakeProducer(cluster)
    const relay = yield* Outbox.make({ collection: "tickets", topic: "tickets", sweepInterval: "1 hour", ...options })
      .pipe(
        Effect.provideService(MongoStore.MongoStore, store),
        Effect.provideService(KafkaProducer.KafkaProducer, producer)
      )
    return yield* body(relay)
  }).pipe(Effect.scoped)

const tickets = (count: number): Array<Doc> =>
  Array.from({ length: count }, (_, i) => Outbox.pending({ _id: `t-${i}`, n: i }, i))

const cluster = (outcomes: Array<Outcome> = []): Cluster => ({
  log: [],
  progress: new Map(),
  calls: [],
  outcomes
})

const EXACTLY_ONCE = { delivery: "exactly-once", transactionalId: "relay-0" } as const

const counts = (keys: ReadonlyArray<string>) => {
  const map = new Map<string, number>()
  for (const key of keys) map.set(key, (map.get(key) ?? 0) + 1)
  return map
}

describe("Outbox relay: exactly once to read_committed readers", () => {
  it.effect("options: delivery and transactionalId are checked, naming the option", () =>
    Effect.gen(function*() {
      const tries: Array<[Partial<Outbox.Options>, string]> = [
        [{ delivery: "exactly-twice" as never }, "delivery"],
        [{ delivery: "exactly-once" }, "transactionalId"],
        [{ delivery: "exactly-once", transactionalId: " " }, "transactionalId"],
        [{ transactionalId: "relay-0" }, "transactionalId"]
      ]
      for (const [options, option] of tries) {
        const error = yield* Effect.flip(withRelay([], cluster(), options, () => Effect.void))
        assert.instanceOf(error, CircuitBreakerOptionsError)
        assert.strictEqual((error as CircuitBreakerOptionsError).option, option)
        assert.strictEqual((error as CircuitBreakerOptionsError).circuit, "outbox")
      }
    }))

  it.effect("a commit whose answer is lost: settled from the progress record, each ticket once to read_committed", () =>
    Effect.gen(function*() {
      const docs = tickets(6)
      const kafka = cluster(["commitThenTimeout"])
      yield* withRelay(docs, kafka, { ...EXACTLY_ONCE, batchSize: 3 }, (relay) =>
        Effect.gen(function*() {
          // The first drain stops at the failure, the next one (the relay's next wake-up) goes on.
          yield* relay.drain
          yield* relay.drain
          // The start settles first; the lost commit is settled before the next send.
          assert.deepStrictEqual(kafka.calls, [
            "reset",
            "progress",
            "transaction",
            "reset",
            "progress",
            "transaction"
          ])
          assert.deepStrictEqual([...counts(readCommitted(kafka)).values()], [1, 1, 1, 1, 1, 1])
          assert.strictEqual(docs.filter((d) => d["outbox"].state === "published").length, 6)
          assert.strictEqual((yield* relay.stats).published, 6)
        }))
    }))

  it.effect("the same lost answer in at-least-once mode sends the batch twice (what exactly-once closes)", () =>
    Effect.gen(function*() {
      const docs = tickets(3)
      const kafka = cluster(["commitThenTimeout"])
      yield* withRelay(docs, kafka, { batchSize: 3 }, (relay) =>
        Effect.gen(function*() {
          yield* relay.drain
          yield* relay.drain
          assert.deepStrictEqual([...counts(readCommitted(kafka)).values()], [2, 2, 2])
        }))
    }))

  it.effect("an aborted send is sent again, and read_committed sees it once", () =>
    Effect.gen(function*() {
      const docs = tickets(3)
      const kafka = cluster(["timeout"])
      yield* withRelay(docs, kafka, { ...EXACTLY_ONCE, batchSize: 3 }, (relay) =>
        Effect.gen(function*() {
          yield* relay.drain
          yield* relay.drain
          assert.strictEqual(kafka.log.length, 6)
          assert.deepStrictEqual(readCommitted(kafka), ["t-0", "t-1", "t-2"])
          assert.strictEqual(docs.filter((d) => d["outbox"].state === "published").length, 3)
        }))
    }))

  it.effect("on start: a batch committed by the previous instance but left pending is marked published, not sent", () =>
    Effect.gen(function*() {
      const docs = tickets(4)
      const kafka = cluster()
      for (const doc of docs.slice(0, 2)) doc["outbox"].attempt = "attempt-of-the-dead"
      kafka.log.push({ key: "t-0", committed: true }, { key: "t-1", committed: true })
      kafka.progress.set(Outbox.progressGroup("relay-0"), "attempt-of-the-dead")
      yield* withRelay(docs, kafka, EXACTLY_ONCE, (relay) =>
        Effect.gen(function*() {
          yield* relay.drain
          assert.deepStrictEqual(readCommitted(kafka), ["t-0", "t-1", "t-2", "t-3"])
          assert.strictEqual(docs.filter((d) => d["outbox"].state === "published").length, 4)
          assert.strictEqual(docs[0]!["outbox"].publishedAt, 5_000)
        }))
    }))

  it.effect("MongoDB fails the mark after Kafka's commit: settled from the progress record, not sent again", () =>
    Effect.gen(function*() {
      const docs = tickets(3)
      const kafka = cluster()
      const store = fakeStore(docs)
      let failures = 1
      // The first "published" mark fails (MongoDB out), as a crash between commit and mark would.
      const flaky = MongoStore.MongoStore.of({
        ...store,
        updateMany: (collection, filter, change) =>
          (change as any).$set?.["outbox.state"] === "published" && failures-- > 0
            ? Effect.fail(
              new MongoStore.MongoStoreError({
                reason: "Network",
                operation: "updateMany",
                message: "connection reset"
              })
            )
            : store.updateMany(collection, filter, change)
      })
      yield* withRelay(docs, kafka, { ...EXACTLY_ONCE, batchSize: 3 }, (relay) =>
        Effect.gen(function*() {
          yield* relay.drain
          yield* relay.drain
          assert.deepStrictEqual(readCommitted(kafka), ["t-0", "t-1", "t-2"])
          assert.strictEqual(docs.filter((d) => d["outbox"].state === "published").length, 3)
          // The producer committed: no new one is made (no fencing again), only the progress is read.
          assert.deepStrictEqual(kafka.calls, ["reset", "progress", "transaction", "progress"])
        }), flaky)
    }))

  it.effect("a progress read that fails after the fencing is tried again alone: the fencing stands", () =>
    Effect.gen(function*() {
      const docs = tickets(2)
      const kafka: Cluster = { ...cluster(), progressFailures: 2 }
      yield* withRelay(docs, kafka, { ...EXACTLY_ONCE, batchSize: 2 }, (relay) =>
        Effect.gen(function*() {
          yield* relay.drain
          yield* relay.notify
          yield* relay.drain
          yield* relay.notify
          yield* relay.drain
          // On a slow link a new producer per failed read made every read cold (issue 24's crash scenario).
          assert.deepStrictEqual(kafka.calls, ["reset", "progress", "progress", "progress", "transaction"])
          assert.deepStrictEqual(readCommitted(kafka), ["t-0", "t-1"])
        }))
    }))

  it.effect("a send whose outcome is unknown makes the next round fence again before it reads the progress", () =>
    Effect.gen(function*() {
      const docs = tickets(2)
      const kafka = cluster(["timeout"])
      yield* withRelay(docs, kafka, { ...EXACTLY_ONCE, batchSize: 2 }, (relay) =>
        Effect.gen(function*() {
          yield* relay.drain
          yield* relay.notify
          yield* relay.drain
          assert.deepStrictEqual(kafka.calls, ["reset", "progress", "transaction", "reset", "progress", "transaction"])
          assert.deepStrictEqual(readCommitted(kafka), ["t-0", "t-1"])
        }))
    }))

  it.effect("a hand-over (notifyWritten) is not sent alone: it is read, claimed and sent in a transaction", () => {
    const docs: Array<Doc> = []
    const c = cluster()
    return withRelay(docs, c, EXACTLY_ONCE, (relay) =>
      Effect.gen(function*() {
        yield* relay.drain
        const document = Outbox.pending({ _id: "t-0", n: 0 }, 5_000)
        docs.push(structuredClone(document))
        yield* relay.notifyWritten(document)
        for (let i = 0; i < 1_000 && (yield* relay.stats).published === 0; i++) yield* Effect.yieldNow
        assert.deepStrictEqual(readCommitted(c), ["t-0"])
        assert.notInclude(c.calls, "send")
        assert.strictEqual(docs[0]!["outbox"].state, "published")
        assert.isString(docs[0]!["outbox"].attempt)
      }))
  })

  it.effect("fenced by a newer relay with the same transactionalId: it stops sending", () =>
    Effect.gen(function*() {
      const docs = tickets(2)
      const kafka = cluster(["fenced"])
      yield* withRelay(docs, kafka, { ...EXACTLY_ONCE, batchSize: 1 }, (relay) =>
        Effect.gen(function*() {
          yield* relay.drain
          yield* relay.notify
          yield* relay.drain
          assert.deepStrictEqual(kafka.calls, ["reset", "progress", "transaction"])
          assert.strictEqual(docs.filter((d) => d["outbox"].state === "pending").length, 2)
          assert.include((yield* relay.stats).lastError ?? "", "fences")
        }))
    }))
})
