/**
 * Temporal TLS and API key against a real server that requires them. The Temporal test server speaks
 * plaintext gRPC only, so a TLS front (tools/rig/temporalTls.ts: HTTP/2 over TLS with a certificate from
 * a CA made by openssl at test time) checks every call's `authorization: Bearer <key>` and forwards the
 * accepted ones to it; a missing or wrong key is refused with gRPC UNAUTHENTICATED before it reaches
 * Temporal. The example service is configured as an operator would (TEMPORAL_ADDRESS, TEMPORAL_TLS_CA_FILE,
 * TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY).
 */
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { type ServerHandle, startTemporal } from "../../../tools/rig/servers.ts"
import { startTemporalTlsProxy, type TemporalTlsProxy } from "../../../tools/rig/temporalTls.ts"
import { makePki, type Pki } from "../../../tools/rig/tls.ts"
import { assertNoSecret, breaker, openLine, start, submitPlan, until } from "./harness.ts"

const API_KEY = "temporal-Key-8d2f61c0a9"
const WRONG_KEY = "wrong-Key-3b7e05d1c4"

let pki: Pki
let temporal: ServerHandle
let proxy: TemporalTlsProxy

beforeAll(async () => {
  pki = makePki()
  const started = performance.now()
  temporal = await startTemporal()
  proxy = await startTemporalTlsProxy({ targetPort: temporal.port, cert: pki.cert, key: pki.key, apiKey: API_KEY })
  console.log(`[credentials] temporal + TLS/API-key proxy up in ${Math.round(performance.now() - started)} ms`)
}, 120_000)

afterAll(async () => {
  await proxy?.close()
  await temporal?.stop()
  pki?.remove()
})

const env = (apiKey: string, caFile: string) => ({
  TEMPORAL_ADDRESS: proxy.address,
  TEMPORAL_TLS_CA_FILE: caFile,
  TEMPORAL_TLS_SERVER_NAME: "localhost",
  TEMPORAL_API_KEY: apiKey
})

describe("Temporal TLS and API key (example service, TEMPORAL_* variables)", () => {
  it("the right key over TLS with the private CA: the plan's workflow starts through the proxy", async () => {
    const before = proxy.counts()
    const service = await start(env(API_KEY, pki.caFile))
    try {
      const plan = await submitPlan(service, "cred-temporal-1")
      assert.include([200, 201, 202], plan.status, plan.text)
      const client = await breaker(service, "temporal_client")
      assert.strictEqual(client.state, "closed")
      assert.strictEqual(client.failures, 0)
      const after = proxy.counts()
      // The start check and the plan's calls went through, none refused.
      assert.isAtLeast(after.forwarded - before.forwarded, 2)
      assert.strictEqual(after.refused, before.refused)
      const starting = service.lines().find((l) => l["event"] === "orchestrator_starting")
      assert.strictEqual(starting?.["temporal_tls"], true)
      assert.strictEqual(starting?.["temporal_api_key"], true)
      await assertNoSecret(service, [API_KEY])
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 60_000)

  it(
    "a wrong key: UNAUTHENTICATED at the start check opens temporal_client, redacted; the service keeps serving",
    async () => {
      const before = proxy.counts()
      const service = await start(env(WRONG_KEY, pki.caFile))
      try {
        await until("temporal_client", () => breaker(service, "temporal_client"), (b) => b.state === "open")
        const lastError = String(openLine(service, "temporal_client")?.["last_error"])
        console.log(`[credentials] temporal wrong key: ${JSON.stringify(lastError)}`)
        assert.match(lastError, /UNAUTHENTICATED|invalid API key/i)
        assert.isAbove(proxy.counts().refused, before.refused)
        assert.strictEqual((await fetch(`${service.url}/live`)).status, 200)
        await assertNoSecret(service, [WRONG_KEY, API_KEY])
      } finally {
        assert.include([0, 130], await service.stop())
      }
    },
    60_000
  )

  it("a CA the proxy's certificate does not end in: the handshake fails, temporal_client opens", async () => {
    const service = await start(env(API_KEY, pki.otherCaFile))
    try {
      await until("temporal_client", () => breaker(service, "temporal_client"), (b) => b.state === "open")
      const lastError = String(openLine(service, "temporal_client")?.["last_error"])
      console.log(`[credentials] temporal untrusted CA: ${JSON.stringify(lastError)}`)
      assert.match(lastError, /certificate/i)
      await assertNoSecret(service, [API_KEY])
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 60_000)
})
