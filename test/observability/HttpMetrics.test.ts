import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Board, Http, HttpMetrics, Metrics } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { HttpServer } from "effect/http"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { scrape } from "./scrape.ts"

const baseUrl = Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address
  return `http://127.0.0.1:${"port" in address ? address.port : 0}`
})

const fetchText = (path: string, init?: RequestInit) =>
  Effect.flatMap(baseUrl, (url) =>
    Effect.promise(async () => {
      const response = await fetch(`${url}${path}`, { ...init, signal: AbortSignal.timeout(10_000) })
      return { status: response.status, headers: response.headers, text: await response.text() }
    }))

const WithMetrics = Http.layer({ host: "127.0.0.1", port: 0 }).pipe(
  Layer.provideMerge(Layer.merge(HttpMetrics.layer(), Metrics.layerDefaultMetrics())),
  Layer.provideMerge(Metrics.layer()),
  Layer.provideMerge(Registry.layer)
)

describe("HttpMetrics", () => {
  it("route templates, standard methods and status classes keep the labels bounded", () => {
    assert.strictEqual(HttpMetrics.statusClass(202), "2xx")
    assert.strictEqual(HttpMetrics.statusClass(503), "5xx")
    assert.strictEqual(HttpMetrics.statusClass(999), "5xx")
  })

  it.live("the server records every answered request by method, route template and status class", () =>
    Effect.gen(function*() {
      yield* fetchText("/health")
      yield* fetchText("/health")
      yield* fetchText("/no/such/path")
      yield* fetchText("/metrics", { method: "DELETE" })
      yield* fetchText("/admin/breakers/kafka_producer/reset", { method: "POST" })
      const registry = yield* Metrics.PrometheusRegistry
      const metrics = yield* scrape(registry)
      const count = (labels: Record<string, string>) =>
        metrics.samples.find((s) =>
          s.name === "http_server_request_duration_seconds_count" &&
          Object.entries(labels).every(([k, v]) => s.labels[k] === v)
        )?.value
      assert.strictEqual(
        count({ method: "GET", route: "/health", status_class: "2xx", service: "orchestrator-dynamic" }),
        2
      )
      // An unknown path is "other", never the path itself: no label explosion from scanners.
      assert.strictEqual(count({ method: "GET", route: "other", status_class: "4xx" }), 1)
      assert.strictEqual(count({ method: "DELETE", route: "/metrics", status_class: "4xx" }), 1)
      assert.isUndefined(metrics.samples.find((s) => s.labels["route"] === "/no/such/path"))
      const routes = new Set(metrics.samples.flatMap((s) => s.labels["route"] === undefined ? [] : [s.labels["route"]]))
      for (const route of routes) assert.include([...HttpMetrics.defaultRoutes, "other"], route)
      // The process and runtime metrics are there too, with the service label.
      for (
        const name of [
          "process_cpu_seconds_total",
          "process_resident_memory_bytes",
          "nodejs_heap_size_used_bytes",
          "nodejs_eventloop_lag_p99_seconds"
        ]
      ) {
        const sample = metrics.samples.find((s) => s.name === name)
        assert.isDefined(sample, name)
        assert.strictEqual(sample!.labels["service"], "orchestrator-dynamic")
      }
    }).pipe(Effect.provide(WithMetrics)))

  it.live("a method outside the standard ones is _OTHER", () =>
    Effect.gen(function*() {
      const recorder = yield* HttpMetrics.HttpMetrics
      recorder.record("BREW", "/plans", 418, 0.001)
      assert.strictEqual(recorder.route("/admin/breakers/x/reset"), "/admin/breakers/{name}/{action}")
      assert.strictEqual(recorder.route("/admin/breakers/x/reset/more"), "other")
      assert.strictEqual(recorder.route("/admin/outbox/ticket-p-1/requeue"), "/admin/outbox/{id}/requeue")
      assert.strictEqual(recorder.route("/admin/outbox/requeue-dead"), "/admin/outbox/requeue-dead")
      const metrics = yield* scrape(yield* Metrics.PrometheusRegistry)
      assert.isDefined(metrics.samples.find((s) => s.labels["method"] === "_OTHER" && s.labels["route"] === "/plans"))
    }).pipe(Effect.provide(WithMetrics)))
})

/** The board on a real server: the page's headers, and the event stream following a trip. */
const BoardServer = Layer.unwrap(Effect.gen(function*() {
  const board = yield* Board.make({ service: "orchestrator-dynamic" })
  return HttpServer.serve(
    HttpServerRequest.HttpServerRequest.use((request) =>
      board.handle(request) ?? Effect.succeed(HttpServerResponse.text("not found", { status: 404 }))
    )
  )
})).pipe(
  Layer.provideMerge(NodeHttpServer.layer(() => Http.makeNodeServer(), { host: "127.0.0.1", port: 0 })),
  Layer.provideMerge(Registry.layer)
)

describe("Board", () => {
  it.live("the page is self-contained under a strict CSP; read-only routes", () =>
    Effect.gen(function*() {
      const page = yield* fetchText("/")
      assert.strictEqual(page.status, 200)
      const csp = page.headers.get("content-security-policy") ?? ""
      assert.include(csp, "default-src 'none'")
      assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'/)
      assert.notInclude(csp, "unsafe")
      assert.notMatch(page.text, /(src|href)=["']?(https?:)?\/\//)
      assert.strictEqual((yield* fetchText("/status")).status, 200)
      assert.strictEqual((yield* fetchText("/events", { method: "POST" })).status, 405)
      assert.strictEqual((yield* fetchText("/elsewhere")).status, 404)
    }).pipe(Effect.provide(BoardServer)))

  it.live("the event stream starts with a snapshot and then sends each transition as it happens", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1, recoveryTimeout: "30 seconds" })
      const url = yield* baseUrl
      const controller = new AbortController()
      const response = yield* Effect.promise(() => fetch(`${url}/events`, { signal: controller.signal }))
      assert.strictEqual(response.headers.get("content-type"), "text/event-stream")
      const reader = response.body!.getReader()
      const decoder = new TextDecoder()
      let received = ""
      const nextEvent = Effect.promise(async () => {
        while (!received.includes("\n\n")) {
          const chunk = await reader.read()
          if (chunk.done) throw new Error("stream ended")
          received += decoder.decode(chunk.value, { stream: true })
        }
        const end = received.indexOf("\n\n")
        const block = received.slice(0, end)
        received = received.slice(end + 2)
        const name = /^event: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        return { name, data: data === undefined ? undefined : JSON.parse(data) }
      })
      const snapshot = yield* nextEvent
      assert.strictEqual(snapshot.name, "snapshot")
      assert.deepStrictEqual(snapshot.data.map((c: Board.Card) => [c.name, c.state]), [["kafka_producer", "closed"]])
      yield* Effect.ignore(Effect.fail("ECONNREFUSED").pipe(withBreaker(breaker)))
      let update = yield* nextEvent
      // A counted failure may come first; the transition follows.
      while (update.data?.state !== "open") update = yield* nextEvent
      assert.strictEqual(update.name, "breaker")
      assert.strictEqual(update.data.trips, 1)
      assert.deepStrictEqual(update.data.lastTransition.reason, "tripped")
      assert.isAbove(update.data.retryAfterMillis, 29_000)
      controller.abort()
    }).pipe(Effect.provide(BoardServer)))

  // Issue 27: a HEAD has no body, so the stream that gives the place back never ran; 64 HEADs filled the board.
  it.live("1,000 HEAD /events leave the board working: a GET afterwards streams", () =>
    Effect.gen(function*() {
      const url = yield* baseUrl
      yield* Effect.promise(async () => {
        for (let batch = 0; batch < 50; batch++) {
          const answers = await Promise.all(
            Array.from({ length: 20 }, () =>
              fetch(`${url}/events`, { method: "HEAD", signal: AbortSignal.timeout(10_000) }))
          )
          for (const answer of answers) {
            if (answer.status !== 200) {
              throw new Error(`HEAD /events: ${answer.status}`)
            }
            if (answer.headers.get("content-type") !== "text/event-stream") {
              throw new Error("HEAD: not a stream")
            }
          }
        }
      })
      const controller = new AbortController()
      const response = yield* Effect.promise(() =>
        fetch(`${url}/events`, { signal: controller.signal })
      )
      assert.strictEqual(response.status, 200)
      const chunk = yield* Effect.promise(() => response.body!.getReader().read())
      assert.match(new TextDecoder().decode(chunk.value), /^event: snapshot\n/)
      controller.abort()
    }).pipe(Effect.provide(BoardServer)), 60_000)

  it.live("close ends the open event streams at once, and later ones are answered 503", () =>
    Effect.gen(function*() {
      const board = yield* Board.make({ service: "orchestrator-dynamic" })
      const request = HttpServerRequest.fromWeb(new Request("http://localhost/events"))
      const response = yield* board.handle(request)!
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.body._tag, "Stream")
      const body = response.body._tag === "Stream" ? response.body.stream : Stream.empty
      const started = yield* Deferred.make<void>()
      const reading = yield* Effect.forkChild(
        Stream.runForEach(body, () => Effect.asVoid(Deferred.succeed(started, undefined)))
      )
      // The snapshot came: the stream is open, and would stay open (keep-alives) without close.
      yield* Deferred.await(started)
      yield* board.close
      yield* Fiber.join(reading).pipe(Effect.timeout("2 seconds"))
      assert.strictEqual((yield* board.handle(request)!).status, 503)
    }).pipe(Effect.scoped, Effect.provide(Registry.layer)))
})
