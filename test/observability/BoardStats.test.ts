/**
 * The board's history and its `stats` and `timeline`, on the TestClock: the 5-second buckets of calls per
 * outcome, calls/s, error %, the latency percentiles from the fixed histogram, buckets aging out of the
 * five-minute ring, the timeline's causes (trip, probe, admin), and the backlog and fleet sources.
 */
import { assert, describe, it } from "@effect/vitest"
import { Board } from "@neural-hive/observability"
import { Bulkhead, CircuitBreaker, Hedge, Registry, RetryBudget, withBreaker } from "@neural-hive/resilience"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type * as BoardStatsModule from "../../packages/observability/src/internal/boardStats.js"

// Imported by path, typed by its declarations (`.js`): tsc refuses a `.ts` import across its projects (TS2878).
const root = fileURLToPath(new URL("../..", import.meta.url))
const { BUCKET_MILLIS, BUCKETS, CircuitHistory, quantile }: typeof BoardStatsModule = await import(
  path.join(root, "packages/observability/src/internal/boardStats.ts")
)

const T0 = 1_000 * BUCKET_MILLIS

describe("board history (CircuitHistory)", () => {
  it("counts outcomes per bucket, calls/s and error % over the last 10 s, latency percentiles over the last minute", () => {
    const h = new CircuitHistory()
    // Bucket 1: 8 successes of 3 ms, 2 failures of 40 ms; bucket 2 (the current one, 2 s in): 1 slow call, 3 rejections.
    for (let i = 0; i < 8; i++) h.record("success", 3, T0 + i)
    h.record("failure", 40, T0 + 100)
    h.record("failure", 40, T0 + 200)
    h.record("slow", 900, T0 + BUCKET_MILLIS)
    for (let i = 0; i < 3; i++) h.record("rejected", 0, T0 + BUCKET_MILLIS + i)
    h.record("ignored", Number.NaN, T0 + BUCKET_MILLIS)
    const s = h.summary(T0 + BUCKET_MILLIS + 2_000)!
    assert.strictEqual(s.rate.length, BUCKETS)
    // 10 calls in 5 s; 5 calls in the 2 s so far.
    assert.deepStrictEqual(s.rate.slice(-2), [2, 2.5])
    assert.deepStrictEqual(s.errors.slice(-2), [20, 100])
    assert.isNull(s.errors[0]!)
    assert.deepStrictEqual(s.outcomes, { success: 8, failure: 2, slow: 1, ignored: 1, rejected: 3 })
    // 15 calls over 7 s; errors: 3 of the 11 that ran.
    assert.strictEqual(s.callsPerSecond, Math.round((15 / 7) * 100) / 100)
    assert.strictEqual(s.errorPercent, Math.round((300 / 11) * 100) / 100)
    // 11 timed calls (rejections and the untimed call are not): p50 in (2, 5] ms, p99 in (500, 1000] ms.
    assert.isAbove(s.p50!, 2)
    assert.isAtMost(s.p50!, 5)
    assert.isAbove(s.p99!, 500)
    assert.isAtMost(s.p99!, 1000)
  })

  it("forgets a bucket once the ring has gone round, and has nothing to say about an idle circuit", () => {
    const h = new CircuitHistory()
    assert.isUndefined(h.summary(T0))
    h.record("failure", 5, T0)
    assert.strictEqual(h.summary(T0 + (BUCKETS - 1) * BUCKET_MILLIS)!.outcomes.failure, 1)
    assert.isUndefined(h.summary(T0 + BUCKETS * BUCKET_MILLIS))
    // The row is reused by a later bucket: zeroed first, not added to.
    h.record("success", 5, T0 + BUCKETS * BUCKET_MILLIS)
    assert.deepStrictEqual(h.summary(T0 + BUCKETS * BUCKET_MILLIS)!.outcomes, {
      success: 1,
      failure: 0,
      slow: 0,
      ignored: 0,
      rejected: 0
    })
  })

  it("quantile interpolates inside a bucket and caps the open-ended one at the last bound", () => {
    const counts = new Float64Array(14)
    assert.isNull(quantile(counts, 0.5))
    counts[3] = 10 // (5, 10] ms
    assert.strictEqual(quantile(counts, 0.5), 7.5)
    counts[13] = 1000 // over 10 s
    assert.strictEqual(quantile(counts, 0.99), 10_000)
  })
})

describe("Board stats and timeline", () => {
  it.effect("stats follow the calls on the Clock; the timeline names a trip, a probe, and an admin action", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 2, recoveryTimeout: 1000 })
      const idle = yield* CircuitBreaker.make({ name: "redis_client" })
      let pending = 3
      const board = yield* Board.make({
        service: "test",
        backlog: Effect.sync(() => ({ pending, oldestPendingMillis: 1500 })),
        fleet: Effect.fail("redis down")
      })
      yield* TestClock.adjust(T0)
      for (let i = 0; i < 4; i++) yield* Effect.succeed(1).pipe(withBreaker(breaker))
      for (let i = 0; i < 2; i++) yield* Effect.ignore(Effect.fail("boom").pipe(withBreaker(breaker)))
      yield* Effect.ignore(Effect.succeed(1).pipe(withBreaker(breaker)))
      let stats = yield* board.stats
      assert.deepStrictEqual(Object.keys(stats.circuits), ["kafka_producer"])
      const s = stats.circuits["kafka_producer"]!
      assert.deepStrictEqual(s.outcomes, { success: 4, failure: 2, slow: 0, ignored: 0, rejected: 1 })
      assert.strictEqual(s.errorPercent, Math.round((200 / 6) * 100) / 100)
      assert.deepStrictEqual(stats.backlog, { pending: 3, oldestPendingMillis: 1500 })
      // A source that fails is shown as unavailable, not as an empty fleet.
      assert.isNull(stats.fleet)
      assert.strictEqual(stats.bucketMillis, BUCKET_MILLIS)

      // The bucket so far: 7 calls in its first second (at least a second is counted).
      assert.deepStrictEqual(s.rate.slice(-2), [0, 7])
      // The sparkline moves: five seconds later the calls sit one point further left, over the whole bucket.
      pending = 7
      yield* TestClock.adjust(BUCKET_MILLIS)
      stats = yield* board.stats
      assert.deepStrictEqual(stats.circuits["kafka_producer"]!.rate.slice(-2), [1.4, 0])
      assert.strictEqual(stats.backlog?.pending, 7)

      // The probe fails, then succeeds; an operator forces the idle breaker open and resets it.
      yield* TestClock.adjust(1000)
      yield* Effect.ignore(Effect.fail("still down").pipe(withBreaker(breaker)))
      yield* TestClock.adjust(2000)
      yield* Effect.succeed(1).pipe(withBreaker(breaker))
      yield* idle.forceOpen
      yield* idle.reset
      const timeline = yield* board.timeline
      assert.deepStrictEqual(timeline.map((t) => [t.circuit, t.to, t.reason, t.by]), [
        ["kafka_producer", "open", "tripped", "trip"],
        ["kafka_producer", "half_open", "open_elapsed", "probe"],
        ["kafka_producer", "open", "probe_failed", "probe"],
        ["kafka_producer", "half_open", "open_elapsed", "probe"],
        ["kafka_producer", "closed", "probes_succeeded", "probe"],
        ["redis_client", "open", "forced_open", "admin"],
        ["redis_client", "closed", "reset", "admin"]
      ])
      const cards = yield* board.cards
      assert.strictEqual(cards.find((c) => c.name === "redis_client")!.inStateMillis, 0)
    }).pipe(Effect.provide(Registry.layer), Effect.scoped))

  it.effect("the event stream starts with the snapshot, the timeline and the stats, then a stats event a second", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const board = yield* Board.make({ service: "test" })
      yield* Effect.succeed(1).pipe(withBreaker(breaker))
      const request = { method: "GET", url: "/events" } as never
      const response = yield* board.handle(request)!
      const body = (response as unknown as { readonly body: { readonly stream: Stream.Stream<Uint8Array> } }).body
      const fiber = yield* body.stream.pipe(
        Stream.decodeText,
        Stream.filter((chunk) => !chunk.startsWith(": keep-alive")),
        Stream.take(2),
        Stream.runCollect,
        Effect.forkChild
      )
      // Let the stream subscribe before the clock moves.
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      yield* TestClock.adjust(1000)
      const text = (yield* Fiber.join(fiber)).join("")
      const names = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1])
      assert.deepStrictEqual(names, ["snapshot", "timeline", "stats", "stats"])
      assert.include(text, `"kafka_producer":{"rate":[`)
    }).pipe(Effect.provide(Registry.layer), Effect.scoped))

  it.effect("stats show each circuit's policies, as its GuardedClient registered them; none: no policies field", () =>
    Effect.gen(function*() {
      const board = yield* Board.make({ service: "test" })
      assert.isUndefined((yield* board.stats).policies)
      const bulkhead = yield* Bulkhead.adaptive({ name: "temporal_client", initialLimit: 4, minLimit: 2, maxLimit: 8 })
      const budget = yield* RetryBudget.make({ name: "kafka_producer", ratio: 0.1, minPerSecond: 1 })
      const hedge = yield* Hedge.make({ name: "redis_client", delay: "50 millis" })
      const registry = yield* Registry.Registry
      yield* registry.registerPolicies("temporal_client", { bulkhead })
      yield* registry.registerPolicies("kafka_producer", { retryBudget: budget })
      yield* registry.registerPolicies("redis_client", { hedge })
      // One call in flight, one retry granted, one hedge sent and won.
      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.forkChild(bulkhead.run(Deferred.await(gate)))
      yield* Effect.yieldNow
      yield* budget.recordCall
      assert.isTrue(yield* budget.tryRetry)
      let n = 0
      const read = Effect.suspend(() => Effect.sleep(n++ === 0 ? "200 millis" : "10 millis"))
      const hedged = yield* Effect.forkChild(hedge.run(read))
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("10 millis")
      yield* Fiber.join(hedged)
      const policies = (yield* board.stats).policies!
      assert.deepStrictEqual(policies["temporal_client"], {
        bulkhead: { limit: 4, minLimit: 2, maxLimit: 8, inFlight: 1, queued: 0, admitted: 1, rejected: 0 }
      })
      assert.deepStrictEqual(policies["kafka_producer"], { retry: { available: 9, retries: 1, denied: 0 } })
      assert.deepStrictEqual(policies["redis_client"], { hedge: { sent: 1, won: 1, denied: 0, delayMillis: 50 } })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(held)
    }).pipe(Effect.provide(Registry.layer), Effect.scoped))
})
