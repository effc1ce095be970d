/**
 * The example service against an abusive client and a careless operator
 * (issue 13): the fault switch, path tricks, cross-site requests, content
 * types, `Expect: 100-continue`, what a 502 tells, readiness, and an idle
 * service that recovers by itself. Everything over real HTTP on 127.0.0.1;
 * the tricky requests are written byte for byte on raw sockets, since an HTTP
 * client would normalise them.
 */
import { assert, describe, it } from "@effect/vitest"
import * as App from "@neural-hive/example-orchestrator-dynamic/App"
import * as AppConfig from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { ConfigProvider, Effect, Layer, Logger, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { TestConsole } from "effect/testing"
import * as net from "node:net"

const baseConfig: AppConfig.AppConfig = {
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

const TOKEN = "a-long-enough-admin-token"

const fastSettings = OrchestratorConfig.parse(`
circuitBreaker:
  kafka:    { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
  temporal: { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
  redis:    { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
  mongodb:  { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
`)

const boot = (config: AppConfig.AppConfig, settings = fastSettings) =>
  Layer.unwrap(Effect.map(settings, (settings) => App.make(config, settings))).pipe(
    Layer.provide(Logger.layer([Logger.consoleJson])),
    Layer.provideMerge(TestConsole.layer)
  )

const port = Effect.map(HttpServer.HttpServer, (server) => "port" in server.address ? server.address.port : 0)

const JSON_BODY = { "content-type": "application/json" }

const http = (path: string, init?: RequestInit) =>
  Effect.gen(function*() {
    const url = `http://127.0.0.1:${yield* port}${path}`
    return yield* Effect.promise(async () => {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
      return { status: response.status, headers: response.headers, text: await response.text() }
    })
  })

const plan = (id: string) =>
  http("/plans", { method: "POST", headers: JSON_BODY, body: JSON.stringify({ id, steps: ["plan"] }) })

/** Writes `data` as is on a fresh connection; resolves with what came back once the server closed or 3 s passed. */
const raw = (data: string) =>
  Effect.flatMap(port, (port) =>
    Effect.promise(() =>
      new Promise<string>((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port }, () => socket.write(data))
        let answer = ""
        const timer = setTimeout(() => {
          socket.destroy()
          resolve(answer)
        }, 3_000)
        socket.on("data", (chunk: Buffer) => answer += chunk.toString("latin1"))
        socket.on("error", () => undefined)
        socket.on("close", () => {
          clearTimeout(timer)
          resolve(answer)
        })
      })
    ))

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)

const faultsNow = Effect.map(http("/faults"), (reply) => JSON.parse(reply.text).faults)

const logLines = Effect.map(TestConsole.logLines, (lines) => lines.map((l) => JSON.parse(String(l))))

/** The service's settings from these environment variables. */
const read = (env: Record<string, string>) =>
  Effect.gen(function*() {
    return yield* AppConfig.config
  }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))

describe("the fault switch", () => {
  it.effect("is off unless FAULT_SWITCH=on; the demo listens on 127.0.0.1 unless HTTP_HOST says otherwise", () =>
    Effect.gen(function*() {
      const defaults = yield* read({})
      assert.strictEqual(defaults.faultSwitch, false)
      assert.strictEqual(defaults.host, "127.0.0.1")
      assert.deepStrictEqual(defaults.readinessBreakers, [])
      // On every interface, only behind a token (issue 27; test/examples/abuse.test.ts).
      const on = yield* read({
        FAULT_SWITCH: "on",
        HTTP_HOST: "0.0.0.0",
        ADMIN_TOKEN: TOKEN,
        READINESS_BREAKERS: "redis_client, mongodb_client"
      })
      assert.strictEqual(on.faultSwitch, true)
      assert.strictEqual(on.host, "0.0.0.0")
      assert.deepStrictEqual(on.readinessBreakers, ["redis_client", "mongodb_client"])
      const bad = yield* Effect.flip(read({ FAULT_SWITCH: "yes" }))
      assert.include(String(bad), "FAULT_SWITCH")
    }))

  it.live("off: /faults does not exist", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* http("/faults/kafka/down", { method: "POST", headers: JSON_BODY })).status, 404)
      assert.strictEqual((yield* http("/faults")).status, 404)
      assert.strictEqual((yield* plan("still-up")).status, 202)
    }).pipe(Effect.provide(boot({ ...baseConfig, faultSwitch: false }))))

  it.live("with an admin token: 401 before anything else, and the token opens it", () =>
    Effect.gen(function*() {
      for (
        const [path, method] of [
          ["/faults/kafka/down", "POST"],
          ["/faults/kafka/down", "GET"],
          ["/faults/rabbit/down", "POST"],
          ["/faults", "GET"]
        ] as const
      ) {
        const reply = yield* http(path, {
          method,
          headers: { ...JSON_BODY, authorization: "Bearer wrong-token-of-length" }
        })
        assert.strictEqual(reply.status, 401, `${method} ${path}`)
      }
      const authorized = { ...JSON_BODY, authorization: `Bearer ${TOKEN}` }
      assert.strictEqual((yield* http("/faults/kafka/down", { method: "POST", headers: authorized })).status, 200)
      const faults = yield* http("/faults", { headers: authorized })
      assert.strictEqual(JSON.parse(faults.text).faults.kafka, "down")
    }).pipe(Effect.provide(boot({ ...baseConfig, adminToken: Redacted.make(TOKEN) }))))

  it.live("an ADMIN_TOKEN shorter than 16 characters stops the start, naming the variable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(boot({ ...baseConfig, adminToken: Redacted.make("short-token") })).pipe(Effect.scoped)
      )
      assert.strictEqual(error._tag, "HttpOptionsError")
      assert.include(error.message, "ADMIN_TOKEN")
      assert.include(error.message, "16")
      assert.notInclude(error.message, "short-token")
    }))

  it.live("refuses a dependency that is not embedded (409) and drives the embedded ones", () =>
    Effect.gen(function*() {
      const refused = yield* http("/faults/kafka/down", { method: "POST", headers: JSON_BODY })
      assert.strictEqual(refused.status, 409)
      assert.include(JSON.parse(refused.text).error, "kafka")
      assert.strictEqual((yield* http("/faults/redis/down", { method: "POST", headers: JSON_BODY })).status, 200)
      const listed = JSON.parse((yield* http("/faults")).text)
      assert.deepStrictEqual(listed.embedded, ["temporal", "redis", "mongodb"])
      assert.strictEqual(listed.faults.kafka, "up")
    }).pipe(
      // A real Kafka that nothing answers for: the switch must still not pretend to drive it.
      Effect.provide(boot({ ...baseConfig, kafkaBrokers: ["127.0.0.1:9"] }))
    ), 30_000)
})

describe("requests a browser page or a proxy trick could send", () => {
  it.live("path tricks are 400 on every route, before routing: nothing is switched", () =>
    Effect.gen(function*() {
      const tricks = [
        "/x/%2e%2e/faults/kafka/down",
        "/x/%2E%2E/faults/kafka/down",
        "/x/../faults/kafka/down",
        "/faults/./kafka/down",
        "/faults\\kafka\\down",
        "/x/..\\faults/kafka/down",
        "//faults/kafka/down",
        "/faults//kafka/down",
        "/faults%2fkafka%2fdown",
        "/faults%5ckafka%5cdown",
        "http://localhost/x/%2e%2e/faults/kafka/down"
      ]
      for (const path of tricks) {
        const answer = yield* raw(
          `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`
        )
        assert.strictEqual(statusOf(answer), 400, path)
      }
      for (const path of ["/x/../health", "/x/%2e%2e/live", "//metrics", "/x/../plans"]) {
        assert.strictEqual(
          statusOf(yield* raw(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)),
          400,
          path
        )
      }
      assert.deepStrictEqual(yield* faultsNow, { kafka: "up", temporal: "up", redis: "up", mongodb: "up" })
      // A query string is not part of the path.
      assert.strictEqual((yield* http("/health?next=../../x")).status, 200)
    }).pipe(Effect.provide(boot(baseConfig))), 30_000)

  it.live(
    "cross-site simple requests (form or text/plain, no-cors fetch) are 415 on /faults and /plans",
    () =>
      Effect.gen(function*() {
        const simple = [
          { "content-type": "text/plain" },
          { "content-type": "application/x-www-form-urlencoded" },
          { "content-type": "multipart/form-data; boundary=x" },
          {}
        ]
        for (const headers of simple) {
          const fault = yield* http("/faults/kafka/down", { method: "POST", headers, body: "{}" })
          assert.strictEqual(fault.status, 415, JSON.stringify(headers))
          const body = JSON.stringify({ id: "csrf", steps: ["x"] })
          assert.strictEqual((yield* http("/plans", { method: "POST", headers, body })).status, 415)
        }
        assert.deepStrictEqual(yield* faultsNow, { kafka: "up", temporal: "up", redis: "up", mongodb: "up" })
        const json = yield* http("/plans", {
          method: "POST",
          headers: { "content-type": "application/json; charset=utf-8" },
          body: JSON.stringify({ id: "fine", steps: ["x"] })
        })
        assert.strictEqual(json.status, 202)
      }).pipe(Effect.provide(boot(baseConfig))),
    30_000
  )

  it.live("Expect: 100-continue with a huge Content-Length gets 413, never 100 Continue", () =>
    Effect.gen(function*() {
      const answer = yield* raw(
        "POST /plans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n"
      )
      assert.strictEqual(statusOf(answer), 413, answer)
      assert.notInclude(answer, "100 Continue")
      // A body within the limit still gets its 100 Continue and is served.
      const body = JSON.stringify({ id: "expect-ok", steps: ["x"] })
      const fine = yield* raw(
        `POST /plans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`
      )
      assert.strictEqual(statusOf(fine), 202)
    }).pipe(Effect.provide(boot(baseConfig))), 30_000)
})

describe("what a failed plan tells", () => {
  it.live(
    "a 502 names the step, the error class and a reason; the message goes to the log only",
    () =>
      Effect.gen(function*() {
        const reply = yield* plan("p-502")
        assert.strictEqual(reply.status, 502)
        const report = JSON.parse(reply.text)
        assert.deepStrictEqual(report.steps.persistence, {
          status: "failed",
          error: "MongoStoreError",
          reason: "Network"
        })
        // The compensation: the workflow started for a plan whose ticket was not stored is terminated.
        assert.deepStrictEqual(report.steps.workflow, {
          status: "skipped",
          detail: "terminated: the ticket was not stored"
        })
        for (const internal of ["ECONNREFUSED", "embedded fault", "connect"]) assert.notInclude(reply.text, internal)
        const logged = (yield* logLines).find((l) => l.message === "plan_step_failed")
        assert.strictEqual(logged?.annotations.step, "persistence")
        assert.strictEqual(logged?.annotations.plan_id, "p-502")
        assert.include(logged?.annotations.message, "ECONNREFUSED")
      }).pipe(Effect.provide(boot({ ...baseConfig, faults: { mongodb: "down" } }))),
    30_000
  )
})

describe("readiness", () => {
  // MongoDB is a step no plan can defer: three failed plans trip its breaker, the next one is refused at once.
  const tripMongo = Effect.gen(function*() {
    assert.strictEqual((yield* http("/faults/mongodb/down", { method: "POST", headers: JSON_BODY })).status, 200)
    // Each failed plan counts its insert and the compensation's delete: the breaker opens within two plans.
    let failed = 0
    for (let i = 0; i < 3; i++) {
      const reply = yield* plan(`m-${i}`)
      if (reply.status === 503 && failed > 0) break
      assert.strictEqual(reply.status, 502, reply.text)
      failed++
    }
    assert.strictEqual((yield* plan("m-rejected")).status, 503)
  })

  it.live(
    "by default /ready stays 200 while a shared dependency's breaker is open; /health says 503",
    () =>
      Effect.gen(function*() {
        yield* tripMongo
        assert.strictEqual((yield* http("/health")).status, 503)
        const ready = yield* http("/ready")
        assert.strictEqual(ready.status, 200)
        assert.deepStrictEqual(JSON.parse(ready.text), { status: "ready", notReady: [] })
        assert.strictEqual((yield* http("/live")).status, 200)
      }).pipe(Effect.provide(boot(baseConfig))),
    30_000
  )

  it.live(
    "READINESS_BREAKERS=mongodb_client: not ready while it is open; with no request at all, the probe closes it and the service is ready again",
    () =>
      Effect.gen(function*() {
        yield* tripMongo
        const notReady = yield* http("/ready")
        assert.strictEqual(notReady.status, 503)
        assert.deepStrictEqual(JSON.parse(notReady.text), { status: "not_ready", notReady: ["mongodb_client"] })
        assert.strictEqual((yield* http("/faults/mongodb/up", { method: "POST", headers: JSON_BODY })).status, 200)
        // No plan from here on: only the breaker's own probe can close it (open 1 s, then a 1 s grace).
        let ready = 0
        for (let i = 0; i < 60 && ready !== 200; i++) {
          yield* Effect.sleep("100 millis")
          ready = (yield* http("/ready")).status
        }
        assert.strictEqual(ready, 200)
        const health = JSON.parse((yield* http("/health")).text)
        assert.strictEqual(health.breakers.find((b: { name: string }) => b.name === "mongodb_client").state, "closed")
        assert.strictEqual(health.status, "ok")
        const transitions = (yield* logLines).filter((l) => String(l.message).startsWith("circuit_breaker_"))
          .map((l) => l.message)
        assert.deepStrictEqual(transitions, [
          "circuit_breaker_open",
          "circuit_breaker_half_open",
          "circuit_breaker_reset"
        ])
      }).pipe(Effect.provide(boot({ ...baseConfig, readinessBreakers: ["mongodb_client"] }))),
    30_000
  )
})
