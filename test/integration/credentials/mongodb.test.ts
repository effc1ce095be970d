/**
 * MongoDB TLS against a real server that requires it on its TLS port: FerretDB 1.x (SQLite backend) with its
 * TLS listener (`-listen-tls`, certificate and key from a CA made by openssl at test time). The example
 * service is configured as an operator would (MONGODB_URL and MONGODB_TLS_CA_FILE); the package layer
 * covers the driver's URL options (`?tls=true&tlsCAFile=...`). FerretDB 1.x with SQLite does not check
 * passwords, so MongoDB authentication is not tested here (see docs/testing.md).
 */
import { MongoStore } from "@neural-hive/mongodb"
import { Effect, Redacted } from "effect"
import { MongoClient } from "mongodb"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { freePort, type ServerHandle, startMongo } from "../../../tools/rig/servers.ts"
import { makePki, type Pki } from "../../../tools/rig/tls.ts"
import { assertNoSecret, breaker, openLine, start, submitPlan, until } from "./harness.ts"

let pki: Pki
let mongo: ServerHandle
let tlsPort: number

beforeAll(async () => {
  pki = makePki()
  tlsPort = await freePort()
  const started = performance.now()
  mongo = await startMongo({ tls: { port: tlsPort, certFile: pki.certFile, keyFile: pki.keyFile } })
  console.log(`[credentials] ferretdb with a TLS listener up in ${Math.round(performance.now() - started)} ms`)
}, 60_000)

afterAll(async () => {
  await mongo?.stop()
  pki?.remove()
})

const SECRET = "mongo-Secret-4a9e17-pw"

describe("MongoDB TLS (example service, MONGODB_URL and MONGODB_TLS_CA_FILE)", () => {
  it("the TLS port with the private CA: the plan is stored", async () => {
    const service = await start({
      MONGODB_URL: `mongodb://127.0.0.1:${tlsPort}/orchestrator`,
      MONGODB_TLS_CA_FILE: pki.caFile
    })
    try {
      const plan = await submitPlan(service, "cred-mongo-1")
      assert.include([200, 201, 202], plan.status, plan.text)
      const store = await breaker(service, "mongodb_client")
      assert.strictEqual(store.state, "closed")
      assert.strictEqual(store.failures, 0)
      // Stored through TLS: read back over the plaintext port.
      const client = new MongoClient(`${mongo.endpoint}?directConnection=true`)
      const count = await client.db("orchestrator").collection("tickets").countDocuments().finally(() => client.close())
      assert.isAbove(count, 0)
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 60_000)

  it(
    "a CA FerretDB's certificate does not end in: the handshake fails, mongodb_client opens, no password shown",
    async () => {
      const service = await start({
        MONGODB_URL: `mongodb://nh:${SECRET}@127.0.0.1:${tlsPort}/orchestrator`,
        MONGODB_TLS_CA_FILE: pki.otherCaFile
      })
      try {
        await until("mongodb_client", () => breaker(service, "mongodb_client"), (b) => b.state === "open")
        const lastError = String(openLine(service, "mongodb_client")?.["last_error"])
        console.log(`[credentials] mongodb untrusted CA: ${JSON.stringify(lastError)}`)
        assert.match(lastError, /certificate|self.signed|verify|ServerSelection|TLS/i)
        await assertNoSecret(service, [SECRET])
      } finally {
        assert.include([0, 130], await service.stop())
      }
    },
    60_000
  )
})

/** `ping` through the package's layer: "ok", or the error's message. */
const ping = (url: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const store = yield* MongoStore.MongoStore
      return yield* store.use("ping", (db) => db.command({ ping: 1 })).pipe(
        Effect.map(() => "ok"),
        Effect.catch((error) => Effect.succeed(error.message))
      )
    }).pipe(Effect.provide(MongoStore.layer({ url: Redacted.make(url), probe: false })))
  )

describe("MongoDB TLS (MongoStore layer, the driver's URL options)", () => {
  it("?tls=true&tlsCAFile= reaches the TLS port; plaintext to it does not", async () => {
    assert.strictEqual(
      await ping(`mongodb://127.0.0.1:${tlsPort}/orchestrator?tls=true&tlsCAFile=${encodeURIComponent(pki.caFile)}`),
      "ok"
    )
    assert.notStrictEqual(await ping(`mongodb://127.0.0.1:${tlsPort}/orchestrator`), "ok")
  })
})
