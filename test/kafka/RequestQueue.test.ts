/**
 * kafkajs 2.2.4 schedules its idle request-queue check with `setTimeout(check, -1 - Date.now())`
 * (tulios/kafkajs#1751): Node prints `TimeoutNegativeWarning` and the check then runs every 1 ms.
 * KafkaProducer.make patches the queue (packages/kafka/src/internal/requestQueue.ts). Node emits that
 * warning once per process, so each case runs in a fresh one, against a broker that accepts and never
 * answers: its first request times out, which is where kafkajs schedules the check.
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath, pathToFileURL } from "node:url"
import { assert, describe, it } from "vitest"
import { EXAMPLE_NODE, SOURCE_CONDITION } from "../../tools/rig/example.ts"

const kafkaSource = pathToFileURL(fileURLToPath(new URL("../../packages/kafka/src/index.ts", import.meta.url))).href

/** Runs `body` (ESM JavaScript) in a fresh Node with a stalling broker at `broker`; the warnings it emitted. */
const warningsOf = (body: string): { readonly warnings: ReadonlyArray<string>; readonly output: string } => {
  const script = `
import * as net from "node:net"
const warnings = []
process.on("warning", (warning) => warnings.push(warning.name + ": " + warning.message.split("\\n")[0]))
const sockets = new Set()
const server = net.createServer((socket) => {
  sockets.add(socket)
  socket.on("error", () => {})
  socket.resume()
})
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
const broker = "127.0.0.1:" + server.address().port
${body}
// A check scheduled after the timeout, and its warning (emitted on the next tick), have had their turn.
await new Promise((resolve) => setTimeout(resolve, 300))
for (const socket of sockets) socket.destroy()
server.close()
console.log(JSON.stringify(warnings))
process.exit(0)
`
  const run = spawnSync(EXAMPLE_NODE, [SOURCE_CONDITION, "--input-type=module", "--eval", script], {
    cwd: fileURLToPath(new URL("../..", import.meta.url)),
    env: { PATH: process.env["PATH"] ?? "" },
    encoding: "utf8",
    timeout: 30_000
  })
  const output = `${run.stdout}\n${run.stderr}`
  assert.strictEqual(run.status, 0, output)
  const last = run.stdout.trim().split("\n").at(-1) ?? "[]"
  return { warnings: JSON.parse(last) as Array<string>, output }
}

describe("kafkajs request queue", () => {
  it("unpatched kafkajs emits TimeoutNegativeWarning when a request times out (if not, drop the patch)", () => {
    const { warnings, output } = warningsOf(`
import kafkajs from "kafkajs"
const producer = new kafkajs.Kafka({
  brokers: [broker], connectionTimeout: 300, requestTimeout: 300, enforceRequestTimeout: true,
  retry: { retries: 0 }, logLevel: kafkajs.logLevel.NOTHING
}).producer()
await producer.connect().catch(() => {})
await producer.disconnect().catch(() => {})
`)
    assert.isTrue(warnings.some((w) => w.startsWith("TimeoutNegativeWarning")), output)
  }, 30_000)

  it("a KafkaProducer's timed-out request schedules no negative timeout", () => {
    const { warnings, output } = warningsOf(`
import { Effect } from "effect"
const { KafkaProducer } = await import(${JSON.stringify(kafkaSource)})
const exit = await Effect.runPromiseExit(Effect.scoped(Effect.gen(function*() {
  const producer = yield* KafkaProducer.make({
    brokers: [broker], connectionTimeout: "300 millis", requestTimeout: "300 millis", sendTimeout: "3 seconds",
    eagerConnect: false, retries: 0, logLevel: "None"
  })
  return yield* Effect.flip(producer.send({ topic: "tickets", messages: [{ value: "x" }] }))
})))
if (exit._tag !== "Success" || exit.value.reason !== "Timeout") throw new Error("expected a Timeout: " + String(exit))
`)
    assert.deepStrictEqual(warnings, [], output)
  }, 30_000)
})
