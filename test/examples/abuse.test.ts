/**
 * The example service against the abuse probe of issue 27, on 127.0.0.1: token guessing (429 after 10
 * failures per client, every denial counted and summed up in the log on the Clock), weak tokens, a fault
 * switch open to the network, DNS rebinding (`Host`), bad connection URLs, a config file full of mistakes,
 * and an open board page at SIGTERM.
 */
import { assert, describe, it } from "@effect/vitest"
import * as App from "@neural-hive/example-orchestrator-dynamic/App"
import * as AppConfig from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { Metrics, Otel } from "@neural-hive/observability"
import { ConfigProvider, Effect, Layer, Logger, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { TestClock, TestConsole } from "effect/testing"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { EXAMPLE_ARGS, EXAMPLE_NODE } from "../../tools/rig/example.ts"
import { freePort } from "../../tools/rig/servers.ts"
import { scrape } from "../observability/scrape.ts"
import { startService } from "../observability/service.ts"

const TOKEN = "a-long-enough-admin-token"
const SECRET = "pw-S3cret"

const baseConfig: AppConfig.AppConfig = {
  resilienceConfig: "(inline)",
  service: "orchestrator-dynamic",
  host: "127.0.0.1",
  port: 0,
  adminToken: Redacted.make(TOKEN),
  kafkaBrokers: undefined,
  temporalAddress: undefined,
  temporalNamespace: "default",
  redisUrl: undefined,
  mongodbUrl: undefined,
  faults: {},
  faultSwitch: true
}

const boot = (config: AppConfig.AppConfig) =>
  Layer.unwrap(Effect.map(OrchestratorConfig.parse("circuitBreaker: {}"), (settings) => App.make(config, settings)))
    .pipe(Layer.provide(Logger.layer([Logger.consoleJson])), Layer.provideMerge(TestConsole.layer))

const port = Effect.map(HttpServer.HttpServer, (server) => "port" in server.address ? server.address.port : 0)

/** One request on a fresh connection, `Host` as given (fetch would not let a test choose it). */
const request = (method: string, target: string, headers: Record<string, string>) =>
  Effect.flatMap(
    port,
    (port) =>
      Effect.promise(() =>
        new Promise<{ status: number; head: string }>((resolve, reject) => {
          const socket = net.connect({ host: "127.0.0.1", port }, () =>
            socket.write(
              `${method} ${target} HTTP/1.1\r\n${
                Object.entries({ "content-type": "application/json", "content-length": "0", ...headers })
                  .map(([k, v]) => `${k}: ${v}\r\n`).join("")
              }connection: close\r\n\r\n`
            ))
          let answer = ""
          socket.on("data", (chunk: Buffer) => {
            answer += chunk.toString("latin1")
            // The head is enough (an event stream never ends).
            if (answer.includes("\r\n\r\n")) socket.destroy()
          })
          socket.on("error", reject)
          socket.on("close", () => {
            const head = answer.slice(0, answer.indexOf("\r\n\r\n")).toLowerCase()
            resolve({ status: Number(/^http\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head })
          })
        })
      )
  )

const local = { host: "127.0.0.1" }
const bearer = (token: string) => ({ ...local, authorization: `Bearer ${token}` })

const logLines = Effect.map(TestConsole.logLines, (lines) => lines.map((l) => JSON.parse(String(l))))

const denied = Effect.gen(function*() {
  const metrics = yield* scrape(yield* Metrics.PrometheusRegistry)
  return (route: string, reason: string) =>
    metrics.samples.find((s) =>
      s.name === "http_auth_denied_total" && s.labels["route"] === route && s.labels["reason"] === reason
    )?.value ?? 0
})

const read = (env: Record<string, string>) =>
  Effect.gen(function*() {
    return yield* AppConfig.config
  }).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })))

const failure = (env: Record<string, string>) =>
  Effect.flip(read(env)).pipe(Effect.map((error) => `${error.message}\n${String(error.cause)}`))

describe("token guessing", () => {
  it.effect("after 10 failures a client gets 429 + Retry-After, the right token included, until the budget refills", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 10; i++) {
        const path = i % 2 === 0 ? "/faults/kafka/down" : "/admin/breakers/kafka_producer/reset"
        assert.strictEqual((yield* request("POST", path, bearer(`guess-${i}`))).status, 401)
      }
      // Out of attempts: not even the right token is compared.
      const throttled = yield* request("POST", "/faults/kafka/down", bearer(TOKEN))
      assert.strictEqual(throttled.status, 429)
      assert.match(throttled.head, /retry-after: [1-6]\r?\n/)
      assert.strictEqual((yield* request("GET", "/faults", bearer("guess"))).status, 429)
      const count = yield* denied
      assert.strictEqual(count("/faults/{dependency}/{mode}", "unauthorized"), 5)
      assert.strictEqual(count("/admin/breakers/{name}/{action}", "unauthorized"), 5)
      assert.strictEqual(count("/faults/{dependency}/{mode}", "throttled"), 1)
      assert.strictEqual(count("/faults", "throttled"), 1)
      // One attempt back every 6 seconds.
      yield* TestClock.adjust("6 seconds")
      assert.strictEqual((yield* request("POST", "/faults/kafka/down", bearer(TOKEN))).status, 200)
    }).pipe(Effect.provide(boot(baseConfig))))

  it.effect("a wrong token on /faults is logged; every denial is summed up every 10 s on the Clock", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 25; i++) yield* request("GET", "/faults", bearer("guess"))
      const before = yield* logLines
      assert.strictEqual(before.filter((l) => l.message === "fault_switch_denied").length, 10)
      assert.strictEqual(before.filter((l) => l.message === "http_auth_denied_summary").length, 0)
      // No further request: the summary comes from the timer, not from another denial.
      yield* TestClock.adjust("10 seconds")
      const summary = (yield* logLines).filter((l) => l.message === "http_auth_denied_summary")
      assert.strictEqual(summary.length, 1)
      assert.strictEqual(summary[0].annotations.unauthorized, 10)
      assert.strictEqual(summary[0].annotations.throttled, 15)
      assert.strictEqual(summary[0].annotations.clients, 1)
      assert.notInclude(JSON.stringify(yield* logLines), TOKEN)
      // A quiet period logs nothing.
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual((yield* logLines).filter((l) => l.message === "http_auth_denied_summary").length, 1)
    }).pipe(Effect.provide(boot(baseConfig))))

  it.effect("weak tokens are refused at start-up, naming ADMIN_TOKEN and never showing the token", () =>
    Effect.gen(function*() {
      for (const weak of ["short-token", "aaaaaaaaaaaaaaaaaaaa", "abababababababababab", "12345678901234567890"]) {
        const message = yield* failure({ ADMIN_TOKEN: weak })
        assert.include(message, "ADMIN_TOKEN", weak)
        assert.notInclude(message, weak)
      }
      const strong = yield* read({ ADMIN_TOKEN: "3f9a1c0b7e24d8a65c1f0e9b2a7d4c38" })
      assert.strictEqual(Redacted.value(strong.adminToken!), "3f9a1c0b7e24d8a65c1f0e9b2a7d4c38")
    }))
})

describe("the fault switch on the network", () => {
  it.effect("FAULT_SWITCH=on with a non-loopback HTTP_HOST and no ADMIN_TOKEN is refused, naming the variables", () =>
    Effect.gen(function*() {
      for (const host of ["0.0.0.0", "::", "10.0.0.7", "my-laptop.lan"]) {
        const message = yield* failure({ FAULT_SWITCH: "on", HTTP_HOST: host })
        for (const name of ["FAULT_SWITCH", "HTTP_HOST", "ADMIN_TOKEN"]) assert.include(message, name, host)
      }
      for (const host of ["127.0.0.1", "localhost", "::1", "127.0.0.2"]) {
        assert.strictEqual((yield* read({ FAULT_SWITCH: "on", HTTP_HOST: host })).faultSwitch, true, host)
      }
      assert.strictEqual(
        (yield* read({ FAULT_SWITCH: "on", HTTP_HOST: "0.0.0.0", ADMIN_TOKEN: TOKEN })).host,
        "0.0.0.0"
      )
      assert.deepStrictEqual(
        (yield* read({ HTTP_ALLOWED_HOSTS: "board.example.com, 10.0.0.7" })).allowedHosts,
        ["board.example.com", "10.0.0.7"]
      )
    }))

  it.effect("browser routes answer 421 to a foreign Host (DNS rebinding); probes and /metrics answer any Host", () =>
    Effect.gen(function*() {
      const rebound = { host: "attacker.example:8000" }
      for (
        const [method, path] of [["GET", "/"], ["GET", "/status"], ["GET", "/events"], ["GET", "/faults"], [
          "POST",
          "/faults/kafka/down"
        ], ["POST", "/admin/breakers/kafka_producer/reset"]] as const
      ) {
        const reply = yield* request(method, path, { ...rebound, authorization: `Bearer ${TOKEN}` })
        assert.strictEqual(reply.status, 421, `${method} ${path}`)
      }
      // Without Host: Node answers 400 itself (HTTP/1.1 requires it); never the page.
      assert.include([400, 421], (yield* request("GET", "/", {})).status, "no Host")
      for (const path of ["/live", "/ready", "/health", "/metrics"]) {
        assert.strictEqual((yield* request("GET", path, { host: "10.1.2.3:8000" })).status, 200, path)
      }
      for (const host of ["127.0.0.1:8000", "localhost", "LOCALHOST.:8000", "[::1]:8000", "board.example.com"]) {
        assert.strictEqual((yield* request("GET", "/", { host })).status, 200, host)
      }
      assert.strictEqual((yield* request("GET", "/faults", bearer(TOKEN))).status, 200)
      // A refused Host costs no token attempt.
      assert.strictEqual((yield* denied)("/faults", "unauthorized"), 0)
    }).pipe(Effect.provide(boot({ ...baseConfig, allowedHosts: ["board.example.com"] }))))
})

describe("bad connection URLs", () => {
  it.effect("every endpoint variable names itself, the password never shown", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["MONGODB_URL", `mongodb://u:${SECRET}@host:99999/db`],
        ["MONGODB_URL", `mongodb+srv://u:${SECRET}@cluster.example:27017/db`],
        ["MONGODB_URL", `mongodb://u:${SECRET}@host/db?tls=maybe`],
        ["MONGODB_URL", `mongodb://u:${SECRET}@host/db?unknownOption=1`],
        ["REDIS_URL", `redis://:${SECRET}@host:99999`],
        ["FLEET_REDIS_URL", `redis//:${SECRET}@host`],
        ["KAFKA_BROKERS", `u:${SECRET}@kafka:9092`],
        ["TEMPORAL_ADDRESS", `grpc://u:${SECRET}@temporal:7233`]
      ]
      for (const [name, value] of cases) {
        const message = yield* failure({ [name]: value })
        assert.include(message, `${name}:`, value)
        assert.notInclude(message, SECRET, value)
      }
      // The OTLP endpoint, read by `Otel.config` (the example's main.ts provides `Otel.layerConfig`).
      for (
        const endpoint of [`http://u:${SECRET}@collector:99999`, `collector:${SECRET}@4318`, "ftp://collector:4318"]
      ) {
        const error = yield* Effect.flip(
          Effect.gen(function*() {
            return yield* Otel.config
          }).pipe(
            Effect.provideService(
              ConfigProvider.ConfigProvider,
              ConfigProvider.fromEnv({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } })
            )
          )
        )
        const message = `${error.message}\n${String(error.cause)}`
        assert.include(message, "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        assert.notInclude(message, SECRET, endpoint)
      }
      // What the driver accepts still passes: a seed list, an SRV name, options.
      for (
        const url of [
          `mongodb+srv://u:${SECRET}@cluster.example.com/db?retryWrites=true`,
          `mongodb://u:${SECRET}@m1:27017,m2:27017/db?replicaSet=rs0&tls=true`
        ]
      ) {
        assert.strictEqual(Redacted.value((yield* read({ MONGODB_URL: url })).mongodbUrl!), url)
      }
    }))

  it.live(
    "the program prints the variable, not a driver's stack, for a URL only the driver refuses",
    () =>
      Effect.gen(function*() {
        const run = yield* Effect.promise(() =>
          runExample({ MONGODB_URL: `mongodb+srv://u:${SECRET}@cluster.example:27017/db` })
        )
        assert.notStrictEqual(run.code, 0)
        assert.include(run.output, "MONGODB_URL")
        assert.notInclude(run.output, SECRET)
        assert.notInclude(run.output, "MongoStoreError")
      }),
    60_000
  )
})

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Reports the child's peak RSS on exit: the test reads it from stderr. */
const PEAK = `--import=data:text/javascript,${
  encodeURIComponent(
    `process.on("exit", () => process.stderr.write("peak-rss-kb=" + process.resourceUsage().maxRSS + "\\n"))`
  )
}`

const runExample = async (env: Record<string, string>) => {
  const child = spawn(EXAMPLE_NODE, EXAMPLE_ARGS, {
    cwd: root,
    env: {
      PATH: process.env["PATH"] ?? "",
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(await freePort()),
      NODE_OPTIONS: PEAK,
      DRAIN_SECONDS: "0",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => output += chunk)
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => output += chunk)
  const timer = setTimeout(() => child.kill("SIGKILL"), 45_000)
  const code = await new Promise<number | string>((resolve) =>
    child.once("close", (code, signal) => resolve(code ?? signal ?? "unknown"))
  )
  clearTimeout(timer)
  const peak = Number(/peak-rss-kb=(\d+)/.exec(output)?.[1] ?? Number.NaN)
  return { code, output: output.replace(/peak-rss-kb=\d+\n/, ""), peakMb: peak / 1024 }
}

describe("a config file full of mistakes", () => {
  it.live(
    "a ~1 MB YAML with thousands of problems: a few KB of output and a bounded peak RSS",
    () =>
      Effect.gen(function*() {
        const dir = mkdtempSync(path.join(tmpdir(), "nh-abuse-"))
        try {
          const file = path.join(dir, "bad.yaml")
          const lines = ["circuitBreaker:"]
          let size = 0
          for (let i = 0; size < 1000 * 1024; i++) {
            const line = `  c${i}: { failMax: -1, recoveryTimeoutSeconds: x${"y".repeat(60)}, failureMode: bogus }`
            lines.push(line)
            size += line.length + 1
          }
          writeFileSync(file, `${lines.join("\n")}\n`)
          const run = yield* Effect.promise(() => runExample({ RESILIENCE_CONFIG: file }))
          assert.notStrictEqual(run.code, 0)
          assert.include(run.output, "invalid circuit breaker configuration")
          assert.match(run.output, /\.\.\. and \d+ more problems/)
          assert.isBelow(run.output.length, 16 * 1024, "the error output is bounded")
          assert.isBelow(run.peakMb, 400, `peak RSS ${run.peakMb} MB`)

          // Over the limit: refused before parsing, naming the limit.
          writeFileSync(file, `circuitBreaker:\n${"  # padding\n".repeat(200_000)}`)
          const big = yield* Effect.promise(() => runExample({ RESILIENCE_CONFIG: file }))
          assert.notStrictEqual(big.code, 0)
          assert.include(big.output, "at most 1048576 bytes")
          assert.isBelow(big.output.length, 4 * 1024)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      }),
    120_000
  )
})

describe("shutdown with an open board", () => {
  it("SIGTERM ends the /events stream at once: the process exits within 1 s", async () => {
    const service = await startService({})
    let stopped = false
    try {
      const controller = new AbortController()
      const events = await fetch(`${service.url}/events`, { signal: controller.signal })
      assert.strictEqual(events.status, 200)
      const reader = events.body!.getReader()
      assert.match(new TextDecoder().decode((await reader.read()).value), /^event: snapshot/)
      const start = performance.now()
      const code = await service.stop()
      stopped = true
      const seconds = (performance.now() - start) / 1000
      assert.isBelow(seconds, 1, `exited after ${seconds.toFixed(2)} s`)
      assert.include([0, 130], code)
      // The stream ended with the process, not by the client (what was sent before is read first).
      let done = false
      for (let i = 0; i < 100 && !done; i++) done = (await reader.read().catch(() => ({ done: true }))).done
      assert.isTrue(done)
      controller.abort()
    } finally {
      if (!stopped) await service.stop()
    }
  }, 90_000)
})
