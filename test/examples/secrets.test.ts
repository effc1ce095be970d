/**
 * Secrets never leak: every connection URL carries a password, every
 * dependency is unreachable (so errors, logs and breaker transitions carry
 * the clients' own failure messages), and the test greps everything an
 * operator or a caller can see: every log line, every HTTP answer (/plans,
 * /health, /metrics, admin routes), every error the service reported.
 */
import { assert, describe, it } from "@effect/vitest"
import * as App from "@neural-hive/example-orchestrator-dynamic/App"
import type { AppConfig } from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { RedisCache } from "@neural-hive/redis"
import { TemporalClient } from "@neural-hive/temporal"
import { Effect, Layer, Logger, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { TestConsole } from "effect/testing"
import * as net from "node:net"

const SECRET = "pa55-Secret-xyz-0123"

/** A loopback port with nothing listening: connections are refused at once. */
const closedPort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const http = (path: string, init?: RequestInit) =>
  Effect.gen(function*() {
    const address = (yield* HttpServer.HttpServer).address
    const url = `http://127.0.0.1:${"port" in address ? address.port : 0}${path}`
    return yield* Effect.promise(async () => {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) })
      return { status: response.status, text: await response.text(), headers: [...response.headers].join("\n") }
    })
  })

describe("secrets", () => {
  it.live(
    "a password in any connection URL, and the admin token, appear in no log, error, /health or /metrics",
    () =>
      Effect.gen(function*() {
        const [kafka, temporal, redis, mongodb] = yield* Effect.promise(() =>
          Promise.all([closedPort(), closedPort(), closedPort(), closedPort()])
        )
        const config: AppConfig = {
          resilienceConfig: "(inline)",
          service: "orchestrator-dynamic",
          host: "127.0.0.1",
          port: 0,
          adminToken: Redacted.make(SECRET),
          kafkaBrokers: [`127.0.0.1:${kafka}`],
          temporalAddress: `127.0.0.1:${temporal}`,
          temporalNamespace: "default",
          redisUrl: Redacted.make(`redis://default:${SECRET}@127.0.0.1:${redis}/0`),
          mongodbUrl: Redacted.make(`mongodb://admin:${SECRET}@127.0.0.1:${mongodb}/orchestrator?authSource=admin`),
          faults: {}
        }
        const settings = yield* OrchestratorConfig.parse(`
circuitBreaker:
  kafka:    { failMax: 2, callTimeoutSeconds: 3 }
  temporal: { failMax: 2, callTimeoutSeconds: 3 }
  redis:    { failMax: 2, callTimeoutSeconds: 1 }
  mongodb:  { failMax: 2, callTimeoutSeconds: 3 }
`)
        const seen: Array<string> = []
        yield* Effect.gen(function*() {
          // Plans reach Redis (fail-open) and Temporal (fail-fast, which stops the plan) ...
          for (let i = 0; i < 4; i++) {
            const reply = yield* http("/plans", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ id: `s-${i}`, steps: ["x"] })
            })
            assert.oneOf(reply.status, [502, 503])
            seen.push(reply.text, reply.headers)
          }
          // ... and a plan stops at the first breaker that refuses (MongoDB's opens first: the outbox relay's
          // sweep reads it), so every client is also called directly, until every breaker is open.
          const store = yield* MongoStore.MongoStore
          const producer = yield* KafkaProducer.KafkaProducer
          const temporal = yield* TemporalClient.TemporalClient
          const cache = yield* RedisCache.RedisCache
          for (let i = 0; i < 3; i++) {
            const errors = [
              yield* Effect.flip(store.insertOne("tickets", { _id: `t-${i}` } as never)),
              yield* Effect.flip(producer.send({ topic: "execution-tickets", messages: [{ value: "x" }] })),
              yield* Effect.flip(
                temporal.startWorkflow("orchestratePlan", { workflowId: `w-${i}`, taskQueue: "q", args: [] })
              ),
              yield* Effect.flip(cache.use("GET", (client) => client.get(`k-${i}`)))
            ]
            for (const error of errors) seen.push(String(error), error.message, JSON.stringify(error))
          }
          for (const path of ["/health", "/metrics", "/live"]) {
            const reply = yield* http(path)
            seen.push(reply.text, reply.headers)
          }
          const denied = yield* http("/admin/breakers/kafka_producer/reset", {
            method: "POST",
            headers: { authorization: "Bearer wrong" }
          })
          assert.strictEqual(denied.status, 401)
          const allowed = yield* http("/admin/breakers/kafka_producer/force-open", {
            method: "POST",
            headers: { authorization: `Bearer ${SECRET}` }
          })
          assert.strictEqual(allowed.status, 200)
          seen.push(denied.text, allowed.text)
          const health = JSON.parse((yield* http("/health")).text)
          // The failures really happened: every breaker opened.
          for (const breaker of health.breakers) assert.isAtLeast(breaker.trips, 1, JSON.stringify(health.breakers))
        }).pipe(
          Effect.provide(
            App.make(config, settings).pipe(Layer.provide(Logger.layer([Logger.consoleJson])))
          )
        )
        const logs = (yield* TestConsole.logLines).map(String)
        assert.isAbove(logs.length, 0)
        assert.isTrue(logs.some((line) => line.includes("circuit_breaker_open")), "a breaker opened and was logged")
        assert.isTrue(logs.some((line) => line.includes("circuit_breaker_manual_control")), "the admin use was logged")
        const everything = [...seen, ...logs].join("\n")
        assert.notInclude(everything, SECRET)
        // The redaction leaves the rest of the URL readable where a client put it in a message.
        assert.notMatch(everything, /:\/\/[^\s/@:]+:[^\s/@*]+@/)
      }).pipe(Effect.provide(TestConsole.layer)),
    120_000
  )
})
