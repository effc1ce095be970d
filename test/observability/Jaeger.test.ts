/**
 * Traces that leave the process: the example service, run as a process against the rig's real Redis,
 * Temporal, MongoDB and Kafka, exports through OTLP/HTTP (configured by the standard OTEL_* variables
 * only) to a real Jaeger, and the test finds the plan's trace through Jaeger's query API.
 *
 * The batch delay is set to a minute, so the spans can only reach Jaeger through the flush on SIGTERM.
 * The relay publishes the plan's ticket after the 202, so the test waits for MongoDB to show it published
 * before the SIGTERM, and polls Jaeger (bounded) for each span it looks for: ingestion is asynchronous too.
 */
import { MongoClient } from "mongodb"
import { afterAll, assert, beforeAll, describe, inject, it } from "vitest"
import { type JaegerHandle, startJaeger } from "../../tools/rig/servers.ts"
import { until } from "../../tools/rig/time.ts"
import { type Service, startService } from "./service.ts"

interface JaegerSpan {
  readonly traceID: string
  readonly spanID: string
  readonly operationName: string
  readonly tags: ReadonlyArray<{ readonly key: string; readonly value: unknown }>
  readonly processID: string
}

interface JaegerTrace {
  readonly traceID: string
  readonly spans: ReadonlyArray<JaegerSpan>
  readonly processes: Record<string, { readonly serviceName: string }>
}

const tag = (span: JaegerSpan, key: string) => span.tags.find((t) => t.key === key)?.value

const SERVICE = "orchestrator-dynamic-otel-test"

describe("OpenTelemetry export to Jaeger", () => {
  let jaeger: JaegerHandle
  let service: Service
  beforeAll(async () => {
    jaeger = await startJaeger()
  }, 90_000)
  afterAll(async () => {
    await service?.stop()
    await jaeger?.stop()
  })

  it(
    "a plan's trace: the server span, the client span of every dependency annotated by its breaker, the log lines' ids",
    async () => {
      service = await startService({
        KAFKA_BROKERS: inject("kafkaBrokers"),
        TEMPORAL_ADDRESS: inject("temporalAddress"),
        REDIS_URL: inject("redisUrl"),
        MONGODB_URL: inject("mongodbUrl"),
        OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpEndpoint,
        OTEL_SERVICE_NAME: SERVICE,
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,service.version=0.1.0",
        // Nothing is exported on a timer during the test: only the flush at SIGTERM can deliver.
        OTEL_BSP_SCHEDULE_DELAY: "60000"
      }, 90_000)
      const planId = `otel-${Date.now()}`
      // Kafka creates the topic on the first send and may answer UnknownTopic until its leader is elected:
      // the plan is retried as a client would (a retried plan is idempotent), and the accepted one is traced.
      let status = 0
      for (let attempt = 0; attempt < 20 && status !== 202; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 500))
        const response = await fetch(`${service.url}/plans`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id: planId, steps: ["plan", "execute"] }),
          signal: AbortSignal.timeout(30_000)
        })
        status = response.status
        await response.text()
      }
      assert.strictEqual(status, 202)
      // The relay sends the ticket after the 202: stopping before its send would leave no KafkaProducer.send span.
      const mongo = new MongoClient(inject("mongodbUrl"), { serverSelectionTimeoutMS: 5_000 })
      try {
        // The service's database: the one named in MONGODB_URL, else the driver's default, as here.
        const tickets = mongo.db().collection<{ _id: string; outbox?: { state?: string } }>("tickets")
        const published = await until(
          async () => (await tickets.findOne({ _id: `ticket-${planId}` }))?.outbox?.state === "published",
          30_000
        )
        assert.isTrue(published, `ticket-${planId} not published by the outbox relay within 30 s`)
      } finally {
        await mongo.close()
      }
      // SIGTERM interrupts the program (exit 130 under NodeRuntime.runMain), never a SIGKILL after the grace period.
      assert.include([0, 130], await service.stop())

      const lines = service.lines()
      const accepted = lines.find((l) => l["event"] === "plan_accepted" && l["plan_id"] === planId)
      assert.isDefined(accepted, JSON.stringify(lines))
      assert.deepStrictEqual(lines.at(-1)?.["event"], "service_stopped")

      let trace: JaegerTrace | undefined
      await until(async () => {
        const found = await fetch(`${jaeger.queryUrl}/api/traces/${String(accepted!["trace_id"])}`)
        const body = await found.json() as { readonly data: ReadonlyArray<JaegerTrace> | null }
        trace = (body.data ?? []).find((t) =>
          t.spans.some((s) => s.operationName === "Orchestrator.submit" && tag(s, "plan.id") === planId)
        )
        return trace !== undefined
      }, 10_000)
      assert.isDefined(trace, `no trace of plan ${planId} in Jaeger`)
      const spans = trace!.spans

      // The log line written inside the plan's span carries the ids Jaeger shows.
      assert.strictEqual(accepted!["trace_id"], trace!.traceID)
      const submit = spans.find((s) => s.operationName === "Orchestrator.submit")!
      assert.strictEqual(accepted!["span_id"], submit.spanID)

      const server = spans.find((s) => tag(s, "span.kind") === "server")
      assert.isDefined(server, spans.map((s) => s.operationName).join(", "))
      assert.strictEqual(tag(server!, "http.request.method"), "POST")
      assert.strictEqual(tag(server!, "http.response.status_code"), 202)

      const byBreaker = new Map<string, Array<JaegerSpan>>()
      for (const span of spans) {
        const circuit = tag(span, "circuit_breaker.name")
        if (typeof circuit === "string") byBreaker.set(circuit, [...(byBreaker.get(circuit) ?? []), span])
      }
      // Redis, Temporal and MongoDB are called inside the plan's trace; Kafka by the outbox relay, in a trace of its own.
      for (
        const [circuit, operation] of [
          ["redis_client", "RedisCache.GET"],
          ["temporal_client", "TemporalClient.startWorkflow"],
          ["mongodb_client", "MongoStore.insertOne"]
        ] as const
      ) {
        const annotated = byBreaker.get(circuit) ?? []
        assert.isTrue(
          annotated.some((s) => s.operationName === operation),
          `${circuit}: ${annotated.map((s) => s.operationName)}`
        )
        for (const span of annotated) {
          assert.strictEqual(tag(span, "circuit_breaker.state"), "closed")
          // A retried plan finds its workflow started and its ticket stored: caller errors, ignored by the breaker.
          assert.include(["success", "ignored"], tag(span, "circuit_breaker.result"))
          assert.oneOf(tag(span, "span.kind"), ["client", "producer"])
        }
      }
      // The relay's send is in a trace of its own, which Jaeger may store after the plan's.
      let send: JaegerSpan | undefined
      await until(async () => {
        const sends = await fetch(
          `${jaeger.queryUrl}/api/traces?service=${SERVICE}&operation=KafkaProducer.send&limit=20&lookback=1h`
        )
        const sendTraces = ((await sends.json()) as { readonly data: ReadonlyArray<JaegerTrace> | null }).data ?? []
        send = sendTraces.flatMap((t) => t.spans).find((s) => s.operationName === "KafkaProducer.send")
        return send !== undefined
      }, 10_000)
      assert.isDefined(send, "no KafkaProducer.send span in Jaeger")
      assert.strictEqual(tag(send!, "circuit_breaker.name"), "kafka_producer")
      assert.strictEqual(tag(send!, "span.kind"), "producer")
      const process = trace!.processes[submit.processID]!
      assert.strictEqual(process.serviceName, SERVICE)
      console.log(
        `[jaeger] trace ${trace!.traceID}: ${
          spans.map((s) =>
            `${s.operationName}${tag(s, "circuit_breaker.name") ? `[${tag(s, "circuit_breaker.name")}]` : ""}`
          )
            .join(", ")
        }`
      )
    },
    180_000
  )
})
