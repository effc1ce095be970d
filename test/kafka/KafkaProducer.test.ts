/**
 * KafkaProducer without a Kafka broker: the classifier over kafkajs's own error
 * objects, the checks that run before the breaker (serialization, topic
 * names), and the producer against plain TCP servers that reset or never
 * answer (so "Kafka is down" and "the network is never touched" are real
 * sockets, counted).
 */
import { assert, describe, it } from "@effect/vitest"
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { CircuitBreakerError, CircuitBreakerOptionsError, Registry, RetryBudget } from "@neural-hive/resilience"
import {
  Config,
  ConfigProvider,
  Duration,
  Effect,
  Layer,
  Logger,
  Option,
  Redacted,
  References,
  Schedule,
  Schema
} from "effect"
import * as net from "node:net"
import { afterEach } from "vitest"
import { eventually } from "../integration/eventually.ts"
import { errorClass, protocol, protocolError } from "../support/kafkajs.ts"

const KafkaJSBrokerNotFound = errorClass("KafkaJSBrokerNotFound")
const KafkaJSConnectionClosedError = errorClass("KafkaJSConnectionClosedError")
const KafkaJSConnectionError = errorClass("KafkaJSConnectionError")
const KafkaJSError = errorClass("KafkaJSError")
const KafkaJSLockTimeout = errorClass("KafkaJSLockTimeout")
const KafkaJSMetadataNotLoaded = errorClass("KafkaJSMetadataNotLoaded")
const KafkaJSNonRetriableError = errorClass("KafkaJSNonRetriableError")
const KafkaJSNumberOfRetriesExceeded = errorClass("KafkaJSNumberOfRetriesExceeded")
const KafkaJSRequestTimeoutError = errorClass("KafkaJSRequestTimeoutError")
const KafkaJSSASLAuthenticationError = errorClass("KafkaJSSASLAuthenticationError")
const KafkaJSServerDoesNotSupportApiKey = errorClass("KafkaJSServerDoesNotSupportApiKey")

/** What kafkajs's retrier rejects with once retries are exhausted. */
const retriesExceeded = (cause: Error, retryCount = 0) =>
  new KafkaJSNumberOfRetriesExceeded(cause, { retryCount, retryTime: 100 })

describe("classify: kafkajs errors", () => {
  const countedTypes: Record<string, string> = {
    NETWORK_EXCEPTION: "Connection",
    REQUEST_TIMED_OUT: "Timeout",
    LEADER_NOT_AVAILABLE: "Broker",
    NOT_LEADER_FOR_PARTITION: "Broker",
    BROKER_NOT_AVAILABLE: "Broker",
    REPLICA_NOT_AVAILABLE: "Broker",
    NOT_ENOUGH_REPLICAS: "Broker",
    NOT_ENOUGH_REPLICAS_AFTER_APPEND: "Broker",
    KAFKA_STORAGE_ERROR: "Broker",
    NOT_CONTROLLER: "Broker",
    GROUP_COORDINATOR_NOT_AVAILABLE: "Broker",
    // When in doubt, count: a lost topic, credentials and ACLs fail every send, like an outage.
    UNKNOWN_TOPIC_OR_PARTITION: "UnknownTopic",
    TOPIC_AUTHORIZATION_FAILED: "Authorization",
    CLUSTER_AUTHORIZATION_FAILED: "Authorization",
    SASL_AUTHENTICATION_FAILED: "Authentication",
    UNSUPPORTED_SASL_MECHANISM: "Authentication",
    UNSUPPORTED_VERSION: "Unsupported"
  }
  const callerTypes: Record<string, string> = {
    MESSAGE_TOO_LARGE: "MessageTooLarge",
    RECORD_LIST_TOO_LARGE: "MessageTooLarge",
    INVALID_TOPIC_EXCEPTION: "InvalidTopic",
    INVALID_RECORD: "InvalidRecord",
    CORRUPT_MESSAGE: "InvalidRecord",
    INVALID_TIMESTAMP: "InvalidRecord",
    INVALID_REQUIRED_ACKS: "InvalidRecord",
    POLICY_VIOLATION: "InvalidRecord"
  }

  it("protocol errors that say the cluster is unhealthy count, bare and wrapped by the retrier", () => {
    for (const [type, reason] of Object.entries(countedTypes)) {
      for (const error of [protocolError(type), retriesExceeded(protocolError(type), 2)]) {
        const verdict = KafkaProducer.classify(error)
        assert.deepStrictEqual([type, verdict.reason, verdict.brokerFailure], [type, reason, true])
        assert.strictEqual(verdict.protocolError, type)
        assert.isTrue(KafkaProducer.isFailure(error), type)
      }
    }
    assert.strictEqual(KafkaProducer.classify(retriesExceeded(protocolError("LEADER_NOT_AVAILABLE"), 2)).retries, 2)
  })

  it("caller errors from the broker never count, whatever kafkajs wraps them in", () => {
    for (const [type, reason] of Object.entries(callerTypes)) {
      const bare = protocolError(type)
      const wrapped = [
        bare,
        retriesExceeded(protocolError(type)),
        new KafkaJSNonRetriableError(protocolError(type), { cause: protocolError(type) })
      ]
      for (const error of wrapped) {
        const verdict = KafkaProducer.classify(error)
        assert.deepStrictEqual([type, verdict.reason, verdict.brokerFailure], [type, reason, false])
        assert.isFalse(KafkaProducer.isFailure(error), type)
      }
    }
    assert.isFalse(KafkaProducer.classify(protocolError("MESSAGE_TOO_LARGE")).retriable)
  })

  it("every protocol error kafkajs knows counts, except the ones known to be the caller's", () => {
    const callers = new Set([
      "MESSAGE_TOO_LARGE",
      "RECORD_LIST_TOO_LARGE",
      "INVALID_TOPIC_EXCEPTION",
      "INVALID_RECORD",
      "CORRUPT_MESSAGE",
      "INVALID_TIMESTAMP",
      "INVALID_REQUIRED_ACKS",
      "UNSUPPORTED_COMPRESSION_TYPE",
      "UNSUPPORTED_FOR_MESSAGE_FORMAT",
      "POLICY_VIOLATION",
      "INVALID_REQUEST",
      "INVALID_PARTITIONS"
    ])
    assert.isAbove(protocol.errorCodes.length, 80)
    for (const entry of protocol.errorCodes) {
      const verdict = KafkaProducer.classify(protocol.createErrorFromCode(entry.code))
      assert.strictEqual(verdict.brokerFailure, !callers.has(entry.type), entry.type)
      assert.strictEqual(verdict.protocolError, entry.type)
      // unlisted types: "Broker" when Kafka calls them retriable, "Unknown" otherwise; both count
      if (entry.retriable && !callers.has(entry.type)) {
        assert.notStrictEqual(verdict.reason, "Unknown", entry.type)
      }
    }
    // a code kafkajs does not know: when in doubt, count
    const unknown = KafkaProducer.classify(protocol.createErrorFromCode(9999))
    assert.isTrue(unknown.brokerFailure)
    assert.isFalse(unknown.retriable)
  })

  it("connection, timeout and lookup errors count, with the retry count kafkajs reports", () => {
    const cases: ReadonlyArray<readonly [Error, string]> = [
      [
        new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:9092", { code: "ECONNREFUSED" }),
        "Connection"
      ],
      [new KafkaJSConnectionClosedError("Closed connection", { host: "127.0.0.1", port: 9092 }), "Connection"],
      [new KafkaJSBrokerNotFound("No brokers in the broker pool"), "Connection"],
      [new KafkaJSRequestTimeoutError("Request Produce(key: 0, version: 7) timed out"), "Timeout"],
      [new KafkaJSLockTimeout("Timeout while acquiring lock"), "Timeout"],
      [new KafkaJSMetadataNotLoaded("Producing to topic without metadata"), "Broker"]
    ]
    for (const [error, reason] of cases) {
      for (const shown of [error, retriesExceeded(error, 1), new KafkaJSNonRetriableError(error, { cause: error })]) {
        const verdict = KafkaProducer.classify(shown)
        assert.deepStrictEqual([error.name, verdict.reason, verdict.brokerFailure], [error.name, reason, true])
      }
    }
    const timeout = KafkaProducer.classify(retriesExceeded(new KafkaJSRequestTimeoutError("timed out"), 3))
    assert.strictEqual(timeout.retries, 3)
    assert.isTrue(timeout.retriable)
    // a socket error that reaches us unwrapped
    assert.isTrue(KafkaProducer.isFailure(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })))
  })

  it("kafkajs's own argument checks do not count; SASL failures and unknown errors do", () => {
    const cases: ReadonlyArray<readonly [Error, string, boolean]> = [
      [new KafkaJSNonRetriableError("Invalid topic"), "InvalidTopic", false],
      [new KafkaJSNonRetriableError(`Invalid message without value for topic "t": {}`), "InvalidRecord", false],
      [new KafkaJSSASLAuthenticationError("SASL PLAIN authentication failed: bad credentials"), "Authentication", true],
      [new KafkaJSServerDoesNotSupportApiKey("not supported", { apiKey: 0, apiName: "Produce" }), "Unsupported", true],
      [new KafkaJSError("The producer is disconnected"), "Unknown", true],
      [new TypeError("Cannot read properties of undefined"), "Unknown", true]
    ]
    for (const [error, reason, counts] of cases) {
      const verdict = KafkaProducer.classify(error)
      assert.deepStrictEqual([error.message, verdict.reason, verdict.brokerFailure], [error.message, reason, counts])
      assert.strictEqual(KafkaProducer.isFailure(error), counts, error.message)
    }
    assert.isTrue(KafkaProducer.isFailure("a string"))
    assert.isTrue(KafkaProducer.isFailure(undefined))
  })

  it("a KafkaError carries its verdict; a breaker rejection is never a broker failure", () => {
    const counted = KafkaProducer.fromCause(
      retriesExceeded(new KafkaJSRequestTimeoutError("Request Produce timed out"), 1)
    )
    assert.strictEqual(counted.reason, "Timeout")
    assert.strictEqual(counted.retries, 1)
    assert.isTrue(KafkaProducer.isFailure(counted))
    assert.deepStrictEqual(KafkaProducer.classify(counted), {
      reason: "Timeout",
      brokerFailure: true,
      retriable: true,
      retries: 1,
      protocolError: undefined
    })
    const rejection = new CircuitBreakerError({
      circuit: "kafka_producer",
      state: "Open",
      reason: "Open",
      retryAfter: Duration.seconds(1)
    })
    assert.isFalse(KafkaProducer.isFailure(rejection))
  })

  it("fromCause keeps the original cause and removes secrets from the message", () => {
    const cause = new KafkaJSConnectionError(
      "Connection error: sasl://app:hunter2-pw@kafka:9093 refused, password=hunter2-pw"
    )
    const thrown = retriesExceeded(cause)
    const error = KafkaProducer.fromCause(thrown, ["hunter2-pw"])
    assert.instanceOf(error, KafkaError)
    assert.strictEqual(error._tag, "KafkaError")
    assert.strictEqual(error.cause, thrown)
    assert.notInclude(error.message, "hunter2-pw")
    assert.include(error.message, "KafkaJSConnectionError: Connection error")
    assert.strictEqual(error.reason, "Connection")
  })
})

// -----------------------------------------------------------------------------
// the producer against plain TCP servers
// -----------------------------------------------------------------------------

interface TcpServer {
  readonly address: string
  readonly accepted: () => number
  readonly close: () => Promise<void>
}

const servers = new Set<TcpServer>()
afterEach(async () => {
  await Promise.all(Array.from(servers, (s) => s.close()))
  servers.clear()
})

/** A TCP server on 127.0.0.1 that counts connections and resets them ("reset") or never answers ("stall"). */
const tcpServer = (mode: "reset" | "stall") =>
  Effect.promise(() =>
    new Promise<TcpServer>((resolve, reject) => {
      let accepted = 0
      const sockets = new Set<net.Socket>()
      const server = net.createServer((socket) => {
        accepted++
        socket.on("error", () => undefined)
        if (mode === "reset") return socket.resetAndDestroy()
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.resume()
      })
      server.once("error", reject)
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as net.AddressInfo
        const handle: TcpServer = {
          address: `127.0.0.1:${address.port}`,
          accepted: () => accepted,
          close: () =>
            new Promise((done) => {
              for (const socket of sockets) socket.destroy()
              server.close(() => done())
            })
        }
        servers.add(handle)
        resolve(handle)
      })
    })
  )

const quiet = { logLevel: "None" as const }

/** A retry policy of two retries 10 ms apart within `budget`. */
const retryPolicies = (budget: RetryBudget.RetryBudget) => ({
  retryBudget: budget,
  retry: { budget, maxRetries: 2, schedule: Schedule.spaced("10 millis") }
})

const producerLayer = (brokers: ReadonlyArray<string>, options: Partial<KafkaProducer.Options> = {}) =>
  KafkaProducer.layer({
    brokers,
    connectionTimeout: "500 millis",
    requestTimeout: "1 second",
    sendTimeout: "3 seconds",
    eagerConnect: false,
    breaker: { failMax: 3, recoveryTimeout: "30 seconds" },
    ...quiet,
    ...options
  })

const withProducer = <A, E, E2>(
  layer: Layer.Layer<KafkaProducer.KafkaProducer, E2>,
  f: (producer: KafkaProducer.KafkaProducer["Service"]) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    return yield* f(yield* KafkaProducer.KafkaProducer)
  }).pipe(Effect.provide(layer))

const circular: Record<string, unknown> = { id: "t-1" }
circular["self"] = circular

describe("KafkaProducer: checks before the breaker", () => {
  it.live("unserializable values, bad keys, headers and topic names fail typed, never count, never touch the network", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      yield* withProducer(producerLayer([server.address]), (producer) =>
        Effect.gen(function*() {
          const bad: ReadonlyArray<readonly [KafkaProducer.ProducerRecord, string]> = [
            [{ topic: "tickets", messages: [{ value: { amount: 10n } }] }, "Serialization"],
            [{ topic: "tickets", messages: [{ value: circular }] }, "Serialization"],
            [{ topic: "tickets", messages: [{ value: undefined as unknown as string }] }, "Serialization"],
            [{ topic: "tickets", messages: [{ value: () => 1 }] }, "Serialization"],
            [{ topic: "tickets", messages: [{ key: 42 as unknown as string, value: "v" }] }, "Serialization"],
            [{ topic: "tickets", messages: [{ value: "v", headers: { h: 1 as unknown as string } }] }, "Serialization"],
            [{ topic: "tickets", messages: [{ value: "v", partition: -1 }] }, "Serialization"],
            [{ topic: "tickets", messages: [{ value: "ok" }, { value: { n: 1n } }] }, "Serialization"],
            [{ topic: "bad topic!", messages: [{ value: "v" }] }, "InvalidTopic"],
            [{ topic: "", messages: [{ value: "v" }] }, "InvalidTopic"],
            [{ topic: "..", messages: [{ value: "v" }] }, "InvalidTopic"],
            [{ topic: "x".repeat(250), messages: [{ value: "v" }] }, "InvalidTopic"]
          ]
          for (const [record, reason] of bad) {
            const error = yield* Effect.flip(producer.send(record))
            assert.instanceOf(error, KafkaError)
            if (!(error instanceof KafkaError)) return
            assert.strictEqual(error.reason, reason)
            assert.isFalse(error.brokerFailure)
            assert.isFalse(KafkaProducer.isFailure(error))
          }
          const circularError = yield* Effect.flip(producer.send(bad[1]![0]))
          assert.match(circularError.message, /topic "tickets", message 0: the value cannot be JSON-encoded/)
          // the message names where, not what: no value in it
          const secretValue = yield* Effect.flip(
            producer.send({ topic: "tickets", messages: [{ value: { card: "4111-1111", n: 1n } }] })
          )
          assert.notInclude(secretValue.message, "4111")
          // nothing to send: no call at all
          assert.deepStrictEqual(yield* producer.send({ topic: "tickets", messages: [] }), [])
          assert.deepStrictEqual(yield* producer.sendBatch({ topicMessages: [] }), [])

          const snapshot = yield* producer.breaker.snapshot
          assert.deepStrictEqual(snapshot.totals, {
            successes: 0,
            failures: 0,
            slow: 0,
            ignored: 0,
            rejected: 0,
            trips: 0
          })
          assert.strictEqual(server.accepted(), 0)
        }))
    }))

  it.live("strings, bytes, null and JSON objects are accepted (they reach the network)", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      yield* withProducer(producerLayer([server.address], { breaker: { failMax: 10 } }), (producer) =>
        Effect.gen(function*() {
          const values: ReadonlyArray<KafkaProducer.Value> = [
            "text",
            Buffer.from("bytes"),
            new Uint8Array([1, 2, 3]),
            null,
            { ticketId: "t-1", steps: [1, 2] },
            42
          ]
          for (const value of values) {
            const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ key: "k", value }] }))
            assert.strictEqual(error._tag, "KafkaError")
            if (error._tag !== "KafkaError") {
              return
            }
            assert.strictEqual(error.reason, "Connection")
          }
          assert.isAtLeast(server.accepted(), values.length)
        }))
    }))
})

describe("KafkaProducer: Kafka down", () => {
  it.live("the layer builds; failMax connection failures open the breaker; then it fails fast with no connection attempt", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      yield* withProducer(producerLayer([server.address]), (producer) =>
        Effect.gen(function*() {
          for (let i = 1; i <= 3; i++) {
            const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: `m${i}` }] }))
            assert.instanceOf(error, KafkaError)
            if (!(error instanceof KafkaError)) return
            assert.strictEqual(error.reason, "Connection")
            assert.isTrue(error.brokerFailure)
            assert.strictEqual(error.retries, 0)
            assert.strictEqual(yield* producer.breaker.state, i < 3 ? "Closed" : "Open")
          }
          const attempts = server.accepted()
          assert.isAtLeast(attempts, 3)
          const started = performance.now()
          for (let i = 0; i < 50; i++) {
            const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
            assert.instanceOf(error, CircuitBreakerError)
            if (!(error instanceof CircuitBreakerError)) return
            assert.strictEqual(error.circuit, "kafka_producer")
            assert.strictEqual(error.reason, "Open")
          }
          assert.isBelow(performance.now() - started, 250)
          assert.strictEqual(server.accepted(), attempts)
          const snapshot = yield* producer.breaker.snapshot
          assert.strictEqual(snapshot.totals.failures, 3)
          assert.strictEqual(snapshot.totals.rejected, 50)
          assert.match(snapshot.lastError ?? "", /KafkaError: KafkaJSConnectionError/)
        }))
    }))

  it.live("policies: a send that failed with a retriable error is retried within the budget; none once the breaker opened", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      const budget = yield* RetryBudget.make({ name: "kafka_producer" })
      yield* withProducer(
        producerLayer([server.address], { breaker: { failMax: 10 }, policies: retryPolicies(budget) }),
        (producer) =>
          Effect.gen(function*() {
            const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "m" }] }))
            assert.strictEqual(error instanceof KafkaError && error.reason, "Connection")
            // The send and its two retries, each a failure the breaker counted, each a connection attempt.
            assert.strictEqual((yield* producer.breaker.snapshot).totals.failures, 3)
            assert.deepInclude(budget.stats(), { callsTotal: 1, retriesTotal: 2 })
            assert.isAtLeast(server.accepted(), 3)
          })
      )
      const opening = yield* RetryBudget.make({ name: "kafka_producer" })
      yield* withProducer(
        producerLayer([server.address], { breaker: { failMax: 1 }, policies: retryPolicies(opening) }),
        (producer) =>
          Effect.gen(function*() {
            yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "m" }] }))
            assert.strictEqual(yield* producer.breaker.state, "Open")
            assert.strictEqual((yield* producer.breaker.snapshot).totals.failures, 1)
            assert.deepInclude(opening.stats(), { callsTotal: 1, retriesTotal: 0 })
          })
      )
    }))

  it.live("nothing listening: ECONNREFUSED is a Connection failure, and the eager connect counts as one call", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      const address = server.address
      yield* Effect.promise(() => server.close())
      yield* withProducer(producerLayer([address], { eagerConnect: true }), (producer) =>
        Effect.gen(function*() {
          // the eager connect runs in the background; wait (bounded) for its outcome
          for (let i = 0; i < 100 && (yield* producer.breaker.snapshot).totals.failures === 0; i++) {
            yield* Effect.sleep("20 millis")
          }
          assert.strictEqual((yield* producer.breaker.snapshot).totals.failures, 1)
          const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
          assert.strictEqual(error._tag, "KafkaError")
          if (error._tag !== "KafkaError") return
          assert.strictEqual(error.reason, "Connection")
          assert.match(error.message, /ECONNREFUSED/)
          assert.strictEqual(yield* producer.breaker.state, "Closed")
        }))
    }))

  it.live("a server that never answers: the send ends by requestTimeout as a counted Timeout", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("stall")
      yield* withProducer(
        producerLayer([server.address], { connectionTimeout: "300 millis", requestTimeout: "300 millis" }),
        (producer) =>
          Effect.gen(function*() {
            const started = performance.now()
            const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
            assert.isBelow(performance.now() - started, 2_500)
            assert.strictEqual(error._tag, "KafkaError")
            if (error._tag !== "KafkaError") return
            assert.strictEqual(error.reason, "Timeout")
            assert.strictEqual((yield* producer.breaker.snapshot).totals.failures, 1)
          })
      )
    }))

  it.live("sendTimeout (the breaker's callTimeout) ends a call kafkajs would keep waiting on, and counts", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("stall")
      yield* withProducer(
        producerLayer([server.address], {
          connectionTimeout: "20 seconds",
          requestTimeout: "20 seconds",
          sendTimeout: "300 millis",
          disconnectTimeout: "200 millis"
        }),
        (producer) =>
          Effect.gen(function*() {
            const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
            assert.instanceOf(error, KafkaError)
            if (!(error instanceof KafkaError)) return
            assert.strictEqual(error.reason, "Timeout")
            assert.isTrue(error.brokerFailure)
            assert.strictEqual((yield* producer.breaker.snapshot).totals.failures, 1)
          })
      )
    }))

  it.live("closing the scope never hangs: the disconnect is bounded while a request is stuck", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("stall")
      const started = yield* Effect.sync(() => performance.now())
      yield* withProducer(
        producerLayer([server.address], {
          connectionTimeout: "20 seconds",
          requestTimeout: "20 seconds",
          sendTimeout: "30 seconds",
          disconnectTimeout: "300 millis",
          eagerConnect: true
        }),
        () => Effect.sleep("200 millis")
      )
      assert.isBelow(performance.now() - started, 2_000)
      assert.strictEqual(server.accepted(), 1)
    }))

  it.live("idle: when the open period ends with no send, the breaker's metadata probe tries the cluster itself", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      const idle = (probe: boolean) =>
        producerLayer([server.address], {
          probe,
          breaker: { failMax: 1, recoveryTimeout: "200 millis", maxOpenDuration: "200 millis", probeGrace: "50 millis" }
        })
      const probed = yield* withProducer(idle(true), (producer) =>
        Effect.gen(function*() {
          yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
          assert.strictEqual(yield* producer.breaker.state, "Open")
          const accepted = server.accepted()
          // No send from here on: only the probe reaches the (still resetting) server, and its failure counts.
          // Waited for (bounded), not slept on: a loaded machine may take longer than the 250 ms open period.
          const snapshot = yield* eventually(
            producer.breaker.snapshot,
            (s) => server.accepted() > accepted && s.totals.failures >= 2 && s.totals.trips >= 2,
            10_000
          )
          assert.isAbove(server.accepted(), accepted, "the probe connected")
          assert.isAtLeast(snapshot.totals.failures, 2, "the failed probe counted")
          assert.isAtLeast(snapshot.totals.trips, 2, "and reopened the breaker")
          return snapshot.totals.failures
        }))
      assert.isAtLeast(probed, 2)
      const quiet = yield* withProducer(idle(false), (producer) =>
        Effect.gen(function*() {
          yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
          const accepted = server.accepted()
          yield* Effect.sleep("1 second")
          assert.strictEqual(server.accepted(), accepted, "probe: false: nothing dials while idle")
          return yield* producer.breaker.state
        }))
      assert.strictEqual(quiet, "HalfOpen")
    }))

  it.live("after the scope closed a send fails with reason Closed and does not reconnect", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      const producer = yield* withProducer(producerLayer([server.address]), Effect.succeed)
      const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
      assert.strictEqual(error._tag, "KafkaError")
      if (error._tag !== "KafkaError") return
      assert.strictEqual(error.reason, "Closed")
      assert.strictEqual(server.accepted(), 0)
    }))
})

const buildError = <E>(layer: Layer.Layer<KafkaProducer.KafkaProducer, E>) =>
  Effect.flip(withProducer(layer, () => Effect.void))

describe("KafkaProducer: options, config, logs", () => {
  it.live("bad options fail the layer with CircuitBreakerOptionsError naming the option, as the breaker's do", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Partial<KafkaProducer.Options>, RegExp]> = [
        [{ brokers: [] }, /option brokers is \[\], expected a non-empty list/],
        [{ brokers: ["kafka"] }, /option brokers is "kafka", expected host:port/],
        [{ requestTimeout: -1 }, /option requestTimeout is -1/],
        [{ retries: -1 }, /option retries is -1/],
        [{ idempotent: true, retries: 0 }, /option retries is 0, expected at least 1 with idempotent/],
        [{ idempotent: true, acks: 1 }, /option acks is 1, expected -1 with idempotent/],
        // A CA file's path instead of its content is the usual mistake: named, the value's size only.
        [{ ssl: { ca: "/etc/kafka/ca.pem" } }, /option ssl.ca is "a string of 17 characters", expected PEM/],
        [{ ssl: { servername: "" } }, /option ssl.servername/],
        [{ ssl: "yes" as unknown as boolean }, /option ssl is "yes"/]
      ]
      for (const [options, message] of cases) {
        const error = yield* buildError(producerLayer(["127.0.0.1:9"], options))
        assert.instanceOf(error, CircuitBreakerOptionsError)
        if (!(error instanceof CircuitBreakerOptionsError)) return
        assert.strictEqual(error.circuit, "kafka_producer")
        assert.match(error.message, message)
      }
      const secret = Redacted.make("hunter2-pw")
      const sasl = yield* buildError(
        producerLayer(["127.0.0.1:9"], { sasl: { mechanism: "plain", username: "", password: secret } })
      )
      assert.match(sasl.message, /sasl.username/)
      const password = yield* buildError(
        producerLayer(["127.0.0.1:9"], {
          sasl: { mechanism: "plain", username: "u", password: "hunter2-pw" as unknown as Redacted.Redacted<string> }
        })
      )
      assert.instanceOf(password, CircuitBreakerOptionsError)
      assert.match(password.message, /sasl.password/)
      assert.notInclude(password.message + JSON.stringify(password), "hunter2-pw")
      const breaker = yield* buildError(producerLayer(["127.0.0.1:9"], { breaker: { failMax: 0 } }))
      assert.instanceOf(breaker, CircuitBreakerOptionsError)
    }))

  it.effect("config reads KAFKA_* variables; the SASL password stays redacted", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromEnv({
        env: {
          KAFKA_BROKERS: "10.0.0.1:9092,10.0.0.2:9092",
          KAFKA_SEND_TIMEOUT: "7 seconds",
          KAFKA_SASL_USERNAME: "orchestrator",
          KAFKA_SASL_MECHANISM: "scram-sha-512",
          KAFKA_SASL_PASSWORD: "hunter2-pw"
        }
      })
      const options = yield* KafkaProducer.config.parse(provider)
      assert.deepStrictEqual(options.brokers, ["10.0.0.1:9092", "10.0.0.2:9092"])
      assert.deepStrictEqual(Duration.toMillis(Duration.fromInputUnsafe(options.sendTimeout!)), 7_000)
      assert.strictEqual(options.sasl?.mechanism, "scram-sha-512")
      assert.strictEqual(Redacted.value(options.sasl!.password), "hunter2-pw")
      assert.notInclude(JSON.stringify(options), "hunter2-pw")
      assert.notInclude(String(options.sasl!.password), "hunter2-pw")

      const minimal = yield* KafkaProducer.config.parse(ConfigProvider.fromEnv({ env: { KAFKA_BROKERS: "k:9092" } }))
      assert.deepStrictEqual(minimal.brokers, ["k:9092"])
      assert.isUndefined(minimal.sasl)
      const missing = yield* Effect.flip(KafkaProducer.config.parse(ConfigProvider.fromEnv({ env: {} })))
      assert.match(String(missing), /KAFKA_BROKERS/)
    }))

  it.live("layerConfig builds the service; its breaker registers in the Registry as kafka_producer", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      const layer = KafkaProducer.layerConfig({
        brokers: Config.Array(Schema.String, "KAFKA_BROKERS"),
        eagerConnect: Config.succeed(false),
        logLevel: Config.succeed("None" as const),
        breaker: Config.succeed({ failMax: 2 })
      }).pipe(
        Layer.provideMerge(Registry.layer),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { KAFKA_BROKERS: server.address } })))
      )
      yield* Effect.gen(function*() {
        const producer = yield* KafkaProducer.KafkaProducer
        const registry = yield* Registry.Registry
        const registered = yield* registry.get("kafka_producer")
        assert.isTrue(Option.isSome(registered) && registered.value === producer.breaker)
        const error = yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
        assert.strictEqual(error._tag, "KafkaError")
        assert.isAtLeast(server.accepted(), 1)
      }).pipe(Effect.provide(layer))
    }))

  it.live("kafkajs logs reach Effect's logger, annotated, and never show the SASL password", () =>
    Effect.gen(function*() {
      const server = yield* tcpServer("reset")
      const lines: Array<{ readonly level: string; readonly text: string }> = []
      const capture = Logger.make((options) => {
        const message = Array.isArray(options.message) ? options.message.join(" ") : String(options.message)
        const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
        lines.push({ level: options.logLevel, text: `${message} ${JSON.stringify(annotations)}` })
      })
      const layer = producerLayer([server.address], {
        logLevel: "Debug",
        sasl: { mechanism: "plain", username: "orchestrator", password: Redacted.make("hunter2-pw") }
      })
      const error = yield* withProducer(
        layer,
        (producer) => Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
      ).pipe(
        Effect.provide(Logger.layer([capture])),
        Effect.provideService(References.MinimumLogLevel, "All")
      )
      assert.strictEqual(error._tag, "KafkaError")
      assert.notInclude(error.message, "hunter2-pw")
      assert.isTrue(
        lines.some((line) => line.level === "Error" && line.text.includes(`"kafkajs":"Connection"`)),
        lines.map((line) => line.text).join("\n")
      )
      assert.isTrue(lines.some((line) => line.level === "Debug"))
      for (const line of lines) assert.notInclude(line.text, "hunter2-pw")
    }))
})
