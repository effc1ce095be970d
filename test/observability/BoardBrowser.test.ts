/**
 * The live breaker board in a real browser: Debian's Chromium (`.ci/provision.sh` installs it) driven by
 * playwright-core, against the example service run as a process with its embedded dependencies and the
 * fault switch.
 *
 * - an outage: Kafka down, the backlog growing, kafka_producer tripped, a failed probe, the recovery and an
 *   operator's force-open and reset, each on the timeline; the sparkline moves;
 * - three replicas sharing their breakers through a real redis-server: each replica's view of each circuit;
 * - the page's CPU in Chromium with 50 circuits updating (printed, see docs/observability.md).
 *
 * Screenshots go into a temporary directory, or over docs/images/ (breaker-board.png, shown by
 * docs/getting-started.md; board-outage.png and board-fleet.png, shown by docs/observability.md) with
 * `NH_UPDATE_SCREENSHOT=1`, so a test run never changes a tracked file unasked.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Board, Http } from "@neural-hive/observability"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect, Layer, ManagedRuntime } from "effect"
import { HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { type ServerHandle, startRedis } from "../../tools/rig/servers.ts"
import { ADMIN_TOKEN, type Service, startService } from "./service.ts"

/** The page's `document`, for the functions run in the page (the tests compile without the DOM library). */
interface PageElement {
  readonly textContent: string | null
  getAttribute(name: string): string | null
}
declare const document: {
  querySelector(selector: string): PageElement | null
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>
}

const executablePath = process.env["NH_CHROMIUM"] && process.env["NH_CHROMIUM"] !== "missing"
  ? process.env["NH_CHROMIUM"]
  : "/usr/bin/chromium"
const updateDocs = process.env["NH_UPDATE_SCREENSHOT"] === "1"
const scratch = updateDocs ? undefined : mkdtempSync(join(tmpdir(), "nh-board-"))
const screenshot = (name: string) =>
  scratch === undefined ? fileURLToPath(new URL(`../../docs/images/${name}`, import.meta.url)) : join(scratch, name)
const isPng = (file: string) =>
  // A PNG was written (its 8-byte signature), whatever it shows.
  assert.deepStrictEqual([...readFileSync(file).subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10])

const post = (service: Service, path: string) =>
  fetch(`${service.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
    body: path === "/plans" ? JSON.stringify({ id: `p${Math.random().toString(36).slice(2)}`, steps: ["a"] }) : "{}",
    signal: AbortSignal.timeout(10_000)
  })

/** Collects the page's errors and requests. */
const watch = (page: Page) => {
  const problems: Array<string> = []
  const requests: Array<string> = []
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text())
  })
  page.on("pageerror", (error) => problems.push(error.message))
  page.on("request", (request) => requests.push(request.url()))
  return { problems, requests }
}

const row = (circuit: string, reason: string, by: string) =>
  `#timeline tr[data-entry="${circuit}"][data-reason="${reason}"][data-by="${by}"]`

const sparkline = (page: Page, circuit: string) =>
  page.getAttribute(`[data-circuit="${circuit}"] polyline[data-spark="rate"]`, "points")

// Short open periods, so the test sees a probe fail and one succeed: 3 s, then 6 s.
const SHORT_KAFKA = { CIRCUIT_BREAKER_KAFKA_RECOVERY_TIMEOUT_SECONDS: "3" }

let browser: Browser
beforeAll(async () => {
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium is not installed at ${executablePath}: run bash .ci/provision.sh`)
  }
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] })
}, 60_000)
afterAll(async () => {
  await browser?.close()
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
})

describe("breaker board in Chromium", () => {
  let service: Service
  beforeAll(async () => {
    // FAULT_SWITCH=on: the switch is opt-in (it also needs the admin token).
    service = await startService({ FAULT_SWITCH: "on", ...SHORT_KAFKA })
  }, 90_000)
  afterAll(async () => {
    await service?.stop()
  })

  it(
    "an outage: kafka_producer OPEN within 1 s of its trip, the backlog growing, the sparkline moving; a failed probe, the recovery and an operator on the timeline",
    async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
      try {
        const { problems, requests } = watch(page)
        const response = await page.goto(`${service.url}/`)
        assert.strictEqual(response?.status(), 200)
        const csp = response?.headers()["content-security-policy"] ?? ""
        assert.include(csp, "default-src 'none'")
        assert.notInclude(csp, "unsafe-inline")
        await page.waitForSelector(`[data-circuit="kafka_producer"][data-state="closed"]`, { timeout: 10_000 })
        assert.deepStrictEqual(
          await page.$$eval("[data-circuit]", (cards) => cards.map((c) => c.getAttribute("data-circuit"))),
          ["kafka_producer", "mongodb_client", "redis_client", "temporal_client"]
        )
        // Each circuit's policies from the example's config: adaptive limits, Kafka's retry budget, Redis's hedge.
        await page.waitForFunction(
          () =>
            /limit 20 \(2\u2013100\) · in flight \d+ · queued \d+ · rejected 0/.test(
              document.querySelector(`[data-circuit="temporal_client"] [data-field="bulkhead"]`)?.textContent ?? ""
            ),
          undefined,
          { timeout: 5_000 }
        )
        assert.match(
          await page.textContent(`[data-circuit="kafka_producer"] [data-field="retry"]`) ?? "",
          /^left \d+ · retries \d+ · denied \d+$/
        )
        assert.match(
          await page.textContent(`[data-circuit="redis_client"] [data-field="hedge"]`) ?? "",
          /^sent \d+ · won \d+/
        )
        assert.isTrue(await page.isVisible(`[data-circuit="mongodb_client"] [data-field="bulkhead"]`))
        assert.isFalse(await page.isVisible(`[data-circuit="kafka_producer"] [data-field="bulkhead"]`))
        assert.isFalse(await page.isVisible(`[data-circuit="temporal_client"] [data-field="hedge"]`))
        // Read-only until a token is typed: no admin button is visible. No fleet here: no replica views.
        assert.isFalse(await page.isVisible(`[data-circuit="kafka_producer"] button[data-action="reset"]`))
        assert.isFalse(await page.isVisible("#fleet"))
        await page.evaluate(() => {
          ;(globalThis as unknown as { marker: number }).marker = 42
        })

        assert.strictEqual((await post(service, "/faults/kafka/down")).status, 200)
        // Plans are still accepted (the outbox queues their tickets); the relay's failing sends trip kafka_producer.
        for (let i = 0; i < 6; i++) assert.strictEqual((await post(service, "/plans")).status, 202)
        let tripped = false
        for (let i = 0; i < 400 && !tripped; i++) {
          const health = await (await fetch(`${service.url}/health`)).json() as {
            readonly breakers: ReadonlyArray<{ readonly name: string; readonly state: string }>
          }
          tripped = health.breakers.some((b) => b.name === "kafka_producer" && b.state === "open")
          if (!tripped) await new Promise((resolve) => setTimeout(resolve, 25))
        }
        assert.isTrue(tripped, "kafka_producer never opened")
        // The card follows the trip through the event stream: within 1 s of /health showing it, no reload.
        const started = performance.now()
        await page.waitForSelector(`[data-circuit="kafka_producer"][data-state="open"]`, { timeout: 1_000 })
        const openMs = Math.round(performance.now() - started)
        const text = await page.textContent(`[data-circuit="kafka_producer"]`)
        assert.include(text, "OPEN")
        assert.include(text, "tripped")
        assert.match(text ?? "", /next probe\s*in \d+ s/)
        await page.waitForSelector(row("kafka_producer", "tripped", "trip"), { timeout: 2_000 })

        // The backlog: the tickets wait in the outbox.
        await page.waitForFunction(
          () => Number(document.querySelector(`#backlog [data-field="pending"]`)?.textContent) >= 6,
          undefined,
          { timeout: 5_000 }
        )
        // The rates: failures counted, and the sparkline moves with the next stats events.
        await page.waitForFunction(
          () =>
            /failure [1-9]/.test(
              document.querySelector(`[data-circuit="kafka_producer"] [data-field="outcomes"]`)?.textContent ?? ""
            ),
          undefined,
          { timeout: 3_000 }
        )
        const before = await sparkline(page, "kafka_producer")
        assert.isNotEmpty(before ?? "")
        for (let i = 0; i < 3; i++) await post(service, "/plans")
        await page.waitForFunction(
          (points) =>
            document.querySelector(`[data-circuit="kafka_producer"] polyline[data-spark="rate"]`)?.getAttribute(
              "points"
            ) !==
              points,
          before,
          { timeout: 6_000 }
        )
        await page.screenshot({ path: screenshot("board-outage.png"), fullPage: true })
        isPng(screenshot("board-outage.png"))
        // With the token typed, the buttons show (the getting-started picture).
        await page.fill("#token", ADMIN_TOKEN)
        await page.screenshot({ path: screenshot("breaker-board.png") })
        isPng(screenshot("breaker-board.png"))

        // The first probe (after 3 s) fails: Kafka is still down.
        await page.waitForSelector(row("kafka_producer", "probe_failed", "probe"), { timeout: 20_000 })
        assert.strictEqual((await post(service, "/faults/kafka/up")).status, 200)
        // The next (after 6 s) succeeds and closes it.
        await page.waitForSelector(row("kafka_producer", "probes_succeeded", "probe"), { timeout: 30_000 })
        await page.waitForSelector(`[data-circuit="kafka_producer"][data-state="closed"]`, { timeout: 2_000 })
        await page.waitForFunction(
          () => document.querySelector(`#backlog [data-field="pending"]`)?.textContent === "0",
          undefined,
          { timeout: 10_000 }
        )

        // An operator forces it open and resets it from the page.
        await page.fill("#token", ADMIN_TOKEN)
        assert.isTrue(await page.isVisible(`[data-circuit="kafka_producer"] button[data-action="reset"]`))
        await page.click(`[data-circuit="kafka_producer"] button[data-action="force-open"]`)
        await page.waitForSelector(`[data-circuit="kafka_producer"][data-state="open"]`, { timeout: 1_000 })
        await page.waitForSelector(row("kafka_producer", "forced_open", "admin"), { timeout: 1_000 })
        assert.include(await page.textContent(`[data-circuit="kafka_producer"]`), "held open by an operator")
        await page.click(`[data-circuit="kafka_producer"] button[data-action="reset"]`)
        await page.waitForSelector(`[data-circuit="kafka_producer"][data-state="closed"]`, { timeout: 1_000 })
        await page.waitForSelector(row("kafka_producer", "reset", "admin"), { timeout: 1_000 })
        assert.include(await page.textContent(`[data-circuit="kafka_producer"]`), "reset")
        // Newest first.
        const reasons = await page.$$eval(
          `#timeline tr[data-entry="kafka_producer"]`,
          (rows) => rows.map((r) => r.getAttribute("data-reason"))
        )
        assert.deepStrictEqual(reasons.slice(0, 2), ["reset", "forced_open"])
        assert.include(reasons, "tripped")
        assert.strictEqual(await page.evaluate(() => (globalThis as unknown as { marker: number }).marker), 42)
        assert.deepStrictEqual(problems, [])
        // Self-contained: every request stayed on the service's own origin.
        for (const url of requests) assert.isTrue(url.startsWith(service.url), url)
        console.log(
          `[board] kafka_producer card OPEN ${openMs} ms after /health showed the trip; screenshots in ${
            scratch ?? "docs/images"
          }`
        )
      } finally {
        await page.close()
      }
    },
    120_000
  )
})

describe("breaker board of a fleet in Chromium", () => {
  let redis: ServerHandle
  const replicas: Array<Service> = []
  beforeAll(async () => {
    redis = await startRedis()
    for (const pod of ["pod-a", "pod-b", "pod-c"]) {
      replicas.push(
        await startService({
          FAULT_SWITCH: "on",
          FLEET_REDIS_URL: redis.endpoint,
          FLEET_GROUP: "board-test",
          POD_NAME: pod,
          ...SHORT_KAFKA
        })
      )
    }
  }, 180_000)
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()))
    await redis?.stop()
  })

  it("every replica's view of each circuit, and a trip on one replica seen by all", async () => {
    const [a, b] = replicas as [Service, Service, Service]
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
    try {
      const { problems } = watch(page)
      await page.goto(`${a.url}/`)
      const chips = `[data-circuit="kafka_producer"] [data-field="fleet"] [data-pod]`
      await page.waitForFunction((selector) => document.querySelectorAll(selector).length === 3, chips, {
        timeout: 10_000
      })
      assert.include(await page.textContent("#fleet"), "board-test: 3 replica(s) (pod-a, pod-b, pod-c)")
      // Kafka down on pod-b only: its relay trips kafka_producer, and the fleet opens it everywhere.
      assert.strictEqual((await post(b, "/faults/kafka/down")).status, 200)
      for (let i = 0; i < 6; i++) await post(b, "/plans")
      await page.waitForFunction(
        (selector) => [...document.querySelectorAll(selector)].every((c) => c.getAttribute("data-state") === "open"),
        chips,
        { timeout: 10_000 }
      )
      // pod-a opened on pod-b's word.
      await page.waitForSelector(row("kafka_producer", "remote", "remote"), { timeout: 2_000 })
      await page.screenshot({ path: screenshot("board-fleet.png"), fullPage: true })
      isPng(screenshot("board-fleet.png"))
      assert.deepStrictEqual(problems, [])
    } finally {
      await page.close()
    }
  }, 120_000)
})

describe("breaker board load in Chromium", () => {
  it("measures the page's CPU with 50 circuits updating", async () => {
    const runtime = ManagedRuntime.make(LoadServer)
    try {
      const url = await runtime.runPromise(baseUrl)
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
      try {
        await page.goto(`${url}/`)
        await page.waitForFunction(() => document.querySelectorAll("[data-circuit]").length === 50, undefined, {
          timeout: 10_000
        })
        // Settle, then measure the renderer's main-thread time over 10 s.
        await page.waitForTimeout(2_000)
        const cdp = await page.context().newCDPSession(page)
        await cdp.send("Performance.enable")
        const metric = async () => {
          const { metrics } = await cdp.send("Performance.getMetrics")
          const values = Object.fromEntries(metrics.map((m) => [m.name, m.value]))
          return { values, at: performance.now() }
        }
        const start = await metric()
        await page.waitForTimeout(10_000)
        const end = await metric()
        const seconds = (end.at - start.at) / 1000
        // Percent of one core over the span: ThreadTime is the renderer main thread's CPU time; the durations
        // are wall time of its tasks (inflated when the machine is busy).
        const percent = (name: string) =>
          (100 * ((end.values[name] ?? Number.NaN) - (start.values[name] ?? 0))) / seconds
        const cpu = percent("ThreadTime")
        const figures = ["TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration"]
          .map((name) => `${name} ${percent(name).toFixed(2)} %`)
          .join(", ")
        const updates = await page.locator(`polyline[data-spark="rate"][points]`).count()
        console.log(
          `[board] 50 circuits updating: page main thread CPU (ThreadTime) ${cpu.toFixed(2)} % of one core over ${
            seconds.toFixed(1)
          } s (${figures}); ${updates} sparklines drawn; load average ${
            loadavg()[0]!.toFixed(2)
          } on ${cpus().length} cores`
        )
        assert.isTrue(Number.isFinite(cpu), "ThreadTime was measured")
        assert.strictEqual(updates, 50)
      } finally {
        await page.close()
      }
    } finally {
      await runtime.dispose()
    }
  }, 60_000)
})

/** 50 breakers called about 20 times a second each (one call in five fails; every tenth is down: it trips and probes). */
const LoadServer = Layer.unwrap(Effect.gen(function*() {
  const breakers = yield* Effect.forEach(
    Array.from({ length: 50 }, (_, i) => `circuit_${String(i).padStart(2, "0")}`),
    (name) => CircuitBreaker.make({ name, failMax: 8, recoveryTimeout: 2_000 })
  )
  let n = 0
  const call = (down: boolean): Effect.Effect<number, string> =>
    down || ++n % 5 === 0 ? Effect.fail("boom") : Effect.succeed(n)
  const round = Effect.forEach(breakers, (breaker, i) => Effect.ignore(call(i % 10 === 0).pipe(withBreaker(breaker))), {
    discard: true
  })
  yield* Effect.forkScoped(Effect.forever(Effect.andThen(round, Effect.sleep(50))))
  const board = yield* Board.make({
    service: "load",
    backlog: Effect.sync(() => ({ pending: n % 100, oldestPendingMillis: 1_000 }))
  })
  return HttpServer.serve(
    HttpServerRequest.HttpServerRequest.use((request) =>
      board.handle(request) ?? Effect.succeed(HttpServerResponse.text("not found", { status: 404 }))
    )
  )
})).pipe(
  Layer.provideMerge(NodeHttpServer.layer(() => Http.makeNodeServer(), { host: "127.0.0.1", port: 0 })),
  Layer.provideMerge(Registry.layer)
)

const baseUrl = Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address
  return `http://127.0.0.1:${"port" in address ? address.port : 0}`
})
