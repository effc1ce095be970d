/**
 * RedisCache against a real redis-server, with real faults: the server killed,
 * the connection stalled and cut through a fault proxy, then the server back.
 * Fail-open: the program keeps answering (from none) during the outage. An idle
 * breaker closes by itself (its PING probe) once the server is back; an
 * authentication failure (NOAUTH) counts.
 */
import { assert, describe, it } from "@effect/vitest"
import { RedisCache, RedisError } from "@neural-hive/redis"
import { Hedge, Registry } from "@neural-hive/resilience"
import { Duration, Effect, Fiber, Layer, Option } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { type ServerHandle, startRedis } from "../../tools/rig/servers.ts"
import { eventually } from "./eventually.ts"

let server: ServerHandle
let proxy: FaultProxy

beforeAll(async () => {
  server = await startRedis()
  proxy = await FaultProxy.start({ targetPort: server.port })
})

afterAll(async () => {
  await proxy?.close()
  await server?.stop()
})

const FAIL_MAX = 3
const RECOVERY_MILLIS = 1000
const PROBE_GRACE_MILLIS = 100
const COMMAND_TIMEOUT_MILLIS = 300

const cacheLayer = (options: Partial<RedisCache.Options> = {}, probeGrace: Duration.Input = "1 minute") =>
  RedisCache.layer({
    url: `redis://127.0.0.1:${proxy.port}`,
    commandTimeout: COMMAND_TIMEOUT_MILLIS,
    connectTimeout: "300 millis",
    maxReconnectDelay: "100 millis",
    // The fault scenarios recover through a real call; a long grace keeps the idle probe out of their way.
    breaker: { failMax: FAIL_MAX, recoveryTimeout: RECOVERY_MILLIS, maxOpenDuration: RECOVERY_MILLIS, probeGrace },
    ...options
  })

const cache = RedisCache.RedisCache

/** Calls `get` until the breaker opens; every answer meanwhile must be `none` (fail-open). */
const failUntilOpen = Effect.gen(function*() {
  const { breaker, get } = yield* cache
  let calls = 0
  while ((yield* breaker.state) !== "Open") {
    assert.isTrue(Option.isNone(yield* get("plan:1")))
    calls++
    assert.isBelow(calls, 50, "the breaker never opened")
  }
  return calls
})

/** While open: calls answer none at once and nothing reaches the network. */
const assertFailsFastWithoutConnecting = Effect.gen(function*() {
  const { breaker, get, ping } = yield* cache
  yield* Effect.sleep("150 millis") // let a reconnect attempt already under way finish
  const accepted = proxy.connectionsAccepted
  const started = Date.now()
  for (let i = 0; i < 20; i++) {
    assert.isTrue(Option.isNone(yield* get("plan:1")))
    assert.isFalse(yield* ping)
  }
  assert.isBelow(Date.now() - started, 100, "rejections must not wait for the network")
  yield* Effect.sleep("300 millis")
  assert.strictEqual(proxy.connectionsAccepted, accepted, "no connection attempt while open")
  const snapshot = yield* breaker.snapshot
  assert.strictEqual(snapshot.state, "Open")
  assert.isAtLeast(snapshot.totals.rejected, 40)
})

/** After the open period, one probe closes the breaker and values are read again. */
const assertRecovers = Effect.gen(function*() {
  const { breaker, get, setex } = yield* cache
  yield* eventually(breaker.state, (s) => s === "HalfOpen", RECOVERY_MILLIS * 3)
  const before = (yield* breaker.snapshot).totals
  const stored = yield* eventually(setex("plan:1", 60, "cached-plan"), (ok) => ok)
  assert.isTrue(stored)
  assert.strictEqual(yield* breaker.state, "Closed")
  assert.deepStrictEqual(yield* get("plan:1"), Option.some("cached-plan"))
  const after = (yield* breaker.snapshot).totals
  assert.isAtLeast(after.successes - before.successes, 2)
})

describe("RedisCache on a real redis-server", () => {
  it.live("reads and writes through the breaker", () =>
    Effect.gen(function*() {
      const { breaker, get, ping, setex } = yield* cache
      assert.isTrue(yield* eventually(ping, (ok) => ok))
      assert.isTrue(yield* setex("greeting", 30, "hello"))
      assert.deepStrictEqual(yield* get("greeting"), Option.some("hello"))
      assert.deepStrictEqual(yield* get("missing"), Option.none())
      assert.strictEqual(yield* breaker.state, "Closed")
    }).pipe(Effect.provide(cacheLayer())))

  it.live("a caller error (WRONGTYPE) reaches the caller and never moves the breaker", () =>
    Effect.gen(function*() {
      const { breaker, get, ping, use } = yield* cache
      assert.isTrue(yield* eventually(ping, (ok) => ok))
      yield* use("RPUSH", (c) => c.rpush("a-list", "x"))
      for (let i = 0; i < FAIL_MAX * 2; i++) {
        assert.isTrue(Option.isNone(yield* get("a-list")))
      }
      const error = yield* Effect.flip(use("GET", (c) => c.get("a-list")))
      assert.instanceOf(error, RedisError)
      assert.strictEqual(error._tag === "RedisError" && error.reason, "Reply")
      assert.match(error.message, /WRONGTYPE/)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.totals.failures, 0)
      assert.strictEqual(snapshot.totals.ignored, FAIL_MAX * 2 + 1)
    }).pipe(Effect.provide(cacheLayer())))

  it.live(
    "server killed: opens after failMax, fails fast without connecting, closes after one probe",
    () =>
      Effect.gen(function*() {
        const { ping } = yield* cache
        assert.isTrue(yield* eventually(ping, (ok) => ok))
        yield* Effect.promise(() => server.kill())
        const calls = yield* failUntilOpen
        assert.isAtMost(calls, FAIL_MAX + 1) // failMax counted failures (+1 if a call raced the disconnect)
        yield* assertFailsFastWithoutConnecting
        yield* Effect.promise(() => server.restart())
        yield* assertRecovers
      }).pipe(Effect.provide(cacheLayer())),
    60_000
  )

  it.live("server stalled: command timeouts count and open the breaker", () =>
    Effect.gen(function*() {
      const { breaker, ping } = yield* cache
      assert.isTrue(yield* eventually(ping, (ok) => ok))
      yield* Effect.promise(() => proxy.stall())
      const started = Date.now()
      const calls = yield* failUntilOpen
      assert.strictEqual(calls, FAIL_MAX)
      // Each timed-out command waited about commandTimeout, no more.
      assert.isBelow(Date.now() - started, FAIL_MAX * 1000)
      assert.match((yield* breaker.snapshot).lastError ?? "", /timed out/i)
      yield* assertFailsFastWithoutConnecting
      yield* Effect.promise(() => proxy.pass())
      yield* assertRecovers
    }).pipe(Effect.provide(cacheLayer())), 60_000)

  it.live("server paused (SIGSTOP): the same, from the process itself", () =>
    Effect.gen(function*() {
      const { ping } = yield* cache
      assert.isTrue(yield* eventually(ping, (ok) => ok))
      server.pause()
      const calls = yield* Effect.ensuring(failUntilOpen, Effect.sync(() => server.resume()))
      assert.strictEqual(calls, FAIL_MAX)
      yield* assertRecovers
    }).pipe(Effect.provide(cacheLayer())), 60_000)

  it.live("connections cut mid-command count and open the breaker", () =>
    Effect.gen(function*() {
      const { breaker, get, ping } = yield* cache
      assert.isTrue(yield* eventually(ping, (ok) => ok))
      yield* Effect.promise(() => proxy.delay(200))
      let cuts = 0
      while ((yield* breaker.state) !== "Open") {
        // Cut while the GET is in flight (the proxy holds it for 200 ms).
        const fiber = yield* Effect.forkChild(get("plan:1"))
        yield* Effect.sleep("50 millis")
        proxy.cut()
        cuts++
        assert.isTrue(Option.isNone(yield* Fiber.join(fiber)))
        assert.isBelow(cuts, 20, "the breaker never opened")
      }
      assert.isAtLeast((yield* breaker.snapshot).totals.failures, FAIL_MAX)
      yield* Effect.promise(() => proxy.pass())
      yield* assertRecovers
    }).pipe(Effect.provide(cacheLayer())), 60_000)

  it.live("a password in the URL never appears in errors, logs or snapshots", () =>
    Effect.gen(function*() {
      const { breaker, use } = yield* cache
      yield* Effect.promise(() => proxy.refuse())
      proxy.cut()
      const error = yield* Effect.flip(use("PING", (c) => c.ping()))
      assert.strictEqual(error._tag, "RedisError")
      assert.notInclude(JSON.stringify(error), "s3cret")
      assert.notInclude(String(error.message), "s3cret")
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.totals.failures, 1)
      assert.notInclude(JSON.stringify(snapshot), "s3cret")
    }).pipe(
      Effect.ensuring(Effect.promise(() => proxy.pass())),
      Effect.provide(
        Layer.fresh(RedisCache.layer({
          url: `redis://default:s3cret@127.0.0.1:${proxy.port}`,
          commandTimeout: "300 millis",
          connectTimeout: "300 millis"
        }))
      )
    ))

  it.live(
    "idle recovery: server killed, breaker open, server back, no call at all: the PING probe closes it",
    () =>
      Effect.gen(function*() {
        const { breaker, ping } = yield* cache
        assert.isTrue(yield* eventually(ping, (ok) => ok))
        yield* Effect.promise(() => server.kill())
        yield* failUntilOpen
        yield* Effect.promise(() => server.restart())
        // From here on nothing calls the cache: only the breaker's own probe can close it.
        const back = performance.now()
        const before = (yield* breaker.snapshot).totals
        const bound = RECOVERY_MILLIS + PROBE_GRACE_MILLIS + COMMAND_TIMEOUT_MILLIS + 500
        yield* eventually(breaker.state, (state) => state === "Closed", bound + 2_000)
        const closedAfter = performance.now() - back
        const after = (yield* breaker.snapshot).totals
        assert.isBelow(closedAfter, bound, `closed ${Math.round(closedAfter)} ms after the server was back`)
        assert.strictEqual(after.rejected, before.rejected, "no call was made")
        assert.isAtLeast(after.successes - before.successes, 1, "the probe succeeded")
        assert.isTrue(yield* ping)
      }).pipe(Effect.provide(cacheLayer({}, PROBE_GRACE_MILLIS))),
    60_000
  )

  it.live(
    "an authentication failure (NOAUTH) is not the caller's: it counts, at start and on every call",
    () =>
      Effect.gen(function*() {
        const admin = new Redis(server.endpoint)
        yield* Effect.promise(() => admin.config("SET", "requirepass", "s3cret-admin"))
        yield* Effect.gen(function*() {
          const { breaker, get, use } = yield* cache
          // The start check (PING) already failed with NOAUTH and counted.
          const started = yield* breaker.snapshot
          assert.strictEqual(started.totals.failures, 1)
          assert.match(started.lastError ?? "", /NOAUTH/)
          // ioredis drops a connection that fails its ready check: later commands find no connection. Both count.
          const error = yield* Effect.flip(use("GET", (c) => c.get("plan:1")))
          assert.include(
            ["Authentication", "Connection"],
            error._tag === "RedisError" ? error.reason : "",
            error.message
          )
          assert.isTrue(RedisCache.isFailure(error))
          assert.isTrue(Option.isNone(yield* get("plan:1")))
          assert.strictEqual(yield* breaker.state, "Open")
          assert.strictEqual((yield* breaker.snapshot).totals.failures, FAIL_MAX)
          assert.notInclude(JSON.stringify(yield* breaker.snapshot), "s3cret-admin")
        }).pipe(
          Effect.provide(Layer.fresh(cacheLayer({ probe: true }))),
          Effect.ensuring(Effect.promise(async () => {
            await admin.config("SET", "requirepass", "")
            admin.disconnect()
          }))
        )
      }),
    30_000
  )

  it.live("probe: false turns off the start check and the idle probe", () =>
    Effect.gen(function*() {
      const { breaker } = yield* cache
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual([snapshot.totals.successes, snapshot.totals.failures], [0, 0])
    }).pipe(Effect.provide(Layer.fresh(cacheLayer({ probe: false })))))

  it.live("sanity: the real server holds what the cache wrote", () =>
    Effect.gen(function*() {
      const { setex } = yield* cache
      assert.isTrue(yield* eventually(setex("direct", 30, "v"), (ok) => ok))
      const direct = new Redis(server.endpoint)
      const value = yield* Effect.promise(() => direct.get("direct"))
      direct.disconnect()
      assert.strictEqual(value, "v")
    }).pipe(Effect.provide(cacheLayer())))

  it.live(
    "policies: a GET is hedged when the answer is late, a SETEX never; both registered under redis_client",
    () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "redis_client", delay: "20 millis" })
        yield* Effect.gen(function*() {
          const { get, setex } = yield* cache
          assert.isTrue(yield* eventually(setex("hedged", 30, "v"), (ok) => ok))
          const registry = yield* Registry.Registry
          const [entry] = yield* registry.policies
          assert.strictEqual(entry?.circuit, "redis_client")
          assert.strictEqual(entry?.policies.hedge, hedge)
          // Every chunk 150 ms late each way: far past the 20 ms hedging delay, well within the 2 s command
          // timeout (the counts, not the times, are checked).
          yield* Effect.promise(() => proxy.delay(150))
          assert.isTrue(yield* setex("hedged", 30, "w"))
          assert.deepInclude(hedge.stats(), { calls: 0, hedged: 0 })
          assert.deepStrictEqual(yield* get("hedged"), Option.some("w"))
          assert.deepInclude(hedge.stats(), { calls: 1, hedged: 1 })
        }).pipe(
          Effect.ensuring(Effect.promise(() => proxy.pass())),
          Effect.provide(
            Layer.fresh(cacheLayer({ policies: { hedge }, commandTimeout: "2 seconds" })).pipe(
              Layer.provideMerge(Registry.layer)
            )
          )
        )
      }),
    30_000
  )
})
