/**
 * The consumer test's program (scripts/consumer-test.ts): compiled with strict TypeScript and run
 * with plain `node` in a scratch project that installed the packed tarballs. It needs no server:
 * breakers trip on failures made here, the Redis cache fails open against a closed port, and each
 * integration classifies errors built from the user's own copy of its client library.
 */
import { Fleet } from "@neural-hive/fleet"
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore, MongoStoreError } from "@neural-hive/mongodb"
import { Http, Metrics, Observability, ServiceName, Tracing, TransitionLog } from "@neural-hive/observability"
import { Outbox } from "@neural-hive/outbox"
import { RedisCache, RedisError } from "@neural-hive/redis"
import {
  CircuitBreaker,
  CircuitBreakerError,
  Facade,
  failOpen,
  redact,
  Registry,
  Remote,
  ResilienceConfig,
  withBreaker
} from "@neural-hive/resilience"
import { TemporalClient, TemporalError } from "@neural-hive/temporal"
import { WorkflowNotFoundError } from "@temporalio/client"
import { Data, Effect, Layer, Option } from "effect"
import kafkajs from "kafkajs"
import { MongoServerError } from "mongodb"
import { strict as assert } from "node:assert"

class Down extends Data.TaggedError("Down")<{ readonly message: string }> {}

const program = Effect.gen(function*() {
  // Circuits by name, as the circuitBreaker block of a Helm values file would carry them.
  const settings = yield* ResilienceConfig.parse(
    "circuitBreaker:\n  kafka_producer: { enabled: true, failMax: 2, maxOpenSeconds: 60, recoveryTimeoutSeconds: 30 }\n",
    { env: {} }
  )
  const kafkaSettings = settings["kafka_producer"]
  assert.ok(kafkaSettings !== undefined)
  const kafka = yield* CircuitBreaker.make(ResilienceConfig.toBreakerOptions("kafka_producer", kafkaSettings))

  // The outbox mark and the fleet's layer constructor are there for a program of your own.
  assert.equal(Outbox.pending({ _id: "ticket-1" }, 42).outbox.state, "pending")
  assert.equal(typeof Fleet.layer, "function")
  const redisBreaker = yield* CircuitBreaker.make({ name: "cache", failMax: 1, recoveryTimeout: "1 minute" })

  // Two counted failures trip kafka_producer; the third call is refused without running.
  const down = Effect.fail(new Down({ message: "connection refused" }))
  for (let i = 0; i < 2; i++) {
    const error = yield* Effect.flip(down.pipe(withBreaker(kafka)))
    assert.equal(error._tag, "Down")
  }
  const refused = yield* Effect.flip(down.pipe(withBreaker(kafka)))
  assert.ok(refused instanceof CircuitBreakerError, "an open breaker fails with CircuitBreakerError")
  assert.equal(refused.circuit, "kafka_producer")
  assert.equal(yield* kafka.state, "Open")
  // Read synchronously (the readers' view), and as a coordination backend sees it (Remote).
  assert.equal(kafka.view.state(), "Open")
  assert.equal(kafka.view.totals().trips, 1)
  assert.equal(Remote.status(kafka).openings, 1)

  // Fail-open: a failure becomes the fallback, and so does every call once the breaker is open.
  assert.ok(Option.isNone(yield* down.pipe(withBreaker(redisBreaker), failOpen("cache GET", Option.none))))
  assert.equal(yield* redisBreaker.state, "Open")

  // The Promise facade refuses too.
  const send = Facade.wrapPromise(kafka, async (topic: string) => topic)
  yield* Effect.promise(() => send("execution-tickets").then(() => assert.fail("should be refused"), () => undefined))

  // Metrics as Prometheus scrapes them.
  const prometheus = yield* Metrics.PrometheusRegistry
  const text = yield* Effect.promise(() => prometheus.metrics())
  assert.match(text, /circuit_breaker_state\{service="consumer",circuit="kafka_producer"\} 1/)
  assert.match(text, /circuit_breaker_trips_total\{service="consumer",circuit="kafka_producer"\} 1/)

  // /health as JSON: a fail-fast breaker open makes the service unavailable.
  const registry = yield* Registry.Registry
  const health = Http.health("consumer", yield* registry.snapshots)
  assert.equal(health.status, "unavailable")
  assert.equal(Http.statusCode(health), 503)

  // Redis fails open against a port where nothing listens.
  const cache = yield* RedisCache.make({ url: "redis://:s3cret@127.0.0.1:1", connectTimeout: "200 millis" })
  assert.ok(Option.isNone(yield* cache.get("plan:p1")))

  // Each integration classifies the user's own driver errors: one copy of each client library.
  assert.equal(
    KafkaProducer.isFailure(new kafkajs.KafkaJSConnectionError("Connection error: connect ECONNREFUSED")),
    true
  )
  assert.equal(
    MongoStore.toMongoStoreError("insertOne", new MongoServerError({ message: "E11000", code: 11000 })).reason,
    "DuplicateKey"
  )
  assert.equal(
    TemporalClient.toTemporalError("describeWorkflow", new WorkflowNotFoundError("gone", "w-1", undefined)).reason,
    "NotFound"
  )
  assert.equal(redact("redis://:s3cret@127.0.0.1:6379").includes("s3cret"), false)

  // The layers a service composes (built elsewhere; typed here).
  const Integrations: Layer.Layer<
    KafkaProducer.KafkaProducer | TemporalClient.TemporalClient | MongoStore.MongoStore,
    unknown
  > = Layer.mergeAll(
    KafkaProducer.layer({ brokers: ["127.0.0.1:9092"] }),
    TemporalClient.layer({ address: "127.0.0.1:7233" }),
    MongoStore.layer({ url: "mongodb://127.0.0.1:27017/", database: "orchestrator" })
  )
  const errors: ReadonlyArray<{ readonly _tag: string }> = [
    new KafkaError({ reason: "Unknown", message: "", brokerFailure: true, retriable: false, retries: 0 }),
    new MongoStoreError({ reason: "DuplicateKey", operation: "insertOne", message: "" }),
    new RedisError({ reason: "Connection", command: "GET", message: "" }),
    new TemporalError({ reason: "NotFound", operation: "describeWorkflow", message: "" })
  ]
  console.log(
    JSON.stringify({
      kafka_producer: yield* kafka.state,
      refused: refused.reason,
      health: health.status,
      layers: Layer.isLayer(Integrations),
      errors: errors.map((e) => e._tag),
      metric: text.split("\n").find((line) => line.startsWith("circuit_breaker_state{"))
    })
  )
}).pipe(Effect.scoped)

const MainLayer = Layer.mergeAll(
  Metrics.layer({ service: "consumer" }),
  TransitionLog.layer(),
  Tracing.layer
).pipe(Layer.provideMerge(Registry.layer), Layer.provide(ServiceName.layer("consumer")))

// Observability.layer (metrics, logs, HTTP on a port) type-checks here; the run above needs no port.
void Observability.layer

Effect.runPromise(program.pipe(Effect.provide(MainLayer))).then(
  () => console.log("consumer: ok"),
  (error: unknown) => {
    console.error("consumer: FAILED", error)
    process.exitCode = 1
  }
)
