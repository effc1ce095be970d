/**
 * `SERVICE_NAME` names every signal of the example service, run as a process with the fleet on (the
 * rig's real Redis): the breakers' metrics and the fleet's gauge (`service` label), the log lines'
 * `logger`, and the trace resource's `service.name` when `OTEL_SERVICE_NAME` is not set (the spans
 * are caught by a small OTLP/HTTP JSON receiver on 127.0.0.1).
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, assert, beforeAll, describe, inject, it } from "vitest"
import { until } from "../../tools/rig/time.ts"
import { ADMIN_TOKEN, startService } from "../observability/service.ts"

const SERVICE = "checkout-orchestrator"

describe("SERVICE_NAME", () => {
  const received: Array<string> = []
  const collector = createServer((request, response) => {
    let body = ""
    request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => {
      received.push(body)
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  beforeAll(() => new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve)))
  afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())))

  it("names the metrics (the fleet's gauge included), the logs and the trace resource", async () => {
    const port = (collector.address() as AddressInfo).port
    const service = await startService({
      SERVICE_NAME: SERVICE,
      FLEET_REDIS_URL: inject("redisUrl"),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "100"
    })
    try {
      const plan = await fetch(`${service.url}/plans`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: `svc-${Date.now()}`, steps: ["plan"] }),
        signal: AbortSignal.timeout(10_000)
      })
      assert.strictEqual(plan.status, 202, await plan.text())
      const metrics = await (await fetch(`${service.url}/metrics`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` }
      })).text()
      const connected = metrics.split("\n").filter((l) => l.startsWith("circuit_breaker_fleet_connected{"))
      assert.isNotEmpty(connected, metrics.slice(0, 2_000))
      for (const line of connected) assert.include(line, `service="${SERVICE}"`)
      const state = metrics.split("\n").filter((l) => l.startsWith("circuit_breaker_state{"))
      assert.lengthOf(state, 4)
      for (const line of state) assert.include(line, `service="${SERVICE}"`)
      assert.notInclude(metrics, `service="orchestrator-dynamic"`)
      assert.isTrue(await until(() => received.some((body) => body.includes("resourceSpans")), 10_000))
    } finally {
      await service.stop()
    }
    const spans = received.filter((body) => body.includes("resourceSpans")).join("\n")
    assert.include(spans, `"key":"service.name","value":{"stringValue":"${SERVICE}"}`)
    // Every line is named by the service, but those a module names itself (the plan's: "orchestrator").
    const lines = service.lines().filter((line) => typeof line["event"] === "string")
    const events = new Set(lines.map((line) => line["event"]))
    for (const event of ["orchestrator_starting", "service_listening", "service_stopped"]) {
      assert.isTrue(events.has(event), `${event} missing`)
    }
    for (const line of lines) assert.include([SERVICE, "orchestrator"], line["logger"], JSON.stringify(line))
    assert.isAtLeast(lines.filter((line) => line["logger"] === SERVICE).length, 3)
  }, 90_000)
})
