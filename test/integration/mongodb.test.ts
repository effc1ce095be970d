/**
 * MongoStore against a real MongoDB-protocol server (FerretDB, SQLite backend, data kept across
 * restarts) with real faults: the server killed and restarted, the connection stalled and cut
 * through a fault proxy, the process paused. An idle breaker closes by itself (its `ping` probe)
 * once the server is back; an authentication failure counts.
 *
 * What is written is checked with a separate driver client connected straight to the server, not
 * through the store or the proxy.
 */
import { assert, describe, it } from "@effect/vitest"
import { MongoStore, MongoStoreError } from "@neural-hive/mongodb"
import { TransitionLog } from "@neural-hive/observability"
import { Bulkhead, type CircuitBreakerError, Hedge, Registry } from "@neural-hive/resilience"
import { Effect, Exit, Fiber, Layer, Logger, Option, Redacted, References } from "effect"
import { MongoClient } from "mongodb"
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { type ServerHandle, startMongo } from "../../tools/rig/servers.ts"
import { eventually } from "./eventually.ts"

const FAIL_MAX = 3
const RECOVERY_MILLIS = 2000
// Generous for a machine busy with other suites; the stall tests wait for these.
const SOCKET_TIMEOUT_MILLIS = 1000
const CONNECT_TIMEOUT_MILLIS = 1000
const DATABASE = "orchestrator"
const PROBE_GRACE_MILLIS = 100

let server: ServerHandle
let proxy: FaultProxy

beforeAll(async () => {
  server = await startMongo()
  proxy = await FaultProxy.start({ targetPort: server.port })
})

afterAll(async () => {
  await proxy?.close()
  await server?.stop()
})

const storeLayer = (options: Partial<MongoStore.Options> = {}) =>
  MongoStore.layer({
    url: `mongodb://${proxy.address}/`,
    database: DATABASE,
    serverSelectionTimeout: "1 second",
    connectTimeout: CONNECT_TIMEOUT_MILLIS,
    socketTimeout: SOCKET_TIMEOUT_MILLIS,
    operationTimeout: "4 seconds",
    // The fault scenarios recover through a real call; a long grace keeps the idle probe out of their way.
    breaker: {
      failMax: FAIL_MAX,
      recoveryTimeout: RECOVERY_MILLIS,
      maxOpenDuration: RECOVERY_MILLIS,
      probeGrace: "1 minute"
    },
    // The driver's server monitor checks every 0.5 s (its minimum; default 10 s): without the breaker
    // closing the client, "no connection attempt while open" would fail within the window below.
    clientOptions: { heartbeatFrequencyMS: 500 },
    ...options
  })

const store = MongoStore.MongoStore

interface Ticket {
  readonly _id: string
  readonly status: string
  readonly n?: number
}

/** Reads documents straight from the server (not through the proxy or the store). */
const readDirect = (collection: string) =>
  Effect.promise(async () => {
    const client = new MongoClient(server.endpoint, { serverSelectionTimeoutMS: 5000 })
    try {
      return await client.db(DATABASE).collection<Ticket>(collection).find({}).toArray()
    } finally {
      await client.close()
    }
  })

/** A test that kills the server brings it back even when it fails half-way, so the next tests have one. */
const reviveServer = Effect.promise(async () => {
  if (!server.running) await server.restart()
})

/**
 * Writes one ticket a call and records what the caller was told: acknowledged, rejected by the
 * breaker (must never reach the database), or failed (outcome unknown: the server may have applied
 * it before the connection broke).
 */
const makeWriter = (collection: string) => {
  const acknowledged: Array<string> = []
  const rejected: Array<string> = []
  const failed: Array<MongoStoreError> = []
  const durations: Array<number> = []
  let n = 0
  const write = Effect.gen(function*() {
    const { insertOne } = yield* store
    const _id = `ticket-${++n}`
    const started = Date.now()
    const exit = yield* Effect.exit(insertOne<Ticket>(collection, { _id, status: "created", n }))
    durations.push(Date.now() - started)
    if (Exit.isSuccess(exit)) {
      assert.strictEqual(exit.value.insertedId, _id)
      acknowledged.push(_id)
      return "acknowledged" as const
    }
    const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as
      | MongoStoreError
      | CircuitBreakerError
      | undefined
    assert.isDefined(error, `a typed failure, got ${String(exit.cause)}`)
    if (error!._tag === "CircuitBreakerError") {
      rejected.push(_id)
      return "rejected" as const
    }
    assert.instanceOf(error, MongoStoreError)
    failed.push(error as MongoStoreError)
    return "failed" as const
  })
  return { write, acknowledged, rejected, failed, durations }
}

/** The call fails with a MongoStoreError of this reason (and code) that the classifier ignores. */
const expectCallerError = <A>(
  effect: Effect.Effect<A, MongoStoreError | CircuitBreakerError>,
  reason: MongoStoreError["reason"],
  code?: number
) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(effect)
    assert.instanceOf(error, MongoStoreError, error.message)
    const typed = error as MongoStoreError
    assert.strictEqual(typed.reason, reason, typed.message)
    if (code !== undefined) assert.strictEqual(typed.code, code)
    assert.isFalse(MongoStore.isFailure(typed))
    return typed
  })

/** Every acknowledged write is in the database; no rejected write is. */
const assertNothingLost = (collection: string, writer: ReturnType<typeof makeWriter>) =>
  Effect.gen(function*() {
    const stored = new Set((yield* readDirect(collection)).map((d) => d._id))
    for (const id of writer.acknowledged) assert.isTrue(stored.has(id), `acknowledged ${id} is missing`)
    for (const id of writer.rejected) assert.isFalse(stored.has(id), `rejected ${id} was written`)
  })

/** Writes until the breaker opens; every failure meanwhile must count against MongoDB. */
const writeUntilOpen = (writer: ReturnType<typeof makeWriter>) =>
  Effect.gen(function*() {
    const { breaker } = yield* store
    let calls = 0
    while ((yield* breaker.state) !== "Open") {
      const outcome = yield* writer.write
      assert.notStrictEqual(outcome, "acknowledged", "a write succeeded against a dead server")
      calls++
      assert.isBelow(calls, 30, "the breaker never opened")
    }
    for (const error of writer.failed) assert.isTrue(MongoStore.isFailure(error), error.message)
    return calls
  })

/** While open: writes are rejected at once as CircuitBreakerError and nothing dials the server. */
const assertRejectsWithoutConnecting = (writer: ReturnType<typeof makeWriter>) =>
  Effect.gen(function*() {
    const { breaker, findOne, use } = yield* store
    yield* Effect.sleep("150 millis") // let the client close that the opening started
    const accepted = proxy.connectionsAccepted
    const before = writer.rejected.length
    const started = Date.now()
    for (let i = 0; i < 20; i++) assert.strictEqual(yield* writer.write, "rejected")
    const read = yield* Effect.flip(findOne("anything", {}))
    assert.strictEqual(read._tag, "CircuitBreakerError")
    const escape = yield* Effect.flip(use("ping", (db) => db.command({ ping: 1 })))
    assert.strictEqual(escape._tag === "CircuitBreakerError" && escape.circuit, "mongodb_client")
    assert.isBelow(Date.now() - started, 200, "rejections must not wait for the network")
    assert.strictEqual(writer.rejected.length - before, 20)
    yield* Effect.sleep("800 millis")
    assert.strictEqual(proxy.connectionsAccepted, accepted, "no connection attempt while open")
    assert.strictEqual(yield* breaker.state, "Open")
  })

/** After the open period one probe closes the breaker; writes are acknowledged again. */
const assertRecovers = (writer: ReturnType<typeof makeWriter>) =>
  Effect.gen(function*() {
    const { breaker } = yield* store
    yield* eventually(breaker.state, (s) => s === "HalfOpen", RECOVERY_MILLIS * 3)
    const before = (yield* breaker.snapshot).totals
    assert.strictEqual(yield* writer.write, "acknowledged", "the probe")
    assert.strictEqual(yield* breaker.state, "Closed")
    const after = (yield* breaker.snapshot).totals
    assert.strictEqual(after.successes - before.successes, 1)
    for (let i = 0; i < 5; i++) assert.strictEqual(yield* writer.write, "acknowledged")
  })

describe("MongoStore on a real MongoDB-protocol server (FerretDB)", () => {
  it.live(
    "insertOne, findOne, updateOne, find with a limit, deleteOne and use go through the breaker",
    () =>
      Effect.gen(function*() {
        const { breaker, deleteOne, find, findOne, insertOne, updateOne, use } = yield* store
        const collection = `tickets-${randomUUID()}`
        for (let n = 1; n <= 5; n++) {
          const inserted = yield* insertOne<Ticket>(collection, { _id: `t-${n}`, status: "created", n })
          assert.strictEqual(inserted.insertedId, `t-${n}`)
        }
        assert.deepStrictEqual(
          yield* findOne<Ticket>(collection, { _id: "t-1" }),
          Option.some({ _id: "t-1", status: "created", n: 1 })
        )
        assert.isTrue(Option.isNone(yield* findOne<Ticket>(collection, { _id: "t-404" })))

        const updated = yield* updateOne<Ticket>(collection, { _id: "t-2" }, { $set: { status: "running" } })
        assert.strictEqual(updated.matchedCount, 1)
        assert.strictEqual(updated.modifiedCount, 1)
        assert.strictEqual(Option.getOrThrow(yield* findOne<Ticket>(collection, { _id: "t-2" })).status, "running")

        const page = yield* find<Ticket>(collection, { n: { $gte: 2 } }, { limit: 2, sort: { n: 1 } })
        assert.deepStrictEqual(page.map((t) => t._id), ["t-2", "t-3"])

        const deleted = yield* deleteOne<Ticket>(collection, { _id: "t-5" })
        assert.strictEqual(deleted.deletedCount, 1)
        assert.strictEqual(yield* use("countDocuments", (db) => db.collection(collection).countDocuments()), 4)
        assert.deepStrictEqual((yield* readDirect(collection)).map((d) => d._id).toSorted(), [
          "t-1",
          "t-2",
          "t-3",
          "t-4"
        ])

        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.name, "mongodb_client")
        assert.strictEqual(snapshot.failureMode, "fail-fast")
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.totals.failures, 0)
        assert.strictEqual(snapshot.totals.successes, 12 + 1, "12 calls and the start check's ping")
      }).pipe(Effect.provide(storeLayer())),
    60_000
  )

  it.live(
    "caller errors (duplicate key, bad query, refused command) pass through and never move the breaker",
    () =>
      Effect.gen(function*() {
        const { breaker, find, findOne, insertOne, updateOne, use } = yield* store
        const collection = `tickets-${randomUUID()}`
        yield* insertOne<Ticket>(collection, { _id: "t-1", status: "created" })

        for (let i = 0; i < FAIL_MAX * 2; i++) {
          const duplicate = yield* expectCallerError(
            insertOne<Ticket>(collection, { _id: "t-1", status: "again" }),
            "DuplicateKey",
            11000
          )
          assert.strictEqual(duplicate.collection, collection)
          assert.strictEqual(duplicate.operation, "insertOne")
        }
        yield* expectCallerError(findOne(collection, { $foo: 1 } as never), "BadQuery", 2)
        yield* expectCallerError(
          updateOne<Ticket>(collection, { _id: "t-1" }, { $foo: { a: 1 } } as never),
          "BadQuery",
          9
        )
        // FerretDB does not implement collection validators: the server refuses the command (NotImplemented).
        yield* expectCallerError(
          use(
            "createCollection",
            (db) => db.createCollection(`v-${randomUUID()}`, { validator: { a: { $exists: 1 } } })
          ),
          "Reply",
          238
        )
        // Refused before the breaker: no limit is no bounded read.
        yield* expectCallerError(find(collection, {}, { limit: 0 }), "BadQuery")

        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.totals.failures, 0)
        assert.strictEqual(snapshot.totals.ignored, FAIL_MAX * 2 + 3)
        assert.deepStrictEqual(yield* readDirect(collection), [{ _id: "t-1", status: "created" }])
      }).pipe(Effect.provide(storeLayer())),
    60_000
  )

  it.live(
    "server killed: every acknowledged write survives, writes rejected while open never land, one probe closes it",
    () =>
      Effect.gen(function*() {
        const collection = `tickets-${randomUUID()}`
        const writer = makeWriter(collection)
        for (let i = 0; i < 5; i++) assert.strictEqual(yield* writer.write, "acknowledged")

        yield* Effect.promise(() => server.kill())
        const calls = yield* writeUntilOpen(writer)
        assert.strictEqual(calls, FAIL_MAX)
        assert.deepStrictEqual(
          [...new Set(writer.failed.map((e) => e.reason))].filter((r) => r !== "Network" && r !== "ServerSelection"),
          []
        )
        yield* assertRejectsWithoutConnecting(writer)

        yield* Effect.promise(() => server.restart())
        yield* assertRecovers(writer)

        assert.strictEqual(writer.acknowledged.length, 11)
        assert.isAtLeast(writer.rejected.length, 20)
        yield* assertNothingLost(collection, writer)
        // Read back through the store as well, after the outage.
        const { find } = yield* store
        const all = yield* find<Ticket>(collection, {}, { limit: 1000 })
        for (const id of writer.acknowledged) assert.isTrue(all.some((d) => d._id === id))
      }).pipe(Effect.ensuring(reviveServer), Effect.provide(storeLayer())),
    90_000
  )

  it.live(
    "connection stalled: socket timeouts count and open the breaker; healed, nothing acknowledged is lost",
    () =>
      Effect.gen(function*() {
        const { breaker } = yield* store
        const collection = `tickets-${randomUUID()}`
        const writer = makeWriter(collection)
        for (let i = 0; i < 3; i++) assert.strictEqual(yield* writer.write, "acknowledged")

        yield* Effect.promise(() => proxy.stall())
        const calls = yield* Effect.ensuring(writeUntilOpen(writer), Effect.promise(() => proxy.pass()))
        assert.strictEqual(calls, FAIL_MAX)
        // The first write times out on its pooled connection; a later one may instead find the driver's
        // monitor (also stalled) has not vouched for the server in time: a server-selection timeout.
        assert.strictEqual(writer.failed[0]?.reason, "Timeout", writer.failed[0]?.message)
        for (const error of writer.failed) assert.include(["Timeout", "ServerSelection"], error.reason, error.message)
        // The first write waited socketTimeout on its pooled connection; the next ones connectTimeout on a new
        // connection's handshake (no overload retries): bounded by the driver's settings, never its defaults.
        const waited = writer.durations.slice(-FAIL_MAX)
        assert.isAtLeast(waited[0]!, SOCKET_TIMEOUT_MILLIS - 20)
        for (const millis of waited) assert.isBelow(millis, CONNECT_TIMEOUT_MILLIS + 700)
        assert.match((yield* breaker.snapshot).lastError ?? "", /timed out/)

        yield* assertRejectsWithoutConnecting(writer)
        yield* assertRecovers(writer)
        yield* assertNothingLost(collection, writer)
      }).pipe(Effect.provide(storeLayer())),
    60_000
  )

  it.live(
    "server paused (SIGSTOP): timeouts open the breaker; resumed, one probe closes it",
    () =>
      Effect.gen(function*() {
        const collection = `tickets-${randomUUID()}`
        const writer = makeWriter(collection)
        assert.strictEqual(yield* writer.write, "acknowledged")
        server.pause()
        const calls = yield* Effect.ensuring(writeUntilOpen(writer), Effect.sync(() => server.resume()))
        assert.strictEqual(calls, FAIL_MAX)
        assert.strictEqual(writer.failed[0]?.reason, "Timeout", writer.failed[0]?.message)
        for (const error of writer.failed) assert.include(["Timeout", "ServerSelection"], error.reason, error.message)
        yield* assertRecovers(writer)
        yield* assertNothingLost(collection, writer)
      }).pipe(Effect.provide(storeLayer())),
    60_000
  )

  it.live("a connection cut mid-write counts (failMax 1 here) and opens the breaker", () =>
    Effect.gen(function*() {
      const { breaker } = yield* store
      const collection = `tickets-${randomUUID()}`
      const writer = makeWriter(collection)
      assert.strictEqual(yield* writer.write, "acknowledged") // a pooled connection to cut
      yield* Effect.promise(() => proxy.delay(300))
      // Cut while the insert is in flight: the proxy holds every chunk for 300 ms.
      const fiber = yield* Effect.forkChild(writer.write)
      yield* Effect.sleep("100 millis")
      proxy.cut()
      assert.strictEqual(yield* Fiber.join(fiber), "failed")
      assert.strictEqual(writer.failed[0]?.reason, "Network", writer.failed[0]?.message)
      assert.match(writer.failed[0]?.message ?? "", /ECONNRESET|closed/)
      assert.strictEqual(yield* breaker.state, "Open")
      assert.strictEqual((yield* breaker.snapshot).totals.failures, 1)
      yield* Effect.promise(() => proxy.pass())
      yield* assertRecovers(writer)
      yield* assertNothingLost(collection, writer)
    }).pipe(
      Effect.ensuring(Effect.promise(() => proxy.pass())),
      Effect.provide(
        storeLayer({
          breaker: {
            failMax: 1,
            recoveryTimeout: RECOVERY_MILLIS,
            maxOpenDuration: RECOVERY_MILLIS,
            probeGrace: "1 minute"
          }
        })
      )
    ), 60_000)

  it.live("starts while MongoDB is unreachable, then works once it is back", () =>
    Effect.gen(function*() {
      const { breaker, insertOne } = yield* store
      // The start check already counted the unreachable server: the service does not look healthy.
      const started = yield* breaker.snapshot
      assert.strictEqual(started.totals.failures, 1)
      assert.match(started.lastError ?? "", /MongoStoreError/)
      const collection = `tickets-${randomUUID()}`
      const error = yield* Effect.flip(insertOne<Ticket>(collection, { _id: "t-1", status: "created" }))
      assert.strictEqual(error._tag, "MongoStoreError")
      assert.isTrue(MongoStore.isFailure(error), error.message)
      assert.strictEqual((yield* breaker.snapshot).totals.failures, 2)
      yield* Effect.promise(() => proxy.pass())
      yield* eventually(insertOne<Ticket>(collection, { _id: "t-2", status: "created" }), () => true)
      assert.deepStrictEqual((yield* readDirect(collection)).map((d) => d._id), ["t-2"])
      assert.strictEqual(yield* breaker.state, "Closed")
    }).pipe(
      Effect.ensuring(Effect.promise(() => proxy.pass())),
      // The layer is built while the proxy refuses every connection.
      Effect.provide(Layer.unwrap(Effect.as(Effect.promise(() => proxy.refuse()), Layer.fresh(storeLayer()))))
    ), 60_000)

  it.live(
    "idle recovery: server killed, breaker open, server back, no call at all: the ping probe closes it",
    () =>
      Effect.gen(function*() {
        const { breaker } = yield* store
        const writer = makeWriter(`tickets-${randomUUID()}`)
        assert.strictEqual(yield* writer.write, "acknowledged")
        yield* Effect.promise(() => server.kill())
        yield* writeUntilOpen(writer)
        yield* Effect.promise(() => server.restart())
        // From here on nothing calls the store: only the breaker's own probe can close it.
        const back = performance.now()
        const before = (yield* breaker.snapshot).totals
        const bound = RECOVERY_MILLIS + PROBE_GRACE_MILLIS + CONNECT_TIMEOUT_MILLIS + 1000
        yield* eventually(breaker.state, (state) => state === "Closed", bound + 3_000)
        const closedAfter = performance.now() - back
        const after = (yield* breaker.snapshot).totals
        assert.isBelow(closedAfter, bound, `closed ${Math.round(closedAfter)} ms after the server was back`)
        assert.strictEqual(after.rejected, before.rejected, "no call was made")
        assert.isAtLeast(after.successes - before.successes, 1, "the probe succeeded")
        assert.strictEqual(yield* writer.write, "acknowledged")
      }).pipe(
        Effect.ensuring(reviveServer),
        Effect.provide(
          storeLayer({
            breaker: {
              failMax: FAIL_MAX,
              recoveryTimeout: RECOVERY_MILLIS,
              maxOpenDuration: RECOVERY_MILLIS,
              probeGrace: PROBE_GRACE_MILLIS
            }
          })
        )
      ),
    90_000
  )

  it.live("an authentication failure is not the caller's: it counts, at start and on every call", () =>
    Effect.gen(function*() {
      const { breaker, insertOne } = yield* store
      // FerretDB refuses these credentials (SCRAM-SHA-1 is not supported): the start check counted it.
      assert.strictEqual((yield* breaker.snapshot).totals.failures, 1)
      for (let i = 1; i < FAIL_MAX; i++) {
        const error = yield* Effect.flip(insertOne("tickets", { _id: randomUUID() }))
        assert.strictEqual(error._tag, "MongoStoreError")
        assert.isTrue(MongoStore.isFailure(error), error.message)
        assert.match(error.message, /authentication/i)
      }
      assert.strictEqual(yield* breaker.state, "Open")
    }).pipe(Effect.provide(Layer.fresh(storeLayer({ url: `mongodb://nh-user:s3cret@${proxy.address}/` })))))

  it.live("probe: false turns off the start check", () =>
    Effect.gen(function*() {
      const { breaker } = yield* store
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual([snapshot.totals.successes, snapshot.totals.failures], [0, 0])
    }).pipe(Effect.provide(Layer.fresh(storeLayer({ probe: false })))))

  it.live("a password in the URL never appears in errors, logs or snapshots", () => {
    const url = `mongodb://nh-user:s3cret@${proxy.address}/?authSource=admin`
    const logs: Array<string> = []
    const capture = Logger.make((options) => {
      const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
      logs.push(JSON.stringify({ message: options.message, cause: String(options.cause), annotations }))
    })
    return Effect.gen(function*() {
      const { breaker, insertOne, use } = yield* store
      // The start check already failed once: FerretDB refuses the URL's credentials (SCRAM-SHA-1), an
      // authentication failure, which counts.
      const started = yield* breaker.snapshot
      assert.strictEqual(started.totals.failures, 1)
      assert.match(started.lastError ?? "", /authentication/i)
      yield* Effect.promise(() => proxy.refuse())
      proxy.cut()
      const errors: Array<MongoStoreError | CircuitBreakerError> = []
      for (let i = 0; i < FAIL_MAX - 2; i++) {
        errors.push(yield* Effect.flip(insertOne("tickets", { _id: randomUUID() })))
      }
      // The driver keeps the URL out of its messages; code given to `use` may not. This failure trips the
      // breaker, so its message is also the snapshot's last error and the transition log's.
      const leaky = Object.assign(new Error(`connect ECONNREFUSED ${url}`), { code: "ECONNREFUSED" })
      errors.push(yield* Effect.flip(use("connect", () => Promise.reject(leaky))))
      assert.strictEqual(yield* breaker.state, "Open")
      errors.push(yield* Effect.flip(insertOne("tickets", { _id: randomUUID() })))
      const outcomes = errors.map((e) => e._tag === "MongoStoreError" ? e.reason : e._tag)
      for (const outcome of outcomes.slice(0, FAIL_MAX - 2)) assert.include(["Network", "ServerSelection"], outcome)
      assert.deepStrictEqual(outcomes.slice(FAIL_MAX - 2), ["Network", "CircuitBreakerError"])
      // The transition log line is written by a forked fiber: waited for (bounded), not slept on.
      yield* eventually(Effect.sync(() => logs.some((line) => line.includes("circuit_breaker_open"))), Boolean)
      const registry = yield* Registry.Registry
      const snapshot = yield* breaker.snapshot
      assert.include(snapshot.lastError ?? "", "nh-user:***@", "the message was kept, only the password removed")
      const exposed = [
        ...errors.map((e) => JSON.stringify(e)),
        ...errors.map((e) => e.message),
        ...errors.map((e) => String(e)),
        JSON.stringify(started),
        JSON.stringify(snapshot),
        JSON.stringify(yield* registry.snapshots),
        ...logs
      ]
      assert.isTrue(logs.some((line) => line.includes("circuit_breaker_open")), "the opening was logged")
      assert.isTrue(logs.some((line) => line.includes("nh-user:***@")), "the log carries the redacted error")
      for (const text of exposed) assert.notInclude(text, "s3cret")
    }).pipe(
      Effect.ensuring(Effect.promise(() => proxy.pass())),
      Effect.provide(
        Layer.fresh(storeLayer({ url: Redacted.make(url) })).pipe(
          Layer.provideMerge(TransitionLog.layer()),
          Layer.provideMerge(Registry.layer),
          Layer.provideMerge(Logger.layer([capture])),
          Layer.provideMerge(Layer.succeed(References.MinimumLogLevel, "Debug"))
        )
      )
    )
  }, 60_000)

  it.live(
    "policies: reads are hedged when the answer is late, writes never; every call takes a slot of the adaptive limit",
    () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "mongodb_client", delay: "20 millis" })
        const bulkhead = yield* Bulkhead.adaptive({ name: "mongodb_client", initialLimit: 10, maxLimit: 50 })
        yield* Effect.gen(function*() {
          const { findOne, insertOne } = yield* store
          const collection = `policies_${randomUUID().slice(0, 8)}`
          yield* eventually(Effect.exit(findOne(collection, {})), Exit.isSuccess)
          const [entry] = yield* (yield* Registry.Registry).policies
          assert.strictEqual(entry?.circuit, "mongodb_client")
          const hedgedBefore = hedge.stats().hedged
          // Every chunk 150 ms late each way: far past the 20 ms hedging delay, well within the call's deadline
          // (the counts, not the times, are checked).
          yield* Effect.promise(() => proxy.delay(150))
          yield* insertOne<Ticket>(collection, { _id: "t-1", status: "queued" })
          assert.strictEqual(hedge.stats().hedged, hedgedBefore)
          const found = yield* findOne<Ticket>(collection, { _id: "t-1" })
          assert.strictEqual(Option.getOrThrow(found).status, "queued")
          assert.strictEqual(hedge.stats().hedged, hedgedBefore + 1)
          assert.strictEqual(yield* readDirect(collection).pipe(Effect.map((docs) => docs.length)), 1)
          assert.deepInclude(bulkhead.stats(), { inFlight: 0, rejected: 0 })
          assert.isAtLeast(bulkhead.stats().admitted, 3)
        }).pipe(
          Effect.ensuring(Effect.promise(() => proxy.pass())),
          Effect.provide(
            Layer.fresh(storeLayer({ policies: { hedge, bulkhead } })).pipe(Layer.provideMerge(Registry.layer))
          )
        )
      }),
    30_000
  )
})
