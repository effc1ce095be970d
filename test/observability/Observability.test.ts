import { assert, describe, it } from "@effect/vitest"
import { Metrics, Observability } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { TestConsole } from "effect/testing"
import { scrape } from "./scrape.ts"

describe("Observability.layer", () => {
  it.effect("metrics, JSON transition logs and the HTTP endpoints, with one service name", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1 })
      yield* Effect.ignore(Effect.fail("down").pipe(withBreaker(breaker)))

      const metrics = yield* scrape(yield* Metrics.PrometheusRegistry)
      assert.strictEqual(metrics.get("circuit_breaker_state", { service: "billing", circuit: "kafka_producer" }), 1)

      const lines = (yield* TestConsole.logLines).map((line) => JSON.parse(line as string))
      // Flat lines in the Python service's schema (Logging).
      assert.deepStrictEqual(lines.map((line) => [line.event, line.level, line.service]), [
        ["circuit_breaker_open", "warning", "billing"]
      ])

      const server = yield* HttpServer.HttpServer
      const port = "port" in server.address ? server.address.port : 0
      const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`))
      assert.strictEqual(response.status, 503)
      const body = (yield* Effect.promise(() => response.json())) as { readonly service: string }
      assert.strictEqual(body.service, "billing")
    }).pipe(Effect.provide(
      Observability.layer({ service: "billing", http: { host: "127.0.0.1", port: 0 } }).pipe(
        Layer.provideMerge(Registry.layer),
        Layer.provideMerge(TestConsole.layer)
      )
    )))
})
