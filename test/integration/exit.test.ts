/**
 * Clean exit (issue 30): once its layers closed, a program whose dependencies are down exits at once; no
 * client timer or handle holds it. For each client a child process (test/integration/exit/program.ts)
 * builds the layer against a dead dependency (a loopback port with nothing listening, or a server that
 * accepts and never answers), makes one call, lets the layer close and prints `last <ms>`; its `exit`
 * handler prints `exit <ms>`. The gap must stay under 100 ms. Before the fix, ioredis's `disconnect()`
 * timer (`disconnectTimeout`, 2 s) held it, and the MongoDB driver's handshake with a server that never
 * answers held it until `connectTimeout` (2 s) after `close()`.
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { EXAMPLE_NODE, SOURCE_CONDITION } from "../../tools/rig/example.ts"

const PROGRAM = fileURLToPath(new URL("exit/program.ts", import.meta.url))
const GAP_MILLIS = 100

// V8's background tasks (compiling the SDKs' code) are drained before `exit`: on a loaded machine that took
// up to 150 ms, whatever the clients did. One thread keeps the measure on what holds the event loop.
const V8_ONE_THREAD = "--single-threaded"

// NH_IOREDIS=5 swaps ioredis for ioredis-5 in the child too, as vitest.config.ts does in the tests.
const IOREDIS_5 = `import { registerHooks } from "node:module"
registerHooks({
  resolve(specifier, context, next) {
    const m = /^ioredis(\\/.*)?$/.exec(specifier)
    return next(m === null ? specifier : "ioredis-5" + (m[1] ?? ""), context)
  }
})`
const ioredis5 = process.env["NH_IOREDIS"] === "5"
const hooks = ioredis5 ? [`--import=data:text/javascript,${encodeURIComponent(IOREDIS_5)}`] : []
// On ioredis 5 only the Redis runs differ (`npm run test:ioredis5`).
const clients = ioredis5 ? ["redis"] : ["redis", "kafka", "mongodb", "temporal"]

interface Run {
  readonly gap: number
  readonly code: number | null
  readonly outcome: string
  readonly active: string
  readonly output: string
}

const run = (client: string, port: number, mode: string): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      EXAMPLE_NODE,
      [V8_ONE_THREAD, SOURCE_CONDITION, ...hooks, PROGRAM, client, String(port), mode],
      {
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      const field = (name: string) => new RegExp(`^${name} (.*)$`, "m").exec(output)?.[1] ?? ""
      resolve({
        gap: Number(field("exit")) - Number(field("last")),
        code,
        outcome: field("outcome"),
        active: field("active"),
        output
      })
    })
  })

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

// Accepts connections and never writes a byte.
let silent: net.Server
const sockets = new Set<net.Socket>()

beforeAll(async () => {
  silent = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("error", () => undefined).on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
})

afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  await new Promise((resolve) => silent?.close(resolve))
})

const dependencies = {
  "nothing listening": freePort,
  "a server that never answers": () => Promise.resolve((silent.address() as net.AddressInfo).port)
}

// "closed": the breaker lets the call through; "open": it opened at the start check, which retired the client.
const cases = Object.keys(dependencies).flatMap((dependency) =>
  clients.flatMap((client) =>
    ["closed", "open"].map((breaker) => ({ dependency: dependency as keyof typeof dependencies, client, breaker }))
  )
)

describe("a program whose dependency is down", () => {
  it.each(cases)(
    "$client, $dependency, breaker $breaker: the process exits within 100 ms of its last line",
    async ({ breaker, client, dependency }) => {
      const result = await run(client, await dependencies[dependency](), breaker)
      console.log(`${client} (${dependency}, ${breaker}): exit ${result.gap.toFixed(1)} ms after the last line`)
      assert.strictEqual(result.code, 0, result.output)
      // The call failed (or fell open): the dependency was down indeed.
      assert.notStrictEqual(result.outcome, "", result.output)
      assert.isTrue(Number.isFinite(result.gap), result.output)
      assert.isBelow(result.gap, GAP_MILLIS, `active at the last line: ${result.active}\n${result.output}`)
    },
    40_000
  )
})
