/**
 * The child of exit.test.ts: `node --conditions=@neural-hive/source program.ts <client> <port> [open]`
 * builds one client's layer against 127.0.0.1:<port> (nothing listening, or a server that never answers),
 * makes one call, lets the layer close, and prints `last <ms>` as its last line. Its `exit` handler prints
 * `exit <ms>`: the gap between the two is how long a client's timer or handle held the process. `open`:
 * the breaker opens on the first failure (the start check), so the client is retired (closed) before the
 * call, which the open breaker refuses.
 *
 * Short call deadlines keep the run short; the connect timeouts stay at their defaults (longer than the
 * call), so a connection attempt is still under way when the layer closes.
 */
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { RedisCache } from "@neural-hive/redis"
import { TemporalClient } from "@neural-hive/temporal"
import { Effect, Exit, Logger } from "effect"
import { writeSync } from "node:fs"

const now = () => performance.timeOrigin + performance.now()
const print = (line: string) => writeSync(1, `${line}\n`)

const [client, port, mode] = process.argv.slice(2)
const breaker = mode === "open" ? { failMax: 1 } : {}
const host = `127.0.0.1:${port}`

// One call per client, each failing (or falling open) against a dead server; its outcome goes in the report.
const call: Effect.Effect<unknown, unknown> = (() => {
  switch (client) {
    case "redis":
      return Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        return yield* cache.get("exit")
      }).pipe(Effect.provide(RedisCache.layer({ url: `redis://${host}`, commandTimeout: "300 millis", breaker })))
    case "kafka":
      return Effect.gen(function*() {
        const producer = yield* KafkaProducer.KafkaProducer
        return yield* producer.send({ topic: "exit", messages: [{ value: "exit" }] })
      }).pipe(Effect.provide(KafkaProducer.layer({
        brokers: [host],
        requestTimeout: "500 millis",
        breaker,
        logLevel: "None"
      })))
    case "mongodb":
      return Effect.gen(function*() {
        const store = yield* MongoStore.MongoStore
        return yield* store.findOne("exit", {})
      }).pipe(Effect.provide(MongoStore.layer({
        url: `mongodb://${host}/exit`,
        operationTimeout: "1 second",
        serverSelectionTimeout: "500 millis",
        breaker
      })))
    case "temporal":
      return Effect.gen(function*() {
        const temporal = yield* TemporalClient.TemporalClient
        return yield* temporal.describeWorkflow("exit")
      }).pipe(Effect.provide(TemporalClient.layer({ address: host, rpcTimeout: "500 millis", breaker })))
    default:
      return Effect.die(new Error(`unknown client ${client}`))
  }
})()

process.on("exit", () => print(`exit ${now()}`))

const exit = await Effect.runPromise(Effect.exit(call).pipe(Effect.provide(Logger.layer([]))))
const outcome = Exit.isSuccess(exit) ? "success" : String(exit.cause).split("\n")[0]
// What still holds the event loop once every layer closed (the culprits when the exit comes late).
print(`active ${JSON.stringify(process.getActiveResourcesInfo())}`)
print(`outcome ${JSON.stringify(outcome)}`)
print(`last ${now()}`)
