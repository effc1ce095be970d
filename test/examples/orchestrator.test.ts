/**
 * The Orchestrator Dynamic example, booted from its layer graph: once embedded
 * (in memory, with the fault switch) and once against the rig's real servers.
 * Everything is checked over real HTTP on 127.0.0.1, as an operator would.
 */
import { assert, describe, it } from "@effect/vitest"
import * as App from "@neural-hive/example-orchestrator-dynamic/App"
import type { AppConfig } from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { MongoStore } from "@neural-hive/mongodb"
import { Tracing } from "@neural-hive/observability"
import { Outbox } from "@neural-hive/outbox"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Client, Connection } from "@temporalio/client"
import { Clock, Effect, Layer, Logger, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { TestConsole } from "effect/testing"
import { Kafka, logLevel } from "kafkajs"
import { MongoClient } from "mongodb"
import { inject } from "vitest"
import { eventually } from "../integration/eventually.ts"

const baseConfig: AppConfig = {
  resilienceConfig: "(inline)",
  service: "orchestrator-dynamic",
  host: "127.0.0.1",
  port: 0,
  adminToken: undefined,
  kafkaBrokers: undefined,
  temporalAddress: undefined,
  temporalNamespace: "default",
  redisUrl: undefined,
  mongodbUrl: undefined,
  faults: {},
  faultSwitch: true
}

/** The seed's file with a 1 s recovery, so a test sees the whole cycle. */
const fastSettings = OrchestratorConfig.parse(
  `
circuitBreaker:
  kafka:    { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
  temporal: { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1, callTimeoutSeconds: 5 }
  redis:    { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
  mongodb:  { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1, callTimeoutSeconds: 5 }
`
)

const baseUrl = Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address
  return `http://127.0.0.1:${"port" in address ? address.port : 0}`
})

const http = (path: string, init?: RequestInit) =>
  Effect.gen(function*() {
    const url = `${yield* baseUrl}${path}`
    return yield* Effect.promise(async () => {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
      const text = await response.text()
      return { status: response.status, headers: response.headers, text }
    })
  })

const JSON_BODY = { "content-type": "application/json" }

const plan = (id: string) =>
  http("/plans", { method: "POST", headers: JSON_BODY, body: JSON.stringify({ id, steps: ["plan", "execute"] }) })

const fault = (path: string) => http(path, { method: "POST", headers: JSON_BODY })

const metric = (text: string, name: string, circuit: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`circuit="${circuit}"`))
  return line === undefined ? undefined : Number(line.split(" ").pop())
}

const logLines = Effect.map(TestConsole.logLines, (lines) => lines.map((l) => JSON.parse(String(l))))

const kafkaState = (healthText: string): string | undefined =>
  JSON.parse(healthText).breakers.find((b: { name: string }) => b.name === "kafka_producer")?.state

interface OutboxHealth {
  readonly pending: number
  readonly published: number
  readonly oldestPendingSeconds: number
  readonly dead: number
  readonly oldestDead: { readonly id: string; readonly reason: string; readonly deadSeconds: number } | null
}

/** Waits (real time, bounded) until /health's outbox section passes `check`. */
const outboxUntil = (check: (outbox: OutboxHealth) => boolean, timeoutMillis = 10_000) =>
  eventually(
    Effect.map(http("/health"), (h) => JSON.parse(h.text).outbox as OutboxHealth),
    check,
    timeoutMillis
  )

const boot = (config: AppConfig, settings = fastSettings) =>
  Layer.unwrap(Effect.map(settings, (settings) => App.make(config, settings))).pipe(
    Layer.provide(Logger.layer([Logger.consoleJson])),
    // Console output (the JSON log lines) is captured, and read back by the test.
    Layer.provideMerge(TestConsole.layer)
  )

describe("Orchestrator Dynamic, embedded", () => {
  it.live(
    "a plan goes through every step; a Kafka outage trips its breaker, shows in /health, /metrics and logs, and recovers",
    () =>
      Effect.gen(function*() {
        const ok = yield* plan("p-1")
        assert.strictEqual(ok.status, 202)
        const report = JSON.parse(ok.text)
        assert.deepStrictEqual(report.steps.ticket, { status: "queued", detail: "published by the outbox relay" })
        assert.deepStrictEqual(report.steps.persistence, { status: "ok", detail: "stored" })
        yield* outboxUntil((outbox) => outbox.published === 1 && outbox.pending === 0)

        // The same plan again: the cache answers, Temporal and MongoDB say it was already done.
        const again = JSON.parse((yield* plan("p-1")).text)
        assert.deepStrictEqual(again.steps.cache, { status: "ok", detail: "hit" })
        assert.deepStrictEqual(again.steps.workflow, { status: "ok", detail: "already started" })
        assert.deepStrictEqual(again.steps.persistence, { status: "ok", detail: "already stored" })

        // Kafka down: plans are still accepted (202) and queue up; the relay's failed sends trip kafka_producer.
        assert.strictEqual((yield* fault("/faults/kafka/down")).status, 200)
        for (let i = 0; i < 5; i++) {
          const queued = yield* plan(`k-${i}`)
          assert.strictEqual(queued.status, 202)
          assert.strictEqual(JSON.parse(queued.text).steps.ticket.status, "queued")
        }
        yield* eventually(http("/health"), (h) => kafkaState(h.text) === "open", 10_000)
        yield* Effect.sleep("300 millis") // the backlog ages
        const health = yield* http("/health")
        assert.strictEqual(health.status, 200) // Kafka out degrades the service: nothing is refused
        const body = JSON.parse(health.text)
        assert.strictEqual(body.status, "degraded")
        assert.strictEqual(body.outbox.pending, 5)
        assert.isAtLeast(body.outbox.oldestPendingSeconds, 0.3)
        const kafka = body.breakers.find((b: { name: string }) => b.name === "kafka_producer")
        assert.strictEqual(kafka.trips, 1)
        const metrics = (yield* http("/metrics")).text
        assert.strictEqual(metric(metrics, "circuit_breaker_state", "kafka_producer"), 1)
        assert.strictEqual(metric(metrics, "circuit_breaker_trips_total", "kafka_producer"), 1)
        assert.strictEqual(metric(metrics, "circuit_breaker_failures_total", "kafka_producer"), 3)
        assert.strictEqual(metric(metrics, "circuit_breaker_state", "redis_client"), 0)
        assert.include(metrics, "outbox_pending{service=\"orchestrator-dynamic\"} 5")

        // Kafka comes back: with no new plan, the breaker's trial and the relay publish the whole backlog.
        yield* fault("/faults/kafka/up")
        yield* outboxUntil((outbox) => outbox.published === 6 && outbox.pending === 0, 15_000)
        const after = yield* http("/health")
        assert.strictEqual(after.status, 200)
        assert.strictEqual(kafkaState(after.text), "closed")

        const messages = (yield* logLines).map((l) => [l.message, l.annotations?.circuit])
        const transitions = messages.filter(([m]) => String(m).startsWith("circuit_breaker_"))
        assert.deepStrictEqual(transitions, [
          ["circuit_breaker_open", "kafka_producer"],
          ["circuit_breaker_half_open", "kafka_producer"],
          ["circuit_breaker_reset", "kafka_producer"]
        ])
      }).pipe(Effect.provide(boot(baseConfig))),
    30_000
  )

  it.live(
    "Redis down is fail-open: plans are still accepted, /health says degraded with 200",
    () =>
      Effect.gen(function*() {
        for (let i = 0; i < 4; i++) assert.strictEqual((yield* plan(`r-${i}`)).status, 202)
        const report = JSON.parse((yield* plan("r-last")).text)
        assert.strictEqual(report.accepted, true)
        assert.strictEqual(report.steps.cache.status, "skipped")
        const health = yield* http("/health")
        assert.strictEqual(health.status, 200)
        assert.strictEqual(JSON.parse(health.text).status, "degraded")
      }).pipe(Effect.provide(boot({ ...baseConfig, faults: { redis: "down" } }))),
    30_000
  )

  it.live(
    "/metrics shows each circuit's policies from its config: adaptive limits, Kafka's retry budget, Redis's hedge",
    () =>
      Effect.gen(function*() {
        assert.strictEqual((yield* plan("m-1")).status, 202)
        yield* outboxUntil((outbox) => outbox.published === 1)
        const metrics = (yield* http("/metrics")).text
        // The adaptive limits start where the config says, and each call took a slot.
        assert.strictEqual(metric(metrics, "resilience_bulkhead_limit", "temporal_client"), 20)
        assert.strictEqual(metric(metrics, "resilience_bulkhead_limit_max", "temporal_client"), 100)
        assert.strictEqual(metric(metrics, "resilience_bulkhead_limit", "mongodb_client"), 10)
        assert.isAtLeast(metric(metrics, "resilience_bulkhead_admitted_total", "temporal_client")!, 1)
        assert.isAtLeast(metric(metrics, "resilience_bulkhead_admitted_total", "mongodb_client")!, 1)
        // The relay's send counted by Kafka's budget; the cache read by Redis's hedge.
        assert.isAtLeast(metric(metrics, "resilience_retry_calls_total", "kafka_producer")!, 1)
        assert.strictEqual(metric(metrics, "resilience_retry_budget_available", "kafka_producer"), 10)
        assert.isAtLeast(metric(metrics, "resilience_hedge_calls_total", "redis_client")!, 1)
        // Only the policies each dependency uses.
        assert.isUndefined(metric(metrics, "resilience_bulkhead_limit", "kafka_producer"))
        assert.isUndefined(metric(metrics, "resilience_hedge_calls_total", "temporal_client"))
        assert.isUndefined(metric(metrics, "resilience_retry_calls_total", "temporal_client"))
        // Redis's hedges come from a budget of its own (no retry), which counts every GET.
        assert.isAtLeast(metric(metrics, "resilience_retry_calls_total", "redis_client")!, 1)
      }).pipe(Effect.provide(boot(baseConfig))),
    30_000
  )

  it.live(
    "a hanging Temporal holds at most its adaptive limit's calls: the rest are refused at once, never counted as failures",
    () =>
      Effect.gen(function*() {
        // Ten plans at once against a Temporal that never answers: at most 4 starts (the limit) hang.
        const answers = yield* Effect.all(Array.from({ length: 10 }, (_, i) => plan(`h-${i}`)), {
          concurrency: "unbounded"
        })
        const refused = answers.filter((a) => a.status === 503)
        for (const answer of answers) assert.include([502, 503], answer.status, answer.text)
        assert.isAtLeast(refused.length, 1)
        for (const answer of refused) {
          assert.deepInclude(JSON.parse(answer.text).steps.workflow, { status: "rejected", circuit: "temporal_client" })
        }
        const metrics = (yield* http("/metrics")).text
        const series = (name: string, labels: string) =>
          Number(
            metrics.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels))?.split(" ").pop() ??
              Number.NaN
          )
        // The refusals are the bulkhead's, not the breaker's: the breaker refused nothing, and counted only
        // the calls that ran (the starts that timed out and their compensations).
        assert.isAtLeast(
          series("resilience_bulkhead_rejected_total", `circuit="temporal_client",reason="queue_full"`),
          refused.length
        )
        assert.strictEqual(series("circuit_breaker_calls_total", `circuit="temporal_client",result="rejected"`), 0)
        assert.isAtMost(series("circuit_breaker_calls_total", `circuit="temporal_client",result="failure"`), 2 * 4)
        assert.strictEqual(metric(metrics, "circuit_breaker_state", "temporal_client"), 0)
        assert.isAtMost(metric(metrics, "resilience_bulkhead_limit", "temporal_client")!, 4)
      }).pipe(Effect.provide(boot(
        { ...baseConfig, faults: { temporal: "slow" } },
        OrchestratorConfig.parse(
          "circuitBreaker:\n  temporal: { failMax: 50, callTimeoutSeconds: 0.5, adaptiveLimit: { initialLimit: 4, minLimit: 1, maxLimit: 4, maxQueued: 0 } }\n"
        )
      ))),
    30_000
  )

  it.live(
    "a call that outlives its call timeout fails the plan (502, Temporal DeadlineExceeded); only a breaker refusal is a 503",
    () =>
      Effect.gen(function*() {
        // Temporal hangs: each start runs until the 0.3 s call timeout, and counts; so does the compensation
        // (terminating a workflow whose start did not answer), so the breaker opens within two plans.
        let failedPlans = 0
        for (let i = 0; i < 3; i++) {
          const slow = yield* plan(`t-${i}`)
          if (slow.status === 503 && failedPlans > 0) break
          failedPlans++
          assert.strictEqual(slow.status, 502, slow.text)
          assert.isNull(slow.headers.get("retry-after"))
          const workflow = JSON.parse(slow.text).steps.workflow
          assert.strictEqual(workflow.status, "failed")
          assert.strictEqual(workflow.reason, "DeadlineExceeded")
          assert.strictEqual(workflow.error, "TemporalError")
          assert.notInclude(slow.text, "timed out", "the message stays in the log")
        }
        // The timeouts tripped the breaker: now it refuses at once, before any side effect, which is the 503.
        const refused = yield* plan("t-refused")
        assert.strictEqual(refused.status, 503)
        assert.strictEqual(refused.headers.get("retry-after"), "1")
        assert.strictEqual(JSON.parse(refused.text).steps.workflow.status, "rejected")
      }).pipe(Effect.provide(boot(
        { ...baseConfig, faults: { temporal: "slow" } },
        OrchestratorConfig.parse(
          "circuitBreaker:\n  temporal: { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1, callTimeoutSeconds: 0.3 }\n"
        )
      ))),
    30_000
  )

  it.live("bad requests: 400 with the reason, 413 over 64 KiB, 405, unknown fault 404", () =>
    Effect.gen(function*() {
      const notJson = yield* http("/plans", { method: "POST", headers: JSON_BODY, body: "{" })
      assert.strictEqual(notJson.status, 400)
      const noSteps = yield* http("/plans", {
        method: "POST",
        headers: JSON_BODY,
        body: JSON.stringify({ id: "x", steps: [] })
      })
      assert.strictEqual(noSteps.status, 400)
      assert.include(JSON.parse(noSteps.text).error, "steps")
      const badId = yield* http("/plans", {
        method: "POST",
        headers: JSON_BODY,
        body: JSON.stringify({ id: "a b", steps: ["x"] })
      })
      assert.include(JSON.parse(badId.text).error, "id")
      const huge = yield* http("/plans", {
        method: "POST",
        headers: JSON_BODY,
        body: JSON.stringify({ id: "x", steps: ["y".repeat(70_000)] })
      })
      assert.strictEqual(huge.status, 413)
      assert.strictEqual((yield* http("/plans")).status, 405)
      assert.strictEqual((yield* fault("/faults/rabbit/down")).status, 404)
      // Without an admin token there are no admin routes.
      assert.strictEqual((yield* http("/admin/outbox/ticket-x/requeue", { method: "POST" })).status, 404)
      // The server keeps serving after all that.
      assert.strictEqual((yield* plan("still-fine")).status, 202)
    }).pipe(Effect.provide(boot(baseConfig))), 30_000)

  it.live(
    "a dead ticket shows in /health and /metrics; the admin route requeues it (401, 405, 404, 409 as documented) and it is published",
    () => {
      const token = "an-admin-token-of-32-characters!"
      const admin = { authorization: `Bearer ${token}` }
      const post = (path: string, headers: Record<string, string> = admin) => http(path, { method: "POST", headers })
      return Effect.gen(function*() {
        assert.strictEqual((yield* plan("dead-1")).status, 202)
        yield* outboxUntil((outbox) => outbox.published === 1)
        // As the relay marks a ticket Kafka refused (the real refusal: test/outbox/DeadLetterKafka.test.ts).
        const store = yield* MongoStore.MongoStore
        const now = yield* Clock.currentTimeMillis
        yield* store.updateOne("tickets", { _id: "ticket-dead-1" } as never, {
          $set: {
            "outbox.state": "dead",
            "outbox.deadAt": now,
            "outbox.error": { reason: "MessageTooLarge", message: "too large" }
          }
        })
        yield* (yield* Outbox.OutboxRelay).notify
        const dead = yield* outboxUntil((outbox) => outbox.dead === 1)
        assert.strictEqual(dead.oldestDead?.id, "ticket-dead-1")
        assert.strictEqual(dead.oldestDead?.reason, "MessageTooLarge")
        const metrics = (yield* http("/metrics")).text
        assert.match(metrics, /^outbox_dead\{service="orchestrator-dynamic"\} 1$/m)

        assert.strictEqual((yield* post("/admin/outbox/ticket-dead-1/requeue", {})).status, 401)
        assert.strictEqual((yield* http("/admin/outbox/ticket-dead-1/requeue", { headers: admin })).status, 405)
        assert.strictEqual((yield* post("/admin/outbox/ticket-nope/requeue")).status, 404)
        const requeued = yield* post("/admin/outbox/ticket-dead-1/requeue")
        assert.strictEqual(requeued.status, 200, requeued.text)
        assert.deepStrictEqual(JSON.parse(requeued.text), {
          id: "ticket-dead-1",
          outcome: "requeued",
          state: "pending"
        })
        const after = yield* outboxUntil((outbox) => outbox.dead === 0 && outbox.published === 2)
        assert.isNull(after.oldestDead)
        const again = yield* post("/admin/outbox/ticket-dead-1/requeue")
        assert.strictEqual(again.status, 409)
        assert.strictEqual(JSON.parse(again.text).state, "published")
        const all = yield* post("/admin/outbox/requeue-dead")
        assert.deepStrictEqual([all.status, JSON.parse(all.text)], [200, { requeued: 0 }])
      }).pipe(Effect.provide(boot({ ...baseConfig, adminToken: Redacted.make(token) })))
    },
    30_000
  )

  it.effect("a bad config file stops the program with one message per problem", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        OrchestratorConfig.parse("circuitBreaker:\n  kafka: { failMax: 0 }\n  redis: { enabled: maybe }\n")
      )
      assert.strictEqual(error.problems.length, 2)
      assert.include(error.message, "circuitBreaker.kafka.failMax: got 0, expected an integer between 1 and 1000000")
      assert.include(error.message, `circuitBreaker.redis.enabled: got "maybe", expected true or false`)
    }))
})

describe("Orchestrator Dynamic, on the real servers", () => {
  it.live(
    "a plan is started in Temporal, stored in MongoDB and published to Kafka; secrets stay out of /health",
    () =>
      Effect.gen(function*() {
        const brokers = inject("kafkaBrokers").split(",")
        const mongodbUrl = inject("mongodbUrl")
        const topic = "execution-tickets"
        const kafka = new Kafka({ clientId: "orchestrator-test", brokers, logLevel: logLevel.NOTHING })
        const admin = kafka.admin()
        yield* Effect.promise(async () => {
          await admin.connect()
          await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
          await admin.disconnect()
        })
        const config: AppConfig = {
          ...baseConfig,
          kafkaBrokers: brokers,
          temporalAddress: inject("temporalAddress"),
          redisUrl: Redacted.make(inject("redisUrl")),
          mongodbUrl: Redacted.make(`${mongodbUrl}orchestrator`)
        }
        const spans = new InMemorySpanExporter()
        const { finished, id: result } = yield* Effect.gen(function*() {
          const id = `real-${Date.now()}`
          const response = yield* plan(id)
          assert.strictEqual(response.status, 202, response.text)
          // The outbox relay publishes the ticket right after the answer.
          yield* outboxUntil((outbox) => outbox.published >= 1 && outbox.pending === 0, 30_000)
          const faults = yield* fault("/faults/kafka/down")
          assert.strictEqual(faults.status, 409, "the fault switch drives embedded dependencies only")
          const health = yield* http("/health")
          assert.strictEqual(health.status, 200)
          assert.notInclude(health.text, "mongodb://")
          // The real clients carry the same policies as the embedded ones, and /metrics finds them.
          const metrics = (yield* http("/metrics")).text
          assert.strictEqual(metric(metrics, "resilience_bulkhead_limit_max", "temporal_client"), 100)
          assert.strictEqual(metric(metrics, "resilience_bulkhead_limit_max", "mongodb_client"), 50)
          assert.isAtLeast(metric(metrics, "resilience_retry_calls_total", "kafka_producer")!, 1)
          assert.isAtLeast(metric(metrics, "resilience_hedge_calls_total", "redis_client")!, 1)
          // Read now: releasing the tracer's layer empties the in-memory exporter.
          return { id, finished: spans.getFinishedSpans() }
        }).pipe(
          Effect.provide(
            boot(config).pipe(Layer.provide(Tracing.layerOtel({ spanProcessor: new SimpleSpanProcessor(spans) })))
          )
        )

        const stored = yield* Effect.promise(async () => {
          const client = new MongoClient(mongodbUrl, { serverSelectionTimeoutMS: 5000 })
          try {
            return await client.db("orchestrator").collection("tickets").findOne({ _id: `ticket-${result}` as never })
          } finally {
            await client.close()
          }
        })
        assert.strictEqual(stored?.planId, result)

        const published = yield* Effect.promise(async () => {
          const consumer = kafka.consumer({ groupId: `orchestrator-test-${result}` })
          const seen: Array<string> = []
          await consumer.connect()
          await consumer.subscribe({ topic, fromBeginning: true })
          await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.key)) })
          const deadline = Date.now() + 15_000
          while (!seen.includes(`ticket-${result}`) && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 100))
          }
          await consumer.disconnect()
          return seen.filter((key) => key === `ticket-${result}`).length
        })
        assert.strictEqual(published, 1)

        const workflow = yield* Effect.promise(async () => {
          const connection = await Connection.connect({ address: inject("temporalAddress") })
          try {
            return await new Client({ connection, namespace: "default" }).workflow.getHandle(`plan-${result}`)
              .describe()
          } finally {
            await connection.close()
          }
        })
        assert.strictEqual(workflow.type, "orchestratePlan")
        assert.strictEqual(workflow.taskQueue, "orchestrator-dynamic")

        // Each protected call has its client span, annotated by its breaker (Tracing.layer in the app).
        const breakerOf = (name: string) => finished.find((s) => s.name === name)?.attributes["circuit_breaker.name"]
        assert.strictEqual(breakerOf("RedisCache.GET"), "redis_client")
        assert.strictEqual(breakerOf("TemporalClient.startWorkflow"), "temporal_client")
        assert.strictEqual(breakerOf("MongoStore.insertOne"), "mongodb_client")
        assert.strictEqual(breakerOf("KafkaProducer.send"), "kafka_producer")
        const send = finished.find((s) => s.name === "KafkaProducer.send")!
        assert.strictEqual(send.attributes["circuit_breaker.result"], "success")
        // The relay publishes in its own span, not in the plan's request.
        assert.strictEqual(
          send.parentSpanContext?.spanId,
          finished.find((s) => s.name === "OutboxRelay.publish")?.spanContext().spanId
        )
      }),
    90_000
  )
})
