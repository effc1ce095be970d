/**
 * The container image, built from the repository's Dockerfile with Podman (no daemon, no registry) on
 * the local stand-in for node:24-slim that .ci/provision.sh makes (.ci/image-base.sh), then run:
 *
 * - with its embedded dependencies, read-only root filesystem and non-root user: /live, /ready,
 *   /metrics, one plan, the HEALTHCHECK, and SIGTERM: `/ready` 503 during the drain, exit within it
 *   plus the bound;
 * - once against the rig's real Kafka, Temporal, Redis and MongoDB (the `*_URL` variables, host
 *   networking), so the container's networking and config are proven too.
 *
 * No engine or no base image fails the run (never a skip): provision with `bash .ci/provision.sh`.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, beforeAll, describe, inject, it } from "vitest"
import { freePort } from "../../tools/rig/servers.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))
const cache = process.env["NH_CACHE_DIR"] ?? path.join(os.homedir(), ".cache", "neural-hive")
const IMAGE = `localhost/orchestrator-dynamic:test-${process.pid}`
const DRAIN_SECONDS = 1

const settings = (): { readonly CONTAINERS_CONF: string; readonly NODE_IMAGE: string } => {
  const file = path.join(cache, "image.env")
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run bash .ci/provision.sh (it makes the image base)`)
  const values = Object.fromEntries(
    fs.readFileSync(file, "utf8").split("\n").filter((l) => l.includes("=")).map((l) => {
      const i = l.indexOf("=")
      return [l.slice(0, i), l.slice(i + 1)]
    })
  )
  const conf = values["CONTAINERS_CONF"]
  const base = values["NODE_IMAGE"]
  if (conf === undefined || base === undefined) throw new Error(`${file}: CONTAINERS_CONF or NODE_IMAGE missing`)
  return { CONTAINERS_CONF: conf, NODE_IMAGE: base }
}

const podman = (args: ReadonlyArray<string>, timeout = 60_000) => {
  const result = spawnSync("podman", args, {
    cwd: root,
    encoding: "utf8",
    timeout,
    env: { ...process.env, CONTAINERS_CONF: settings().CONTAINERS_CONF }
  })
  if (result.error !== undefined) throw result.error
  // Podman without systemd says so on stderr for every health check timer: not our concern.
  const stderr = result.stderr.split("\n").filter((l) => !l.includes("systemd")).join("\n")
  return { status: result.status, stdout: result.stdout.trim(), stderr }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const waitFor = async (check: () => Promise<boolean>, ms: number): Promise<boolean> => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check().catch(() => false)) return true
    await sleep(200)
  }
  return false
}

/** Runs the image (host network, read-only root, /tmp a tmpfs); returns its id and the base URL. */
const run = async (env: Record<string, string>) => {
  const port = await freePort()
  const vars = { HTTP_HOST: "127.0.0.1", HTTP_PORT: String(port), DRAIN_SECONDS: String(DRAIN_SECONDS), ...env }
  const started = podman([
    "run",
    "-d",
    "--init",
    "--network",
    "host",
    "--read-only",
    "--tmpfs",
    "/tmp",
    ...Object.entries(vars).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
    IMAGE
  ])
  assert.strictEqual(started.status, 0, started.stderr)
  const id = started.stdout.split("\n").at(-1)!
  const url = `http://127.0.0.1:${port}`
  const live = await waitFor(async () => (await fetch(`${url}/live`)).status === 200, 60_000)
  if (!live) {
    const logs = podman(["logs", id])
    podman(["rm", "-f", id])
    throw new Error(`the container did not answer /live:\n${logs.stdout}\n${logs.stderr}`)
  }
  return { id, url }
}

const plan = (url: string, id: string) =>
  fetch(`${url}/plans`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id, steps: ["plan", "execute"] }),
    signal: AbortSignal.timeout(30_000)
  })

describe("the container image (Podman)", () => {
  beforeAll(() => {
    const { NODE_IMAGE } = settings()
    const ca = process.env["NODE_EXTRA_CA_CERTS"]
    const started = performance.now()
    const build = podman([
      "build",
      "--format",
      "docker",
      "--network",
      "host",
      "--build-arg",
      `NODE_IMAGE=${NODE_IMAGE}`,
      // A TLS-intercepting proxy's CA, for npm in the build stage only (the Dockerfile's npm_ca secret).
      ...(ca !== undefined && fs.existsSync(ca) ? ["--secret", `id=npm_ca,src=${ca}`] : []),
      "-t",
      IMAGE,
      "."
    ], 600_000)
    assert.strictEqual(build.status, 0, `${build.stdout.slice(-3000)}\n${build.stderr.slice(-3000)}`)
    const size = Number(podman(["image", "inspect", "--format", "{{.Size}}", IMAGE]).stdout)
    console.log(
      `[image] built ${IMAGE} on ${NODE_IMAGE} in ${((performance.now() - started) / 1000).toFixed(0)} s: ${
        (size / 1e6).toFixed(0)
      } MB`
    )
  }, 660_000)

  afterAll(() => {
    podman(["rmi", "-f", IMAGE])
  })

  it(
    "embedded: /live, /ready, /metrics, a plan, the health check, non-root on a read-only root; SIGTERM drains and exits",
    async () => {
      const { id, url } = await run({})
      try {
        assert.strictEqual((await fetch(`${url}/ready`)).status, 200)
        const metrics = await (await fetch(`${url}/metrics`)).text()
        assert.include(metrics, `circuit_breaker_state{service="orchestrator-dynamic",circuit="kafka_producer"`)
        const accepted = await plan(url, `image-${Date.now()}`)
        assert.strictEqual(accepted.status, 202, await accepted.text())
        assert.strictEqual(podman(["exec", id, "id", "-u"]).stdout, "10001")
        // The root filesystem is read-only; only /tmp (a tmpfs) is writable.
        assert.notStrictEqual(podman(["exec", id, "touch", "/app/x"]).status, 0)
        assert.strictEqual(podman(["exec", id, "touch", "/tmp/x"]).status, 0)
        // No package manager in the running image.
        assert.notStrictEqual(podman(["exec", id, "sh", "-c", "command -v npm"]).status, 0)
        const health = podman(["healthcheck", "run", id])
        assert.strictEqual(health.status, 0, health.stderr)

        const signalled = performance.now()
        assert.strictEqual(podman(["kill", "--signal", "TERM", id]).status, 0)
        const draining = await waitFor(async () => (await fetch(`${url}/ready`)).status === 503, 2_000)
        assert.isTrue(draining, "/ready turns 503 during the drain")
        // Still serving during the drain.
        assert.strictEqual((await fetch(`${url}/live`)).status, 200)
        const waited = podman(["wait", id], 60_000)
        const exitedAfter = performance.now() - signalled
        assert.include(["0", "130"], waited.stdout.split("\n").at(-1))
        assert.isAtLeast(exitedAfter, DRAIN_SECONDS * 1000 - 200)
        assert.isBelow(exitedAfter, DRAIN_SECONDS * 1000 + 10_000)
        const logs = podman(["logs", id]).stdout
        assert.include(logs, `"event":"service_draining"`)
        assert.include(logs, `"event":"service_stopped"`)
        console.log(`[image] SIGTERM to exit: ${exitedAfter.toFixed(0)} ms (drain ${DRAIN_SECONDS} s)`)
      } finally {
        podman(["rm", "-f", id])
      }
    },
    120_000
  )

  it("against the rig's real servers: a plan is stored, started and published", async () => {
    const { id, url } = await run({
      KAFKA_BROKERS: inject("kafkaBrokers"),
      TEMPORAL_ADDRESS: inject("temporalAddress"),
      REDIS_URL: inject("redisUrl"),
      MONGODB_URL: inject("mongodbUrl")
    })
    try {
      const health = (await (await fetch(`${url}/health`)).json()) as { breakers: Array<{ name: string }> }
      assert.sameMembers(health.breakers.map((b) => b.name), [
        "kafka_producer",
        "temporal_client",
        "redis_client",
        "mongodb_client"
      ])
      const planId = `image-real-${Date.now()}`
      let status = 0
      for (let attempt = 0; attempt < 20 && status !== 202; attempt++) {
        if (attempt > 0) await sleep(500)
        const response = await plan(url, planId)
        status = response.status
        await response.text()
      }
      assert.strictEqual(status, 202)
      const logs = podman(["logs", id]).stdout
      assert.include(logs, `"kafka":"real"`)
      assert.include(logs, `"mongodb":"real"`)
      assert.include(logs, planId)
    } finally {
      podman(["rm", "-f", id])
    }
  }, 180_000)
})
