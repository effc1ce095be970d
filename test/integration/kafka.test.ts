/**
 * KafkaProducer against a real Kafka broker (3.9, single node KRaft, a private
 * instance) with real faults: the broker killed and restarted, the broker
 * paused (SIGSTOP), the connection stalled and cut through a fault proxy the
 * broker advertises. For each: failMax counted failures open the breaker;
 * while open, sends fail fast and the proxy sees no connection attempt; after
 * the open period and the broker's return, one probe closes it. Caller errors
 * (message too large, serialization) never move it. At the end a consumer
 * reads the topic back: every message reported as sent is there exactly once,
 * none reported as failed is there more than once (kafkajs retries are 0), no
 * rejected one is there at all. An idle breaker closes by itself (its metadata
 * probe) once the broker is back; a topic the broker does not have counts.
 */
import { assert, describe, it } from "@effect/vitest"
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { CircuitBreakerError } from "@neural-hive/resilience"
import { Effect, Exit } from "effect"
import { Kafka, logLevel } from "kafkajs"
import * as fs from "node:fs"
import { afterAll, beforeAll } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { freePort, type ServerHandle, startKafka } from "../../tools/rig/servers.ts"
import { eventually } from "./eventually.ts"

const TOPIC = "execution-tickets"
/** A topic whose `max.message.bytes` is 1 KiB: a bigger message is the caller's error. */
const SMALL_TOPIC = "execution-tickets-small"
/** Written by the readiness check only, so TOPIC holds nothing but ledger messages. */
const READY_TOPIC = "readiness"

const FAIL_MAX = 3
const RECOVERY_MILLIS = 1_500
const REQUEST_TIMEOUT_MILLIS = 2_000
const CONNECTION_TIMEOUT_MILLIS = 1_000
const PROBE_GRACE_MILLIS = 100

let kafka: ServerHandle
let proxy: FaultProxy

beforeAll(async () => {
  const proxyPort = await freePort()
  // the broker advertises the proxy, so every connection kafkajs makes goes through it
  kafka = await startKafka({
    advertisedPort: proxyPort,
    startTimeoutMs: 180_000,
    // The pause below lasts ~8 s. With the rig's 4 s session, the controller (same JVM, paused
    // too) fences its own broker on SIGCONT: leaderless partitions for a moment, a second fault.
    properties: { "broker.session.timeout.ms": "15000" }
  })
  proxy = await FaultProxy.start({ port: proxyPort, targetPort: kafka.port })
  const admin = rawClient().admin()
  await admin.connect()
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: TOPIC, numPartitions: 1, replicationFactor: 1 },
        { topic: SMALL_TOPIC, numPartitions: 1, configEntries: [{ name: "max.message.bytes", value: "1024" }] },
        { topic: READY_TOPIC, numPartitions: 1, replicationFactor: 1 }
      ]
    })
  } finally {
    await admin.disconnect()
  }
}, 240_000)

afterAll(async () => {
  await proxy?.close()
  await kafka?.stop()
}, 60_000)

/** A plain kafkajs client for setup, readiness and reading back (never the code under test). */
const rawClient = (retries = 0) =>
  new Kafka({
    clientId: "it-raw",
    brokers: [proxy.address],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    requestTimeout: 5_000,
    retry: { retries }
  })

const producerLayer = (options: Partial<KafkaProducer.Options> = {}) =>
  KafkaProducer.layer({
    brokers: [proxy.address],
    clientId: "it-kafka",
    connectionTimeout: CONNECTION_TIMEOUT_MILLIS,
    requestTimeout: REQUEST_TIMEOUT_MILLIS,
    sendTimeout: "6 seconds",
    disconnectTimeout: "3 seconds",
    logLevel: "None",
    // The fault scenarios recover through a real send; a long grace keeps the idle probe out of their way.
    breaker: {
      failMax: FAIL_MAX,
      recoveryTimeout: RECOVERY_MILLIS,
      maxOpenDuration: RECOVERY_MILLIS,
      probeGrace: "1 minute"
    },
    ...options
  })

const service = KafkaProducer.KafkaProducer

// -----------------------------------------------------------------------------
// the ledger: what the producer said about every message
// -----------------------------------------------------------------------------

type Status = "sent" | "failed" | "rejected"

const ledger = new Map<string, { readonly status: Status; readonly retries: number }>()
let sequence = 0

type Outcome =
  | { readonly _tag: "Sent"; readonly id: string }
  | { readonly _tag: "Failed"; readonly id: string; readonly error: KafkaError | CircuitBreakerError }

/** Sends one ticket with a unique id and writes down what the producer answered. */
const publish = (scenario: string, topic = TOPIC, size = 0) =>
  Effect.gen(function*() {
    const producer = yield* service
    const id = `${scenario}-${++sequence}`
    const exit = yield* Effect.exit(
      producer.send({
        topic,
        messages: [{ key: id, value: { id, scenario, padding: "p".repeat(size) } }]
      })
    )
    if (Exit.isSuccess(exit)) {
      if (topic === TOPIC) ledger.set(id, { status: "sent", retries: 0 })
      return sent(id)
    }
    const error = failure(exit)
    if (topic === TOPIC) {
      ledger.set(id, {
        status: error._tag === "CircuitBreakerError" ? "rejected" : "failed",
        retries: error._tag === "KafkaError" ? error.retries : 0
      })
    }
    return failed(id, error)
  })

const sent = (id: string): Outcome => ({ _tag: "Sent", id })
const failed = (id: string, error: KafkaError | CircuitBreakerError): Outcome => ({ _tag: "Failed", id, error })

const failure = (exit: Exit.Exit<unknown, KafkaError | CircuitBreakerError>): KafkaError | CircuitBreakerError => {
  if (Exit.isSuccess(exit)) throw new Error("not a failure")
  for (const reason of exit.cause.reasons) if (reason._tag === "Fail") return reason.error
  throw new Error(`not a typed failure: ${String(exit.cause)}`)
}

const expectSent = (outcome: Outcome) => {
  if (outcome._tag === "Failed") assert.fail(`expected sent, got ${outcome.error._tag}: ${outcome.error.message}`)
}

// -----------------------------------------------------------------------------
// steps shared by the scenarios
// -----------------------------------------------------------------------------

/** The broker is healthy again: a plain kafkajs producer can write (bounded; polls through the proxy). */
const waitUntilServing = Effect.promise(async () => {
  const deadline = performance.now() + 90_000
  let last: unknown
  while (performance.now() < deadline) {
    const producer = rawClient().producer()
    try {
      await producer.connect()
      await producer.send({ topic: READY_TOPIC, messages: [{ value: "ping" }] })
      return
    } catch (error) {
      last = error
    } finally {
      await producer.disconnect().catch(() => undefined)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`Kafka did not serve again within 90 s: ${String(last)}\n${kafka.logTail(30)}`)
})

/** failMax sends fail with a counted KafkaError of one of `reasons`; the last one opens the breaker. */
const failUntilOpen = (scenario: string, reasons: ReadonlyArray<KafkaProducer.KafkaErrorReason>) =>
  Effect.gen(function*() {
    const { breaker } = yield* service
    for (let i = 1; i <= FAIL_MAX; i++) {
      const started = performance.now()
      const outcome = yield* publish(scenario)
      if (outcome._tag === "Sent") return assert.fail(`send ${i} succeeded during the fault (${faultState()})`)
      const error = outcome.error
      assert.instanceOf(error, KafkaError, error.message)
      if (!(error instanceof KafkaError)) return
      assert.include(reasons, error.reason, error.message)
      assert.isTrue(error.brokerFailure)
      assert.strictEqual(error.retries, 0)
      // kafkajs ends the call itself, within its request timeout (+ slack for a busy machine)
      assert.isBelow(performance.now() - started, REQUEST_TIMEOUT_MILLIS + 2_500)
      assert.strictEqual(yield* breaker.state, i < FAIL_MAX ? "Closed" : "Open")
    }
    const snapshot = yield* breaker.snapshot
    assert.strictEqual(snapshot.totals.trips, 1)
    assert.strictEqual(snapshot.failures, FAIL_MAX)
  })

/** While open: every send is rejected at once and the proxy sees no connection, for the whole open period. */
const failsFastWithoutConnecting = (scenario: string) =>
  Effect.gen(function*() {
    const { breaker } = yield* service
    const accepted = proxy.connectionsAccepted
    const started = performance.now()
    for (let i = 0; i < 20; i++) {
      const outcome = yield* publish(scenario)
      if (outcome._tag === "Sent") return assert.fail("a send went through an open breaker")
      assert.instanceOf(outcome.error, CircuitBreakerError)
      assert.strictEqual(outcome.error._tag === "CircuitBreakerError" && outcome.error.reason, "Open")
    }
    assert.isBelow(performance.now() - started, 200, "rejections must not wait for the network")
    yield* eventually(breaker.state, (state) => state === "HalfOpen", RECOVERY_MILLIS * 4)
    assert.strictEqual(proxy.connectionsAccepted, accepted, "no connection attempt while open")
    assert.isAtLeast((yield* breaker.snapshot).totals.rejected, 20)
  })

/** After the open period and the broker's return, one probe closes the breaker. */
const oneProbeCloses = (scenario: string) =>
  Effect.gen(function*() {
    const { breaker } = yield* service
    yield* waitUntilServing
    assert.strictEqual(yield* breaker.state, "HalfOpen")
    const before = (yield* breaker.snapshot).totals
    expectSent(yield* publish(`${scenario}-probe`))
    assert.strictEqual(yield* breaker.state, "Closed")
    const after = (yield* breaker.snapshot).totals
    assert.strictEqual(after.successes - before.successes, 1)
    assert.strictEqual(after.failures, before.failures)
    // and traffic flows again
    for (let i = 0; i < 5; i++) expectSent(yield* publish(`${scenario}-after`))
  })

/** SIGSTOP, then wait (bounded) until every thread of the broker's JVM is stopped. */
const pauseBroker = Effect.promise(async () => {
  kafka.pause()
  const deadline = performance.now() + 5_000
  while (threadStates().some((state) => state !== "T" && state !== "t")) {
    if (performance.now() > deadline) throw new Error(`broker not stopped after SIGSTOP: ${faultState()}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
})

/** Undoes every fault whatever the test did: SIGCONT, proxy back to pass, broker restarted if down. */
const restore = Effect.promise(async () => {
  if (kafka.running) kafka.resume()
  await proxy.pass()
  if (!kafka.running) await kafka.restart()
})

/** States of the broker's threads from /proc (Linux), e.g. "S", "R", "T". */
const threadStates = (): ReadonlyArray<string> => {
  const pid = kafka.pid
  if (pid === undefined) return []
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map((task) => {
      const stat = fs.readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8")
      return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    })
  } catch {
    return []
  }
}

const faultState = () =>
  `broker pid ${kafka.pid} port ${kafka.port}, threads ${
    [...new Set(threadStates())].join("")
  }, proxy ${proxy.mode} on ${proxy.port} -> ${proxy.targetPort}`

const warmUp = (scenario: string) =>
  Effect.gen(function*() {
    expectSent(yield* publish(`${scenario}-before`))
    assert.strictEqual(yield* (yield* service).breaker.state, "Closed")
  })

// -----------------------------------------------------------------------------
// scenarios
// -----------------------------------------------------------------------------

describe("KafkaProducer on a real Kafka broker, with real faults", () => {
  it.live(
    "publishes through the breaker: concurrent sends all acknowledged, breaker closed",
    () =>
      Effect.gen(function*() {
        const { breaker } = yield* service
        const outcomes = yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), () => publish("steady"), {
          concurrency: 10
        })
        for (const outcome of outcomes) expectSent(outcome)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.name, "kafka_producer")
        assert.strictEqual(snapshot.state, "Closed")
        assert.isAtLeast(snapshot.totals.successes, 30)
      }).pipe(Effect.provide(producerLayer()), Effect.ensuring(restore)),
    60_000
  )

  it.live(
    "an idempotent producer (acks -1, retries 1) publishes too",
    () =>
      Effect.gen(function*() {
        for (let i = 0; i < 5; i++) expectSent(yield* publish("idempotent"))
        // the 5 sends, and the eager connect (a call through the breaker too)
        assert.strictEqual((yield* (yield* service).breaker.snapshot).totals.successes, 6)
      }).pipe(Effect.provide(producerLayer({ idempotent: true })), Effect.ensuring(restore)),
    60_000
  )

  it.live(
    "broker killed: opens after failMax, fails fast without connecting, one probe closes it after restart",
    () =>
      Effect.gen(function*() {
        yield* warmUp("killed")
        yield* Effect.promise(() => kafka.kill())
        yield* failUntilOpen("killed", ["Connection"])
        yield* failsFastWithoutConnecting("killed-open")
        yield* Effect.promise(() => kafka.restart())
        yield* oneProbeCloses("killed")
      }).pipe(Effect.provide(producerLayer()), Effect.ensuring(restore)),
    180_000
  )

  it.live(
    "broker paused (SIGSTOP): timeouts count, open, fail fast, one probe closes it after SIGCONT",
    () =>
      Effect.gen(function*() {
        yield* warmUp("paused")
        yield* pauseBroker
        yield* failUntilOpen("paused", ["Timeout"])
        yield* failsFastWithoutConnecting("paused-open")
        kafka.resume()
        yield* oneProbeCloses("paused")
      }).pipe(Effect.provide(producerLayer()), Effect.ensuring(restore)),
    120_000
  )

  it.live(
    "connection stalled by the proxy: timeouts count, open, fail fast, one probe on a fresh connection closes it",
    () =>
      Effect.gen(function*() {
        yield* warmUp("stalled")
        yield* Effect.promise(() => proxy.stall())
        yield* failUntilOpen("stalled", ["Timeout"])
        yield* failsFastWithoutConnecting("stalled-open")
        yield* Effect.promise(() => proxy.pass())
        const accepted = proxy.connectionsAccepted
        yield* oneProbeCloses("stalled")
        // The probe does not reuse the connection that went silent: kafkajs reconnects after the timeouts.
        assert.isAbove(proxy.connectionsAccepted, accepted)
      }).pipe(Effect.provide(producerLayer()), Effect.ensuring(restore)),
    120_000
  )

  it.live(
    "connections cut (open ones reset, new ones reset on accept): open, fail fast, one probe closes it",
    () =>
      Effect.gen(function*() {
        yield* warmUp("cut")
        yield* Effect.promise(() => proxy.refuse())
        proxy.cut()
        yield* failUntilOpen("cut", ["Connection"])
        yield* failsFastWithoutConnecting("cut-open")
        yield* Effect.promise(() => proxy.pass())
        yield* oneProbeCloses("cut")
      }).pipe(Effect.provide(producerLayer()), Effect.ensuring(restore)),
    60_000
  )

  it.live(
    "idle recovery: broker killed, breaker open, broker back, no send at all: the metadata probe closes it",
    () =>
      Effect.gen(function*() {
        const { breaker } = yield* service
        yield* warmUp("idle")
        yield* Effect.promise(() => kafka.kill())
        yield* failUntilOpen("idle", ["Connection"])
        yield* Effect.promise(() => kafka.restart())
        // From here on nothing sends: only the breaker's own probe can close it.
        const back = performance.now()
        const before = (yield* breaker.snapshot).totals
        const bound = RECOVERY_MILLIS + PROBE_GRACE_MILLIS + CONNECTION_TIMEOUT_MILLIS + REQUEST_TIMEOUT_MILLIS + 1_000
        yield* eventually(breaker.state, (state) => state === "Closed", bound + 5_000)
        const closedAfter = performance.now() - back
        const after = (yield* breaker.snapshot).totals
        assert.isBelow(closedAfter, bound, `closed ${Math.round(closedAfter)} ms after the broker was back`)
        assert.strictEqual(after.rejected, before.rejected, "no send was made")
        assert.isAtLeast(after.successes - before.successes, 1, "the probe succeeded")
        yield* waitUntilServing
        expectSent(yield* publish("idle-after"))
      }).pipe(
        Effect.provide(
          producerLayer({
            breaker: {
              failMax: FAIL_MAX,
              recoveryTimeout: RECOVERY_MILLIS,
              maxOpenDuration: RECOVERY_MILLIS,
              probeGrace: PROBE_GRACE_MILLIS
            }
          })
        ),
        Effect.ensuring(restore)
      ),
    180_000
  )

  it.live(
    "a topic the broker does not have (auto-creation off) is not the caller's: UNKNOWN_TOPIC_OR_PARTITION counts",
    () =>
      Effect.gen(function*() {
        const { breaker } = yield* service
        const missing = `missing-${sequence}-${performance.now().toFixed(0)}`
        for (let i = 1; i <= FAIL_MAX; i++) {
          const outcome = yield* publish("unknown-topic", missing)
          if (outcome._tag === "Sent") return assert.fail(`a send to ${missing} succeeded`)
          const error = outcome.error
          assert.instanceOf(error, KafkaError, error.message)
          if (!(error instanceof KafkaError)) return
          assert.strictEqual(error.reason, "UnknownTopic", error.message)
          assert.isTrue(error.brokerFailure)
        }
        assert.strictEqual(yield* breaker.state, "Open")
      }).pipe(Effect.provide(producerLayer({ allowAutoTopicCreation: false })), Effect.ensuring(restore)),
    60_000
  )

  it.live(
    "caller errors (message too large, serialization, topic name) never move the breaker, closed or half-open",
    () =>
      Effect.gen(function*() {
        const { breaker, send } = yield* service
        yield* warmUp("caller")

        // CLOSED with failMax - 1 counted failures: a caller error neither adds one nor resets the count
        yield* Effect.promise(() => proxy.refuse())
        proxy.cut()
        for (let i = 0; i < FAIL_MAX - 1; i++) assert.strictEqual((yield* publish("caller-cut"))._tag, "Failed")
        yield* Effect.promise(() => proxy.pass())
        const before = yield* breaker.snapshot
        assert.deepStrictEqual([before.state, before.failures], ["Closed", FAIL_MAX - 1])

        const tooLarge = yield* publish("caller-large", SMALL_TOPIC, 4_096)
        if (tooLarge._tag === "Sent") return assert.fail("a 4 KiB message went into a 1 KiB topic")
        assert.instanceOf(tooLarge.error, KafkaError)
        if (!(tooLarge.error instanceof KafkaError)) return
        assert.strictEqual(tooLarge.error.reason, "MessageTooLarge")
        assert.strictEqual(tooLarge.error.protocolError, "MESSAGE_TOO_LARGE")
        assert.isFalse(tooLarge.error.brokerFailure)

        const unserializable = yield* Effect.flip(send({ topic: TOPIC, messages: [{ value: { n: 1n } }] }))
        assert.strictEqual(unserializable._tag === "KafkaError" && unserializable.reason, "Serialization")
        const badTopic = yield* Effect.flip(send({ topic: "no spaces allowed", messages: [{ value: "x" }] }))
        assert.strictEqual(badTopic._tag === "KafkaError" && badTopic.reason, "InvalidTopic")

        const after = yield* breaker.snapshot
        assert.deepStrictEqual([after.state, after.failures], ["Closed", FAIL_MAX - 1])
        assert.strictEqual(after.totals.failures, before.totals.failures)
        assert.strictEqual(after.totals.ignored, before.totals.ignored + 1) // only the one that reached Kafka
        assert.strictEqual(after.totals.trips, 0)

        // HALF_OPEN: a caller error as the probe decides nothing; the next good probe closes
        yield* Effect.promise(() => proxy.refuse())
        proxy.cut()
        assert.strictEqual((yield* publish("caller-cut"))._tag, "Failed")
        assert.strictEqual(yield* breaker.state, "Open")
        yield* Effect.promise(() => proxy.pass())
        yield* eventually(breaker.state, (state) => state === "HalfOpen", RECOVERY_MILLIS * 4)
        const probe = yield* publish("caller-large-probe", SMALL_TOPIC, 4_096)
        assert.strictEqual(
          probe._tag === "Failed" && probe.error._tag === "KafkaError" && probe.error.reason,
          "MessageTooLarge"
        )
        assert.strictEqual(yield* breaker.state, "HalfOpen")
        expectSent(yield* publish("caller-probe"))
        assert.strictEqual(yield* breaker.state, "Closed")
      }).pipe(Effect.provide(producerLayer()), Effect.ensuring(restore)),
    60_000
  )

  // Runs last (tests of a file run in order): reads back what every scenario above published.
  it.live(
    "read back: every message reported as sent is in the topic exactly once, no failed one twice, no rejected one",
    () =>
      Effect.gen(function*() {
        const counts = yield* Effect.promise(() => readTopic(TOPIC))
        const sent = [...ledger].filter(([, entry]) => entry.status === "sent")
        const failed = [...ledger].filter(([, entry]) => entry.status === "failed")
        const rejected = [...ledger].filter(([, entry]) => entry.status === "rejected")
        assert.isAtLeast(sent.length, 50)
        assert.isAtLeast(failed.length, 4 * FAIL_MAX)
        assert.isAtLeast(rejected.length, 4 * 20)
        for (const [id] of sent) assert.strictEqual(counts.get(id) ?? 0, 1, `sent ${id}`)
        for (const [id, entry] of failed) assert.isAtMost(counts.get(id) ?? 0, entry.retries + 1, `failed ${id}`)
        for (const [id] of rejected) assert.strictEqual(counts.get(id) ?? 0, 0, `rejected ${id}`)
        for (const id of counts.keys()) assert.isTrue(ledger.has(id), `${id} is in the topic but was never sent`)
      }),
    90_000
  )
})

/** Reads a topic from the beginning to its end offset with a kafkajs consumer; counts each message id. */
async function readTopic(topic: string): Promise<Map<string, number>> {
  // a consumer group needs kafkajs's retries: the group coordinator may still be loading
  const client = rawClient(10)
  const admin = client.admin()
  await admin.connect()
  const offsets = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  const total = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
  const counts = new Map<string, number>()
  if (total === 0) return counts
  const consumer = client.consumer({
    groupId: `it-read-${Date.now()}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000
  })
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    let seen = 0
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`read ${seen} of ${total} messages of ${topic} within 60 s`)),
        60_000
      )
      consumer.run({
        eachMessage: async ({ message }) => {
          const id = (JSON.parse(message.value?.toString() ?? "{}") as { id?: string }).id ?? "<no id>"
          counts.set(id, (counts.get(id) ?? 0) + 1)
          if (++seen >= total) {
            clearTimeout(timer)
            resolve()
          }
        }
      }).catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
  return counts
}
