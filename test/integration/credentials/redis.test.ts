/**
 * Redis credentials against a real redis-server that requires them: Redis 7 (Debian's build, with TLS)
 * with the default user's password set (`requirepass`), an ACL user (`--user`), and a TLS port whose
 * certificate comes from a CA made by openssl at test time (`--tls-port`, `--tls-auth-clients no`). The
 * example service is configured as an operator would (REDIS_URL, REDIS_TLS_CA_FILE); the package layer
 * covers `requirepass` (`redis://:password@`). A wrong password gives a typed, redacted failure and an
 * OPEN redis_client, not a crash.
 */
import { RedisCache } from "@neural-hive/redis"
import { Effect, Redacted } from "effect"
import { Redis } from "ioredis"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { freePort, type ServerHandle, startRedis } from "../../../tools/rig/servers.ts"
import { makePki, type Pki } from "../../../tools/rig/tls.ts"
import { assertNoSecret, breaker, openLine, start, submitPlan, until } from "./harness.ts"

const ACL_USER = "nh-orchestrator"
const ACL_PASSWORD = "acl-Secret-2c71be-pw"
const DEFAULT_PASSWORD = "requirepass-Secret-9a04d1"
const WRONG_PASSWORD = "wrong-Secret-6e13aa-pw"

let pki: Pki
let redis: ServerHandle
let tlsPort: number

beforeAll(async () => {
  pki = makePki()
  tlsPort = await freePort()
  const started = performance.now()
  redis = await startRedis({
    args: [
      "--requirepass",
      DEFAULT_PASSWORD,
      // redis-server joins the arguments after an option up to the next "--option".
      "--user",
      ACL_USER,
      "on",
      `>${ACL_PASSWORD}`,
      "~*",
      "&*",
      "+@all",
      "--tls-port",
      String(tlsPort),
      "--tls-cert-file",
      pki.certFile,
      "--tls-key-file",
      pki.keyFile,
      "--tls-ca-cert-file",
      pki.caFile,
      "--tls-auth-clients",
      "no"
    ],
    auth: { username: ACL_USER, password: ACL_PASSWORD }
  })
  console.log(
    `[credentials] redis with requirepass, ACL user and TLS up in ${Math.round(performance.now() - started)} ms`
  )
}, 60_000)

afterAll(async () => {
  await redis?.stop()
  pki?.remove()
})

const tlsUrl = (password: string) => `rediss://${ACL_USER}:${password}@127.0.0.1:${tlsPort}/0`

describe("Redis credentials (example service, REDIS_URL and REDIS_TLS_CA_FILE)", () => {
  it("an ACL user over TLS with the private CA: the plan's cache writes succeed", async () => {
    const service = await start({ REDIS_URL: tlsUrl(ACL_PASSWORD), REDIS_TLS_CA_FILE: pki.caFile })
    try {
      const plan = await submitPlan(service, "cred-redis-1")
      assert.include([200, 201, 202], plan.status, plan.text)
      // The plan's ticket was cached through the TLS port as the ACL user.
      const client = new Redis(`redis://${ACL_USER}:${ACL_PASSWORD}@127.0.0.1:${redis.port}`)
      const keys = await client.keys("*").finally(() => client.disconnect())
      assert.isAbove(keys.length, 0)
      const cache = await breaker(service, "redis_client")
      assert.strictEqual(cache.state, "closed")
      assert.strictEqual(cache.failures, 0)
      await assertNoSecret(service, [ACL_PASSWORD])
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 60_000)

  it(
    "a wrong password: the start check opens redis_client with WRONGPASS, redacted; the service keeps serving",
    async () => {
      const service = await start({ REDIS_URL: tlsUrl(WRONG_PASSWORD), REDIS_TLS_CA_FILE: pki.caFile })
      try {
        await until("redis_client", () => breaker(service, "redis_client"), (b) => b.state === "open")
        const lastError = String(openLine(service, "redis_client")?.["last_error"])
        console.log(`[credentials] redis wrong password: ${JSON.stringify(lastError)}`)
        assert.match(lastError, /WRONGPASS/)
        assert.strictEqual((await fetch(`${service.url}/live`)).status, 200)
        const plan = await submitPlan(service, "cred-redis-2")
        assert.include([200, 201, 202], plan.status, plan.text)
        await assertNoSecret(service, [WRONG_PASSWORD, ACL_PASSWORD])
      } finally {
        assert.include([0, 130], await service.stop())
      }
    },
    60_000
  )

  it("a CA Redis's certificate does not end in: the handshake fails, redis_client opens", async () => {
    const service = await start({ REDIS_URL: tlsUrl(ACL_PASSWORD), REDIS_TLS_CA_FILE: pki.otherCaFile })
    try {
      await until("redis_client", () => breaker(service, "redis_client"), (b) => b.state === "open")
      const lastError = String(openLine(service, "redis_client")?.["last_error"])
      console.log(`[credentials] redis untrusted CA: ${JSON.stringify(lastError)}`)
      assert.match(lastError, /certificate|self.signed|verify/i)
      await assertNoSecret(service, [ACL_PASSWORD])
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 60_000)
})

/** PING through the package's layer: the reply, or the typed error. */
const ping = (options: RedisCache.Options) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const cache = yield* RedisCache.RedisCache
      return yield* cache.use("PING", (client) => client.ping()).pipe(
        Effect.map((reply) => ({ reply, error: undefined })),
        Effect.catch((error) => Effect.succeed({ reply: undefined, error }))
      )
    }).pipe(Effect.provide(RedisCache.layer({ probe: false, ...options })))
  )

describe("Redis credentials (RedisCache layer)", () => {
  it("requirepass: redis://:password@ logs in as the default user; a wrong one is an Authentication error", async () => {
    const ok = await ping({ url: Redacted.make(`redis://:${DEFAULT_PASSWORD}@127.0.0.1:${redis.port}`) })
    assert.strictEqual(ok.reply, "PONG")
    const refused = await ping({ url: Redacted.make(`redis://:${WRONG_PASSWORD}@127.0.0.1:${redis.port}`) })
    assert.strictEqual(refused.error?._tag, "RedisError")
    assert.strictEqual((refused.error as RedisCache.RedisError).reason, "Authentication")
    assert.notInclude(JSON.stringify(refused.error) + String(refused.error?.message), WRONG_PASSWORD)
  })

  it("tls.ca with a rediss:// URL and an ACL user", async () => {
    const ok = await ping({ url: tlsUrl(ACL_PASSWORD), tls: { ca: pki.ca } })
    assert.strictEqual(ok.reply, "PONG")
    // Without the CA, the system's CAs do not know ours.
    const untrusted = await ping({ url: tlsUrl(ACL_PASSWORD) })
    assert.isDefined(untrusted.error)
  })
})
