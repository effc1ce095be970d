/**
 * The live breaker board in a real browser: Debian's Chromium (`.ci/provision.sh` installs it) driven by
 * playwright-core, against the example service run as a process with its embedded dependencies and the
 * fault switch. Takes a screenshot of the board with kafka_producer OPEN: into a temporary directory, or
 * over docs/images/breaker-board.png (shown by docs/getting-started.md) with `NH_UPDATE_SCREENSHOT=1`, so a
 * test run never changes a tracked file unasked.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { chromium } from "playwright-core"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { ADMIN_TOKEN, type Service, startService } from "./service.ts"

const executablePath = process.env["NH_CHROMIUM"] && process.env["NH_CHROMIUM"] !== "missing"
  ? process.env["NH_CHROMIUM"]
  : "/usr/bin/chromium"
const updateDocs = process.env["NH_UPDATE_SCREENSHOT"] === "1"
const scratch = updateDocs ? undefined : mkdtempSync(join(tmpdir(), "nh-board-"))
const screenshot = scratch === undefined
  ? fileURLToPath(new URL("../../docs/images/breaker-board.png", import.meta.url))
  : join(scratch, "breaker-board.png")

const post = (service: Service, path: string) =>
  fetch(`${service.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
    body: path === "/plans" ? JSON.stringify({ id: `p${Math.random().toString(36).slice(2)}`, steps: ["a"] }) : "{}",
    signal: AbortSignal.timeout(10_000)
  })

describe("breaker board in Chromium", () => {
  let service: Service
  beforeAll(async () => {
    if (!existsSync(executablePath)) {
      throw new Error(`Chromium is not installed at ${executablePath}: run bash .ci/provision.sh`)
    }
    // FAULT_SWITCH=on: the switch is opt-in (it also needs the admin token).
    service = await startService({ FAULT_SWITCH: "on" })
  }, 90_000)
  afterAll(async () => {
    await service?.stop()
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
  })

  it(
    "shows every circuit, turns kafka_producer OPEN within 1 s of its trip without a reload, then CLOSED again",
    async () => {
      const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] })
      try {
        const page = await browser.newPage({ viewport: { width: 1200, height: 560 } })
        const problems: Array<string> = []
        page.on("console", (message) => {
          if (message.type() === "error") problems.push(message.text())
        })
        page.on("pageerror", (error) => problems.push(error.message))
        const requests: Array<string> = []
        page.on("request", (request) => requests.push(request.url()))

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
        // Read-only until a token is typed: no admin button is visible.
        assert.isFalse(await page.isVisible(`[data-circuit="kafka_producer"] button[data-action="reset"]`))
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

        await page.fill("#token", ADMIN_TOKEN)
        assert.isTrue(await page.isVisible(`[data-circuit="kafka_producer"] button[data-action="reset"]`))
        await page.screenshot({ path: screenshot, fullPage: true })
        // A PNG was written (its 8-byte signature), whatever it shows.
        assert.deepStrictEqual([...readFileSync(screenshot).subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10])

        assert.strictEqual((await post(service, "/faults/kafka/up")).status, 200)
        await page.click(`[data-circuit="kafka_producer"] button[data-action="reset"]`)
        await page.waitForSelector(`[data-circuit="kafka_producer"][data-state="closed"]`, { timeout: 1_000 })
        assert.include(await page.textContent(`[data-circuit="kafka_producer"]`), "reset")
        assert.strictEqual(await page.evaluate(() => (globalThis as unknown as { marker: number }).marker), 42)
        assert.deepStrictEqual(problems, [])
        // Self-contained: every request stayed on the service's own origin.
        for (const url of requests) assert.isTrue(url.startsWith(service.url), url)
        console.log(
          `[board] kafka_producer card OPEN ${openMs} ms after /health showed the trip; screenshot ${screenshot}`
        )
      } finally {
        await browser.close()
      }
    },
    120_000
  )
})
