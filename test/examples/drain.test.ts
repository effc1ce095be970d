/**
 * The drain at SIGTERM, on the example run as a process (embedded dependencies): `/ready` turns 503 at
 * once while every route goes on serving for `DRAIN_SECONDS`, then the server closes and the process
 * exits. The client plays a load balancer: it polls `/ready` every 100 ms and sends plans only while
 * the last answer was 200, as an endpoint controller would. Under that steady load a SIGTERM loses no
 * request. A Ctrl-C (SIGINT) does not wait.
 */
import { assert, describe, it } from "@effect/vitest"
import { startService } from "../observability/service.ts"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

describe("drain at shutdown", () => {
  it("SIGTERM under load: /ready 503 at once, every request served, exit within the drain plus 5 s", async () => {
    const DRAIN_MS = 2_000
    const service = await startService({ DRAIN_SECONDS: String(DRAIN_MS / 1000) })
    // What the "load balancer" believes, and whether the test still polls (read in loops, set in callbacks).
    const lb = { inRotation: true, running: true }
    let terminatedAt: number | undefined
    let notReadyAt: number | undefined
    const answers: Array<{ readonly at: number; readonly status: number | string }> = []
    const pending = new Set<Promise<void>>()
    const poller = (async () => {
      while (lb.running) {
        const status = await fetch(`${service.url}/ready`, { signal: AbortSignal.timeout(2_000) })
          .then(async (r) => ({ code: r.status, body: await r.text() }))
          .catch(() => ({ code: 0, body: "" }))
        if (status.code !== 200 && lb.inRotation) {
          lb.inRotation = false
          notReadyAt = performance.now()
          assert.include(status.body, "draining")
        }
        await sleep(100)
      }
    })()
    let sequence = 0
    const send = () => {
      const at = performance.now()
      const request = fetch(`${service.url}/plans`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: `drain-${++sequence}`, steps: ["plan", "execute"] }),
        signal: AbortSignal.timeout(10_000)
      }).then(async (r) => {
        await r.arrayBuffer()
        answers.push({ at, status: r.status })
      }, (error: unknown) => {
        answers.push({ at, status: error instanceof Error ? `${error.message} ${String(error.cause)}` : String(error) })
      })
      const tracked = request.finally(() => pending.delete(tracked))
      pending.add(tracked)
    }
    // 50 plans/s for a second, then SIGTERM, and on until the "load balancer" takes the replica out.
    const loadStart = performance.now()
    let exited: Promise<number | string> | undefined
    while (lb.inRotation) {
      send()
      await sleep(20)
      if (exited === undefined && performance.now() - loadStart > 1_000) {
        terminatedAt = performance.now()
        exited = service.stop("SIGTERM")
      }
    }
    await Promise.all(pending)
    const code = await exited!
    const exitedAt = performance.now()
    lb.running = false
    await poller

    const failed = answers.filter((a) => a.status !== 202)
    assert.deepStrictEqual(failed, [], "every plan sent while /ready said 200 was answered 202")
    const afterTerm = answers.filter((a) => a.at >= terminatedAt!).length
    assert.isAbove(afterTerm, 0, "plans were still sent and served after the SIGTERM")
    // /ready turns at once: within two polls of the signal (a poll every 100 ms, loaded machine margin).
    assert.isBelow(notReadyAt! - terminatedAt!, 600)
    // The process served the whole drain, then exited within the bound.
    assert.isAtLeast(exitedAt - terminatedAt!, DRAIN_MS - 100)
    assert.isBelow(exitedAt - terminatedAt!, DRAIN_MS + 5_000)
    assert.include([0, 130], code)
    const logged = service.lines().map((line) => line["event"])
    assert.include(logged, "service_draining")
    assert.include(logged, "service_drained")
    console.log(
      `[drain] ${answers.length} plans, ${afterTerm} after SIGTERM, all 202; /ready 503 ${
        Math.round(notReadyAt! - terminatedAt!)
      } ms after SIGTERM; exit ${Math.round(exitedAt - terminatedAt!)} ms after (drain ${DRAIN_MS} ms)`
    )
  }, 90_000)

  it("a Ctrl-C (SIGINT) does not wait for the drain", async () => {
    const service = await startService({ DRAIN_SECONDS: "30" })
    const started = performance.now()
    const code = await service.stop("SIGINT")
    assert.isBelow(performance.now() - started, 10_000)
    assert.include([0, 130], code)
    assert.notInclude(service.lines().map((line) => line["event"]), "service_draining")
  }, 60_000)
})
