/**
 * No head-of-line blocking, on in-memory stand-ins for MongoDB and Kafka (the real-server case is in
 * DeadLetterKafka.test.ts): a batch Kafka refuses as the documents' fault is split in halves down to one
 * document, a single document still refused is marked dead with the reason, and every other document is
 * published in the same drain. An outage (what `kafka_producer` counts) never splits nor dead-letters.
 */
import { assert, describe, it } from "@effect/vitest"
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { CircuitBreaker } from "@neural-hive/resilience"
import { Clock, Effect } from "effect"
import { TestClock } from "effect/testing"
import { type Doc, fakeStore } from "./fakes.ts"

const refusal = (reason: KafkaError["reason"], protocolError: string | undefined, brokerFailure: boolean) =>
  new KafkaError({
    reason,
    protocolError,
    brokerFailure,
    retriable: brokerFailure,
    retries: 0,
    message: `KafkaJSProtocolError: ${protocolError ?? reason} (sasl password=hunter2)`
  })

const tooLarge = () => refusal("MessageTooLarge", "MESSAGE_TOO_LARGE", false)

/**
 * A Kafka stand-in behind a real `kafka_producer` breaker (with the Kafka classifier): `verdict` decides each
 * send from its keys (undefined: accepted); accepted keys are appended to `topic`.
 */
const fakeProducer = Effect.fnUntraced(function*(
  verdict: (keys: ReadonlyArray<string>) => KafkaError | undefined,
  sends: Array<number>,
  topic: Array<string>
) {
  const breaker = yield* CircuitBreaker.make({
    name: "kafka_producer",
    failMax: 3,
    recoveryTimeout: "30 seconds",
    isFailure: KafkaProducer.isFailure
  })
  const send = (record: { readonly messages: ReadonlyArray<{ readonly key?: unknown }> }) =>
    breaker.protect(Effect.suspend(() => {
      const keys = record.messages.map((m) => String(m.key))
      sends.push(keys.length)
      const error = verdict(keys)
      if (error !== undefined) return Effect.fail(error)
      topic.push(...keys)
      return Effect.succeed([])
    }))
  return KafkaProducer.KafkaProducer.of({ send, sendBatch: () => Effect.die("unused"), breaker } as any)
})

interface Rig {
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly docs: Array<Doc>
  readonly sends: Array<number>
  readonly topic: Array<string>
}

/** `count` pending tickets t-000.. (one ms apart), at 5 s a relay on the stand-ins, and `body` run with it. */
const withRelay = <A>(
  count: number,
  verdict: (keys: ReadonlyArray<string>) => KafkaError | undefined,
  body: (relay: Outbox.OutboxRelay["Service"], rig: Rig) => Effect.Effect<A, unknown>,
  options: Partial<Outbox.Options> = {}
) =>
  Effect.gen(function*() {
    // The relay's first sweep starts with it: the clock is set first.
    yield* TestClock.setTime(5_000)
    const docs: Array<Doc> = []
    for (let i = 0; i < count; i++) {
      docs.push(Outbox.pending({ _id: `t-${String(i).padStart(3, "0")}`, n: i }, i))
    }
    const sends: Array<number> = []
    const topic: Array<string> = []
    const producer = yield* fakeProducer(verdict, sends, topic)
    const rig: Rig = { breaker: producer.breaker, docs, sends, topic }
    const relay = yield* Outbox.make({ collection: "tickets", topic: "tickets", ...options }).pipe(
      Effect.provideService(MongoStore.MongoStore, fakeStore(docs)),
      Effect.provideService(KafkaProducer.KafkaProducer, producer)
    )
    return yield* body(relay, rig)
  }).pipe(Effect.scoped)

const stateOf = (rig: Rig, id: string) => rig.docs.find((d) => d["_id"] === id)!["outbox"]

/** The `OutboxRequeueError` a requeue failed with (any other outcome fails the test). */
const refused = <A>(effect: Effect.Effect<A, unknown>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.instanceOf(error, Outbox.OutboxRequeueError)
    return error as Outbox.OutboxRequeueError
  })

const poisonIs = (...poison: ReadonlyArray<string>) => (keys: ReadonlyArray<string>) =>
  keys.some((k) => poison.includes(k)) ? tooLarge() : undefined

describe("Outbox relay: a document Kafka refuses never blocks the others", () => {
  it.effect("a batch of 100 with one poison: 99 published in order, the poison dead, at most 1 + 2*ceil(log2 100) sends", () =>
    withRelay(100, poisonIs("t-037"), (relay, rig) =>
      Effect.gen(function*() {
        yield* relay.drain
        const stats = yield* relay.stats
        assert.strictEqual(stats.published, 99)
        assert.deepStrictEqual(rig.topic, rig.docs.map((d) => d["_id"]).filter((id) => id !== "t-037"))
        const mark = stateOf(rig, "t-037")
        assert.strictEqual(mark.state, "dead")
        assert.strictEqual(mark.deadAt, 5_000)
        assert.deepStrictEqual(mark.error.reason, "MessageTooLarge")
        assert.deepStrictEqual(mark.error.protocolError, "MESSAGE_TOO_LARGE")
        assert.include(mark.error.message, "MESSAGE_TOO_LARGE")
        assert.notInclude(mark.error.message, "hunter2")
        assert.isAtMost(rig.sends.length, 1 + 2 * Math.ceil(Math.log2(100)))
        assert.strictEqual(rig.docs.filter((d) => d["outbox"].state === "pending").length, 0)
        assert.strictEqual(stats.deadLettered, 1)
        // The refusals are the caller's: the breaker never counted them.
        assert.strictEqual(yield* rig.breaker.state, "Closed")
        assert.strictEqual(stats.dead, 1)
        assert.deepStrictEqual(stats.oldestDead, { id: "t-037", deadAt: 5_000, reason: "MessageTooLarge" })
        yield* TestClock.adjust("90 seconds")
        assert.strictEqual(Outbox.oldestDeadMillis(yield* relay.stats, yield* Clock.currentTimeMillis), 90_000)
      })))

  it.effect("sends per poison stay within 2*log2(n): n = 2..200, poison anywhere", () =>
    Effect.gen(function*() {
      for (const n of [2, 3, 7, 64, 100, 129, 200]) {
        for (const at of [0, Math.floor(n / 2), n - 1]) {
          const poison = `t-${String(at).padStart(3, "0")}`
          yield* withRelay(n, poisonIs(poison), (relay, rig) =>
            Effect.gen(function*() {
              yield* relay.drain
              assert.strictEqual(rig.topic.length, n - 1, `n=${n} poison=${poison}`)
              assert.strictEqual(stateOf(rig, poison).state, "dead")
              assert.isAtMost(rig.sends.length, 1 + 2 * Math.ceil(Math.log2(n)), `n=${n} poison=${poison}`)
            }), { batchSize: 200 })
        }
      }
    }))

  it.effect("several poisons in one batch: each dead, the rest published in one drain", () =>
    withRelay(100, poisonIs("t-000", "t-050", "t-051", "t-099"), (relay, rig) =>
      Effect.gen(function*() {
        const published = yield* relay.drain
        assert.strictEqual(published, 96)
        assert.strictEqual(rig.topic.length, 96)
        for (const id of ["t-000", "t-050", "t-051", "t-099"]) assert.strictEqual(stateOf(rig, id).state, "dead")
        assert.isAtMost(rig.sends.length, 4 * 2 * Math.ceil(Math.log2(100)))
        assert.strictEqual((yield* relay.stats).dead, 4)
      })))

  it.effect("a batch over the size limit (every document fine alone) is published in halves, nothing dead", () =>
    withRelay(
      100,
      (keys) => keys.length > 30 ? refusal("MessageTooLarge", "RECORD_LIST_TOO_LARGE", false) : undefined,
      (relay, rig) =>
        Effect.gen(function*() {
          yield* relay.drain
          assert.strictEqual(rig.topic.length, 100)
          assert.strictEqual((yield* relay.stats).dead, 0)
          assert.deepStrictEqual(rig.topic, rig.docs.map((d) => d["_id"]))
        })
    ))

  for (
    const [title, error] of [
      ["a timeout", refusal("Timeout", "REQUEST_TIMED_OUT", true)],
      ["a broker down", refusal("Connection", undefined, true)],
      ["an invalid topic (every document alike)", refusal("InvalidTopic", "INVALID_TOPIC_EXCEPTION", false)],
      ["the producer's settings (INVALID_REQUIRED_ACKS)", refusal("InvalidRecord", "INVALID_REQUIRED_ACKS", false)],
      ["a closed producer", refusal("Closed", undefined, false)]
    ] as const
  ) {
    it.effect(`${title}: no split, nothing dead, everything stays pending`, () =>
      withRelay(10, () => error, (relay, rig) =>
        Effect.gen(function*() {
          yield* relay.drain
          assert.deepStrictEqual(rig.sends, [10])
          const stats = yield* relay.stats
          assert.strictEqual(stats.failedSends, 1)
          assert.strictEqual(stats.dead, 0)
          assert.strictEqual(stats.pending, 10)
          assert.isTrue(rig.docs.every((d) => d["outbox"].state === "pending"))
        })))
  }

  it.effect("an outage in the middle of a split stops the round: what was not sent stays pending, nothing dead", () => {
    let down = false
    return withRelay(8, (keys) => {
      if (down) return refusal("Timeout", "REQUEST_TIMED_OUT", true)
      if (keys.includes("t-001")) {
        if (keys.length === 4) down = true // Kafka goes out after refusing the first half
        return tooLarge()
      }
      return undefined
    }, (relay, rig) =>
      Effect.gen(function*() {
        yield* relay.drain
        assert.deepStrictEqual(rig.sends, [8, 4, 2])
        assert.isTrue(rig.docs.every((d) => d["outbox"].state === "pending"))
        assert.strictEqual((yield* relay.stats).dead, 0)
      }))
  })

  it.effect("a document the `encode` option throws on is dead (reason Encode); the rest are published", () =>
    withRelay(5, () => undefined, (relay, rig) =>
      Effect.gen(function*() {
        yield* relay.drain
        assert.strictEqual(rig.topic.length, 4)
        assert.strictEqual(stateOf(rig, "t-002").state, "dead")
        assert.strictEqual(stateOf(rig, "t-002").error.reason, "Encode")
        assert.include(stateOf(rig, "t-002").error.message, "cannot encode 2")
      }), {
      encode: (doc) => {
        if (doc["n"] === 2) throw new Error("cannot encode 2")
        return JSON.stringify(doc)
      }
    }))

  it.effect("requeue: dead back to pending and published after the fix; the same request again is AlreadyPending; 'not dead' and 'not found' are typed", () => {
    let fixed = false
    return withRelay(
      3,
      (keys) => !fixed && keys.includes("t-001") ? tooLarge() : undefined,
      (relay, rig) =>
        Effect.gen(function*() {
          yield* relay.drain
          assert.strictEqual(stateOf(rig, "t-001").state, "dead")
          const published = yield* refused(relay.requeue("t-000"))
          assert.strictEqual(published.reason, "NotDead")
          assert.strictEqual(published.state, "published")
          const missing = yield* refused(relay.requeue("t-404"))
          assert.strictEqual(missing.reason, "NotFound")

          yield* TestClock.setTime(7_000)
          assert.strictEqual(yield* relay.requeue("t-001"), "Requeued")
          assert.strictEqual(stateOf(rig, "t-001").state, "pending")
          assert.strictEqual(stateOf(rig, "t-001").requeuedAt, 7_000)
          assert.strictEqual(yield* relay.requeue("t-001"), "AlreadyPending")

          fixed = true
          yield* relay.drain
          assert.strictEqual(stateOf(rig, "t-001").state, "published")
          assert.deepStrictEqual(rig.topic, ["t-000", "t-002", "t-001"])
          assert.strictEqual((yield* relay.stats).dead, 0)
          assert.strictEqual((yield* refused(relay.requeue("t-001"))).reason, "NotDead")
        })
    )
  })

  it.effect("requeueAllDead: every dead document back to pending", () =>
    withRelay(10, poisonIs("t-003", "t-007"), (relay, rig) =>
      Effect.gen(function*() {
        yield* relay.drain
        assert.strictEqual((yield* relay.stats).dead, 2)
        assert.strictEqual(yield* relay.requeueAllDead, 2)
        assert.strictEqual(stateOf(rig, "t-003").state, "pending")
        assert.strictEqual(stateOf(rig, "t-007").state, "pending")
        assert.strictEqual(yield* relay.requeueAllDead, 0)
      })))

  it("isPoison: the documents' faults only", () => {
    assert.isTrue(Outbox.isPoison(tooLarge()))
    assert.isTrue(Outbox.isPoison(refusal("MessageTooLarge", "RECORD_LIST_TOO_LARGE", false)))
    assert.isTrue(Outbox.isPoison(refusal("InvalidRecord", "INVALID_RECORD", false)))
    assert.isTrue(Outbox.isPoison(refusal("InvalidRecord", "CORRUPT_MESSAGE", false)))
    assert.isTrue(Outbox.isPoison(refusal("InvalidRecord", undefined, false)))
    assert.isTrue(Outbox.isPoison(refusal("Serialization", undefined, false)))
    assert.isFalse(Outbox.isPoison(refusal("InvalidRecord", "UNSUPPORTED_COMPRESSION_TYPE", false)))
    assert.isFalse(Outbox.isPoison(refusal("InvalidRecord", "POLICY_VIOLATION", false)))
    assert.isFalse(Outbox.isPoison(refusal("InvalidTopic", "INVALID_TOPIC_EXCEPTION", false)))
    assert.isFalse(Outbox.isPoison(refusal("Timeout", "REQUEST_TIMED_OUT", true)))
    assert.isFalse(Outbox.isPoison(refusal("Unknown", undefined, true)))
    assert.isFalse(Outbox.isPoison(new Error("MESSAGE_TOO_LARGE")))
  })
})
