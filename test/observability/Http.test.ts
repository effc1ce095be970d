import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Http, Metrics } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Config, ConfigProvider, Data, Effect, Layer, Logger, Redacted } from "effect"
import { HttpServer, HttpServerResponse } from "effect/http"
import { TestClock, TestConsole } from "effect/testing"
import * as NodeHttp from "node:http"
import * as net from "node:net"
import { parse, scrape } from "./scrape.ts"

class ConnectionRefused extends Data.TaggedError("ConnectionRefused")<{ readonly message: string }> {}

interface Reply {
  readonly status: number
  readonly headers: NodeHttp.IncomingHttpHeaders
  readonly body: string
}

/** One real HTTP request to the server of the test, on 127.0.0.1, without keep-alive. */
const request = (path: string, method = "GET", headers: NodeHttp.OutgoingHttpHeaders = {}) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const address = server.address
    assert.strictEqual(address._tag, "InetAddressV4")
    const port = "port" in address ? address.port : 0
    return yield* Effect.callback<Reply>((resume) => {
      const req = NodeHttp.request({ host: "127.0.0.1", port, path, method, headers, agent: false }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("end", () =>
          resume(Effect.succeed({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8")
          })))
      })
      req.on("error", (error) => resume(Effect.die(error)))
      req.end()
    })
  })

const json = (reply: Reply): Http.Health => {
  assert.match(reply.headers["content-type"] ?? "", /^application\/json/)
  return JSON.parse(reply.body)
}

const TestLayer = Http.layer({ host: "127.0.0.1", port: 0 }).pipe(
  Layer.provideMerge(Metrics.layer()),
  Layer.provideMerge(Registry.layer)
)

const seedBreakers = Effect.gen(function*() {
  const options = { failMax: 5, recoveryTimeout: "30 seconds", maxOpenDuration: "60 seconds" } as const
  return {
    kafka: yield* CircuitBreaker.make({ name: "kafka_producer", ...options }),
    temporal: yield* CircuitBreaker.make({ name: "temporal_client", ...options }),
    redis: yield* CircuitBreaker.make({ name: "redis_client", ...options, failureMode: "fail-open" }),
    mongodb: yield* CircuitBreaker.make({ name: "mongodb_client", ...options })
  }
})

const trip = (breaker: CircuitBreaker.CircuitBreaker, message = "connect ECONNREFUSED") =>
  Effect.repeat(Effect.ignore(Effect.fail(new ConnectionRefused({ message })).pipe(withBreaker(breaker))), {
    times: 4
  })

/** The `circuit_breaker_state` of `kafka_producer` in an exposition. */
const kafkaState = (body: string) =>
  parse(body).find((s) => s.name === "circuit_breaker_state" && s.labels.circuit === "kafka_producer")?.value

/** One pipelined request. */
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`

describe("Http: /health", () => {
  it.effect("every breaker closed, one holding a failure: 200 degraded, with name, state, mode, failures, trips, retry-after", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      yield* Effect.ignore(Effect.fail(new ConnectionRefused({ message: "x" })).pipe(withBreaker(kafka)))
      const reply = yield* request("/health")
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(reply.headers["cache-control"], "no-store")
      const closed = { state: "closed", mode: "normal", failures: 0, trips: 0, retryAfterSeconds: 0 } as const
      assert.deepStrictEqual(json(reply), {
        service: "orchestrator-dynamic",
        // A failure counted, not yet a trip (a failed start-up check reads the same): not "ok".
        status: "degraded",
        breakers: [
          { name: "kafka_producer", ...closed, failureMode: "fail-fast", failures: 1 },
          { name: "mongodb_client", ...closed, failureMode: "fail-fast" },
          { name: "redis_client", ...closed, failureMode: "fail-open" },
          { name: "temporal_client", ...closed, failureMode: "fail-fast" }
        ]
      })
    }).pipe(Effect.provide(TestLayer)))

  it.effect("an open fail-open breaker (Redis) degrades but keeps 200", () =>
    Effect.gen(function*() {
      const { redis } = yield* seedBreakers
      yield* trip(redis)
      const reply = yield* request("/health")
      assert.strictEqual(reply.status, 200)
      const health = json(reply)
      assert.strictEqual(health.status, "degraded")
      const entry = health.breakers.find((b) => b.name === "redis_client")!
      assert.deepStrictEqual([entry.state, entry.trips, entry.retryAfterSeconds], ["open", 1, 30])
    }).pipe(Effect.provide(TestLayer)))

  it.effect("a fail-fast breaker not closed (OPEN, then HALF_OPEN): 503 unavailable", () =>
    Effect.gen(function*() {
      const { kafka, redis } = yield* seedBreakers
      yield* trip(redis)
      yield* trip(kafka)
      yield* TestClock.adjust("10 seconds")
      let reply = yield* request("/health")
      assert.strictEqual(reply.status, 503)
      let health = json(reply)
      assert.strictEqual(health.status, "unavailable")
      const entry = health.breakers.find((b) => b.name === "kafka_producer")!
      assert.deepStrictEqual([entry.state, entry.failures, entry.trips, entry.retryAfterSeconds], ["open", 5, 1, 20])
      yield* TestClock.adjust("20 seconds")
      reply = yield* request("/health")
      assert.strictEqual(reply.status, 503)
      health = json(reply)
      assert.strictEqual(health.breakers.find((b) => b.name === "kafka_producer")!.state, "half_open")
      yield* Effect.succeed("sent").pipe(withBreaker(kafka))
      yield* Effect.succeed("cached").pipe(withBreaker(redis))
      reply = yield* request("/health")
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(json(reply).status, "ok")
    }).pipe(Effect.provide(TestLayer)))

  it.effect("forced open: retryAfterSeconds is null; no error message or secret ever appears", () =>
    Effect.gen(function*() {
      const { mongodb } = yield* seedBreakers
      yield* trip(mongodb, "auth failed for mongodb://orchestrator:s3cr3t-pass@mongo:27017/hive password=hunter2")
      // Forcing an OPEN breaker open is not a second trip.
      yield* mongodb.forceOpen
      const reply = yield* request("/health")
      assert.strictEqual(reply.status, 503)
      const entry = json(reply).breakers.find((b) => b.name === "mongodb_client")!
      assert.deepStrictEqual(entry, {
        name: "mongodb_client",
        state: "open",
        mode: "forced_open",
        failureMode: "fail-fast",
        failures: 5,
        trips: 1,
        retryAfterSeconds: null
      })
      for (const secret of ["s3cr3t", "hunter2", "ECONNREFUSED", "auth failed", "mongodb://"]) {
        assert.notInclude(reply.body, secret)
      }
    }).pipe(Effect.provide(TestLayer)))

  it.effect("the health report is a pure function of snapshots", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(Http.health("svc", []), { service: "svc", status: "ok", breakers: [] })
      assert.strictEqual(Http.statusCode({ service: "svc", status: "degraded", breakers: [] }), 200)
      assert.strictEqual(Http.statusCode({ service: "svc", status: "unavailable", breakers: [] }), 503)
    }))
})

describe("Http: /live, /metrics, 404, 405", () => {
  it.effect("/live answers 200 while the process runs", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      yield* kafka.forceOpen
      const reply = yield* request("/live")
      assert.strictEqual(reply.status, 200)
      assert.deepStrictEqual(JSON.parse(reply.body), { status: "alive" })
    }).pipe(Effect.provide(TestLayer)))

  it.effect("/metrics serves the Prometheus text with its content type", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      yield* trip(kafka)
      const reply = yield* request("/metrics")
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(reply.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
      const state = parse(reply.body).find((sample) =>
        sample.name === "circuit_breaker_state" && sample.labels.circuit === "kafka_producer"
      )
      assert.deepStrictEqual(state?.labels, { service: "orchestrator-dynamic", circuit: "kafka_producer" })
      assert.strictEqual(state?.value, 1)
      assert.include(reply.body, "# TYPE circuit_breaker_trips_total counter")
    }).pipe(Effect.provide(TestLayer)))

  it.effect("unknown paths 404, wrong methods 405 with Allow, HEAD and query strings are served", () =>
    Effect.gen(function*() {
      yield* seedBreakers
      for (const path of ["/", "/healthz", "/health/", "/metrics/x", "/__proto__", "/constructor"]) {
        assert.strictEqual((yield* request(path)).status, 404, path)
      }
      for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
        for (const path of ["/health", "/live", "/metrics"]) {
          const reply = yield* request(path, method)
          assert.strictEqual(reply.status, 405, `${method} ${path}`)
          assert.strictEqual(reply.headers.allow, "GET, HEAD")
        }
      }
      assert.strictEqual((yield* request("/nowhere", "POST")).status, 404)
      const head = yield* request("/health", "HEAD")
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.body, "")
      assert.strictEqual((yield* request("/health?verbose=1")).status, 200)
    }).pipe(Effect.provide(TestLayer)))
})

describe("Http: listening", () => {
  it.effect("listens on port 8000 by default", () =>
    Effect.gen(function*() {
      assert.strictEqual(Http.DEFAULT_PORT, 8000)
      const bound = yield* Effect.exit(
        HttpServer.HttpServer.useSync((server) => server.address).pipe(
          Effect.provide(
            Http.layer({ host: "127.0.0.1" }).pipe(
              Layer.provide(Metrics.layer()),
              Layer.provide(Registry.layer)
            )
          )
        )
      )
      if (bound._tag === "Success") {
        assert.strictEqual("port" in bound.value ? bound.value.port : 0, 8000)
      } else {
        // Something else holds 8000 on this machine: the failure still names the default port.
        assert.match(String(bound.cause), /EADDRINUSE.*8000/)
      }
    }))

  it.effect("layerConfig reads the port from Config", () =>
    Effect.gen(function*() {
      const reply = yield* request("/live")
      assert.strictEqual(reply.status, 200)
    }).pipe(Effect.provide(
      Http.layerConfig({
        host: Config.succeed("127.0.0.1"),
        port: Config.Int("HTTP_PORT").pipe(Config.withDefault(Http.DEFAULT_PORT))
      }).pipe(
        Layer.provideMerge(Metrics.layer()),
        Layer.provideMerge(Registry.layer),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ HTTP_PORT: "0" })))
      )
    )))
})

describe("Http: manual control (admin routes)", () => {
  const token = "admin-token-1234567"
  const AdminLayer = Http.layer({ host: "127.0.0.1", port: 0, admin: { token: Redacted.make(token) } }).pipe(
    Layer.provide(Logger.layer([Logger.consoleJson])),
    Layer.provideMerge(Metrics.layer()),
    Layer.provideMerge(Registry.layer)
  )
  const bearer = (value: string) => ({ authorization: `Bearer ${value}` })

  it.effect("off by default: the admin paths are not found", () =>
    Effect.gen(function*() {
      yield* seedBreakers
      const reply = yield* request("/admin/breakers/kafka_producer/force-open", "POST", bearer(token))
      assert.strictEqual(reply.status, 404)
    }).pipe(Effect.provide(TestLayer)))

  it.effect("force-open, disable and reset with the token; every use logged with who and what", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      let reply = yield* request("/admin/breakers/kafka_producer/force-open", "POST", bearer(token))
      assert.strictEqual(reply.status, 200)
      assert.deepStrictEqual(JSON.parse(reply.body), {
        circuit: "kafka_producer",
        action: "force-open",
        state: "open",
        mode: "forced_open"
      })
      assert.strictEqual(yield* kafka.state, "Open")
      reply = yield* request("/health")
      assert.strictEqual(reply.status, 503)
      reply = yield* request("/admin/breakers/kafka_producer/disable", "POST", bearer(token))
      assert.strictEqual(JSON.parse(reply.body).mode, "disabled")
      reply = yield* request("/admin/breakers/kafka_producer/reset", "POST", bearer(token))
      assert.strictEqual(JSON.parse(reply.body).mode, "normal")
      assert.strictEqual(yield* kafka.state, "Closed")
      const logged = (yield* TestConsole.logLines).map((line) => JSON.parse(line as string))
      const uses = logged.filter((l) => l.message === "circuit_breaker_manual_control")
      assert.deepStrictEqual(uses.map((l) => l.annotations.action), ["force-open", "disable", "reset"])
      for (const use of uses) {
        assert.strictEqual(use.annotations.circuit, "kafka_producer")
        assert.strictEqual(use.annotations.remote_address, "127.0.0.1")
        assert.notInclude(JSON.stringify(use), token)
      }
    }).pipe(Effect.provide(AdminLayer)))

  it.effect("a wrong or missing token is refused with 401 and changes nothing; unknown breaker 404; GET 405", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      for (const headers of [{}, bearer("wrong"), bearer(`${token}x`), { authorization: token }]) {
        const reply = yield* request("/admin/breakers/kafka_producer/force-open", "POST", headers)
        assert.strictEqual(reply.status, 401)
        assert.strictEqual(reply.headers["www-authenticate"], "Bearer")
        assert.notInclude(reply.body, token)
      }
      assert.strictEqual(yield* kafka.state, "Closed")
      const denied = (yield* TestConsole.logLines).map((line) => JSON.parse(line as string))
        .filter((l) => l.message === "circuit_breaker_manual_control_denied")
      assert.strictEqual(denied.length, 4)
      assert.notInclude(JSON.stringify(denied), token)
      assert.strictEqual((yield* request("/admin/breakers/nope/reset", "POST", bearer(token))).status, 404)
      assert.strictEqual((yield* request("/admin/breakers/kafka_producer/explode", "POST", bearer(token))).status, 404)
      assert.strictEqual((yield* request("/admin/breakers/kafka_producer/reset", "GET", bearer(token))).status, 405)
    }).pipe(Effect.provide(AdminLayer)))
  it.effect("401 comes before 405 and 404: an outsider cannot map the admin routes", () =>
    Effect.gen(function*() {
      yield* seedBreakers
      for (
        const [path, method] of [
          ["/admin/breakers/kafka_producer/reset", "GET"],
          ["/admin/breakers/kafka_producer/explode", "POST"],
          ["/admin/breakers/nope/reset", "POST"],
          ["/admin/anything", "DELETE"],
          ["/admin", "GET"]
        ] as const
      ) {
        assert.strictEqual((yield* request(path, method)).status, 401, `${method} ${path}`)
      }
    }).pipe(Effect.provide(AdminLayer)))

  it.effect("every admin request is logged, refused ones too, with client-chosen headers truncated", () =>
    Effect.gen(function*() {
      yield* seedBreakers
      const agent = "x".repeat(5_000)
      const headers = { ...bearer(token), "user-agent": agent }
      assert.strictEqual((yield* request("/admin/breakers/kafka_producer/reset", "GET", headers)).status, 405)
      assert.strictEqual((yield* request("/admin/breakers/nope/reset", "POST", headers)).status, 404)
      assert.strictEqual((yield* request("/admin/breakers/kafka_producer/explode", "POST", headers)).status, 404)
      assert.strictEqual((yield* request(`/admin/${"y".repeat(3_000)}`, "POST", headers)).status, 404)
      const refused = (yield* TestConsole.logLines).map((line) => JSON.parse(line as string))
        .filter((l) => l.message === "circuit_breaker_manual_control_refused")
      assert.deepStrictEqual(refused.map((l) => l.annotations.status), ["405", "404", "404", "404"])
      for (const line of refused) {
        assert.isAtMost(line.annotations.user_agent.length, 160)
        assert.isAtMost(line.annotations.path.length, 160)
        assert.notInclude(JSON.stringify(line), token)
      }
    }).pipe(Effect.provide(AdminLayer)))

  it.effect("10 failures, then 429 without comparing the token; at most 10 denial lines a minute, a summary every 10 s", () =>
    Effect.gen(function*() {
      yield* seedBreakers
      const statuses: Array<number> = []
      for (let i = 0; i < 25; i++) {
        statuses.push((yield* request("/admin/breakers/kafka_producer/reset", "POST", bearer("guess"))).status)
      }
      assert.deepStrictEqual(statuses, [...Array(10).fill(401), ...Array(15).fill(429)])
      // Over budget, the right token is refused too, with a Retry-After.
      const throttled = yield* request("/admin/breakers/kafka_producer/reset", "POST", bearer(token))
      assert.strictEqual(throttled.status, 429)
      assert.strictEqual(throttled.headers["retry-after"], "6")
      const lines = Effect.map(TestConsole.logLines, (lines) => lines.map((line) => JSON.parse(line as string)))
      assert.strictEqual(
        (yield* lines).filter((l) => l.message === "circuit_breaker_manual_control_denied").length,
        10
      )
      yield* TestClock.adjust("10 seconds")
      const summary = (yield* lines).filter((l) => l.message === "http_auth_denied_summary")
      assert.deepStrictEqual(
        summary.map((l) => [l.annotations.unauthorized, l.annotations.throttled, l.annotations.clients]),
        [[10, 16, 1]]
      )
      const metrics = yield* scrape(yield* Metrics.PrometheusRegistry)
      const denied = (reason: string) =>
        metrics.samples.find((s) =>
          s.name === "http_auth_denied_total" && s.labels["route"] === "/admin/breakers/{name}/{action}" &&
          s.labels["reason"] === reason
        )?.value
      assert.strictEqual(denied("unauthorized"), 10)
      assert.strictEqual(denied("throttled"), 16)
      // The budget refills one attempt every 6 seconds: the token works again.
      yield* TestClock.adjust("6 seconds")
      assert.strictEqual((yield* request("/admin/breakers/kafka_producer/reset", "POST", bearer(token))).status, 200)
    }).pipe(Effect.provide(AdminLayer)))

  it.effect("a token shorter than 16 characters is refused when the server is built", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(
          Http.layer({ host: "127.0.0.1", port: 0, admin: { token: Redacted.make("fifteen-chars!!") } }).pipe(
            Layer.provide(Metrics.layer()),
            Layer.provide(Registry.layer)
          )
        ).pipe(Effect.scoped)
      )
      assert.strictEqual(error._tag, "HttpOptionsError")
      assert.include(error.message, "at least 16")
      assert.notInclude(error.message, "fifteen-chars!!")
    }))

  it.effect("a long but repetitive or digits-only token is refused too; a random hex token passes", () =>
    Effect.gen(function*() {
      for (
        const [weak, reason] of [["x".repeat(40), "different characters"], ["abcabcabcabcabcabc", "different"], [
          "2026120612345678",
          "digits only"
        ]] as const
      ) {
        const error = yield* Effect.flip(Http.checkAdminToken(Redacted.make(weak), "ADMIN_TOKEN"))
        assert.include(error.message, "ADMIN_TOKEN")
        assert.include(error.message, reason)
        assert.notInclude(error.message, weak)
      }
      yield* Http.checkAdminToken(Redacted.make("9f86d081884c7d659a2feaa0c55ad015"))
    }))
})

describe("Http: /ready and canonical paths", () => {
  it.effect("/ready is 200 by default whatever the breakers; a policy naming a breaker is 503 while it is not closed", () =>
    Effect.gen(function*() {
      const { kafka, mongodb } = yield* seedBreakers
      yield* kafka.forceOpen
      yield* mongodb.forceOpen
      const reply = yield* request("/ready")
      assert.strictEqual(reply.status, 200)
      assert.deepStrictEqual(JSON.parse(reply.body), { status: "ready", notReady: [] })
      assert.strictEqual((yield* request("/ready", "POST")).status, 405)
      const snapshots = yield* Effect.map(Registry.Registry, (r) => r.snapshots).pipe(Effect.flatten)
      assert.deepStrictEqual(Http.ready({ breakers: ["kafka_producer", "redis_client", "missing"] }, snapshots), {
        status: "not_ready",
        notReady: ["kafka_producer", "missing"]
      })
    }).pipe(Effect.provide(TestLayer)))

  it.effect("with readiness { breakers }: 503 naming the open one, 200 once it closes", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      yield* kafka.forceOpen
      const reply = yield* request("/ready")
      assert.strictEqual(reply.status, 503)
      assert.deepStrictEqual(JSON.parse(reply.body), { status: "not_ready", notReady: ["kafka_producer"] })
      yield* kafka.reset
      assert.strictEqual((yield* request("/ready")).status, 200)
    }).pipe(Effect.provide(
      Http.layer({ host: "127.0.0.1", port: 0, readiness: { breakers: ["kafka_producer"] } }).pipe(
        Layer.provideMerge(Metrics.layer()),
        Layer.provideMerge(Registry.layer)
      )
    )))

  it.effect("canonicalPath refuses dot segments, double slashes and backslashes, plain or encoded", () =>
    Effect.sync(() => {
      for (
        const target of [
          "/x/../health",
          "/x/%2e%2e/health",
          "/x/%2E%2e/health",
          "/./health",
          "//health",
          "/a//b",
          "/health\\x",
          "/x%5chealth",
          "/x%2fhealth",
          "health",
          "*",
          "http://host/x/%2e%2e/health"
        ]
      ) {
        assert.isUndefined(Http.canonicalPath(target), target)
      }
      assert.strictEqual(Http.canonicalPath("/health?x=../..//"), "/health")
      assert.strictEqual(Http.canonicalPath("http://host:8000/metrics?a=b"), "/metrics")
      assert.strictEqual(Http.canonicalPath("/admin/breakers/a.b/reset"), "/admin/breakers/a.b/reset")
    }))

  it.effect("/metrics is rendered at most once a second (by the Clock), shared by every scrape meanwhile", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      assert.strictEqual(kafkaState((yield* request("/metrics")).body), 0)
      yield* kafka.forceOpen
      assert.strictEqual(kafkaState((yield* request("/metrics")).body), 0, "the rendering of this second")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(kafkaState((yield* request("/metrics")).body), 1)
    }).pipe(Effect.provide(TestLayer)))
})

describe("Http: slow and abusive clients", () => {
  const SlowLayer = Http.layer({
    host: "127.0.0.1",
    port: 0,
    headersTimeout: "300 millis",
    requestTimeout: "600 millis"
  })
    .pipe(Layer.provideMerge(Metrics.layer()), Layer.provideMerge(Registry.layer))

  /** A raw TCP client that sends `data` and collects what the server answers until it closes. */
  const rawClient = (port: number, data: string) =>
    new Promise<{ readonly socket: net.Socket; readonly closed: Promise<string> }>((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => {
        socket.write(data)
        resolve({
          socket,
          closed: new Promise((done) => {
            const chunks: Array<Buffer> = []
            socket.on("data", (chunk: Buffer) => chunks.push(chunk))
            socket.on("close", () => done(Buffer.concat(chunks).toString("utf8")))
          })
        })
      })
      socket.once("error", reject)
    })

  it.live(
    "a client that never finishes its headers gets 408 and is cut; the server keeps serving meanwhile",
    () =>
      Effect.gen(function*() {
        yield* seedBreakers
        const server = yield* HttpServer.HttpServer
        const port = "port" in server.address ? server.address.port : 0
        const started = performance.now()
        // 50 slowloris clients: a request line and one header, then silence.
        const slow = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 50 }, () => rawClient(port, "GET /health HTTP/1.1\r\nHost: x\r\n")))
        )
        for (let i = 0; i < 5; i++) assert.strictEqual((yield* request("/live")).status, 200)
        const answers = yield* Effect.promise(() => Promise.all(slow.map((c) => c.closed)))
        const elapsed = performance.now() - started
        for (const answer of answers) assert.match(answer, /^HTTP\/1\.1 408/)
        assert.isBelow(elapsed, 5_000, "slow clients are cut by the headers timeout, not held for minutes")
        assert.strictEqual((yield* request("/health")).status, 200)
      }).pipe(Effect.provide(SlowLayer)),
    20_000
  )

  it.live(
    "a client that announces a body and never sends it is cut by the request timeout",
    () =>
      Effect.gen(function*() {
        yield* seedBreakers
        const server = yield* HttpServer.HttpServer
        const port = "port" in server.address ? server.address.port : 0
        const client = yield* Effect.promise(() =>
          rawClient(port, "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial")
        )
        const answer = yield* Effect.promise(() => client.closed)
        assert.match(answer, /^HTTP\/1\.1 (405|408)/)
        assert.strictEqual((yield* request("/live")).status, 200)
      }).pipe(Effect.provide(SlowLayer)),
    20_000
  )

  const PipelineLayer = Http.layer({ host: "127.0.0.1", port: 0, writeStallTimeout: "300 millis" })
    .pipe(Layer.provideMerge(Metrics.layer()), Layer.provideMerge(Registry.layer))

  it.live("a few pipelined requests are answered in order", () =>
    Effect.gen(function*() {
      yield* seedBreakers
      const server = yield* HttpServer.HttpServer
      const port = "port" in server.address ? server.address.port : 0
      const paths = ["/live", "/health", "/metrics", "/nowhere", "/x/../live", "/live"]
      const client = yield* Effect.promise(() =>
        rawClient(port, paths.map(get).join("") + "GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      )
      const answer = yield* Effect.promise(() => client.closed)
      const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]))
      assert.deepStrictEqual(statuses, [200, 200, 200, 404, 400, 200, 200])
    }).pipe(Effect.provide(PipelineLayer)))

  it.live("more requests in one chunk than may wait (16 behind the running one) close the connection unrun", () =>
    Effect.gen(function*() {
      const { kafka } = yield* seedBreakers
      const server = yield* HttpServer.HttpServer
      const port = "port" in server.address ? server.address.port : 0
      const client = yield* Effect.promise(() => rawClient(port, get("/live").repeat(18)))
      const answer = yield* Effect.promise(() => client.closed)
      assert.strictEqual(answer, "", "cut before any of them ran")
      const admitted = yield* Effect.promise(() => rawClient(port, get("/live").repeat(16) + get("/nowhere")))
      admitted.socket.end()
      const answers = yield* Effect.promise(() => admitted.closed)
      assert.strictEqual([...answers.matchAll(/HTTP\/1\.1 200/g)].length, 16)
      assert.include(answers, "HTTP/1.1 404")
      assert.strictEqual(yield* kafka.state, "Closed")
    }).pipe(Effect.provide(PipelineLayer)))

  it.live(
    "a client that pipelines within the cap but never reads is cut by the write stall",
    () =>
      Effect.gen(function*() {
        for (let i = 0; i < 40; i++) yield* CircuitBreaker.make({ name: `dependency_${i}` })
        const server = yield* HttpServer.HttpServer
        const port = "port" in server.address ? server.address.port : 0
        const outcome = yield* Effect.promise(() =>
          new Promise<{ readonly cut: boolean; readonly sent: number; readonly millis: number }>((resolve) => {
            const started = performance.now()
            const socket = net.connect({ host: "127.0.0.1", port })
            socket.pause()
            let sent = 0
            const finish = (cut: boolean) => {
              clearInterval(timer)
              socket.destroy()
              resolve({ cut, sent, millis: performance.now() - started })
            }
            // 4 scrapes every 10 ms, never read: the answers fill the socket buffers, then the stall timer cuts it.
            const timer = setInterval(() => {
              if (performance.now() - started > 8_000) return finish(false)
              socket.write(get("/metrics").repeat(4))
              sent += 4
            }, 10)
            socket.on("error", () => finish(true))
            socket.on("close", () => finish(true))
          })
        )
        assert.isTrue(outcome.cut, JSON.stringify(outcome))
        assert.isBelow(outcome.millis, 8_000)
        assert.strictEqual((yield* request("/live")).status, 200)
      }).pipe(Effect.provide(PipelineLayer)),
    20_000
  )

  it.live("requests waiting on a connection the client closes never run", () =>
    Effect.gen(function*() {
      const started: Array<number> = []
      let finished = 0
      // An app whose every request takes 300 ms and records that it ran.
      const app = Effect.gen(function*() {
        started.push(started.length)
        yield* Effect.sleep("300 millis")
        finished++
        return HttpServerResponse.text("done")
      })
      yield* Effect.gen(function*() {
        const server = yield* HttpServer.HttpServer
        const port = "port" in server.address ? server.address.port : 0
        const client = yield* Effect.promise(() => rawClient(port, get("/work").repeat(10)))
        yield* Effect.sleep("100 millis")
        client.socket.destroy()
        yield* Effect.sleep("700 millis")
      }).pipe(
        Effect.provide(
          HttpServer.serve(app).pipe(
            Layer.provideMerge(NodeHttpServer.layerServer(() => Http.makeNodeServer(), { host: "127.0.0.1", port: 0 }))
          )
        )
      )
      // Node alone starts all ten at once and runs them to the end for nobody. The running one still ends:
      // Effect runs a handler uninterruptibly unless the app opts in.
      assert.strictEqual(started.length, 1)
      assert.isAtMost(finished, 1)
    }))
})
