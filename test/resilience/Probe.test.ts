/**
 * Active recovery: an idle breaker runs its own probe as the half-open trial, so it closes (or
 * reopens) with no traffic at all. Time is driven by TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
import { Deferred, Effect, Exit, Fiber, Ref, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Boom, ok, trip } from "../support/breakers.ts"

/** A probe whose health the test switches, counting its runs and the largest overlap. */
const switchableProbe = Effect.gen(function*() {
  const healthy = yield* Ref.make(false)
  const runs = yield* Ref.make(0)
  let running = 0
  let maxOverlap = 0
  const probe = Effect.gen(function*() {
    running++
    maxOverlap = Math.max(maxOverlap, running)
    yield* Ref.update(runs, (n) => n + 1)
    yield* Effect.sleep("100 millis")
    running--
    if (!(yield* Ref.get(healthy))) return yield* Effect.fail(new Boom({ counted: true }))
  })
  return { healthy, runs, probe, maxOverlap: () => maxOverlap }
})

describe("CircuitBreaker: idle recovery with a probe", () => {
  it.effect("an idle breaker whose dependency came back closes by its probe, within recovery + grace + probe", () =>
    Effect.gen(function*() {
      const { healthy, probe, runs } = yield* switchableProbe
      const breaker = yield* CircuitBreaker.make({
        name: "kafka_producer",
        failMax: 2,
        recoveryTimeout: "30 seconds",
        probe,
        probeGrace: "1 second"
      })
      yield* trip(breaker, 2)
      yield* Ref.set(healthy, true)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.strictEqual(yield* Ref.get(runs), 0) // the grace leaves the permit to a real call first
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* Ref.get(runs), 1)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.totals.successes, 1) // the probe is a measured call
    }))

  it.effect("a failing probe reopens with the doubled period and probes again after it", () =>
    Effect.gen(function*() {
      const { healthy, probe, runs } = yield* switchableProbe
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        maxOpenDuration: "60 seconds",
        probe
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("11100 millis") // 10 s open + 1 s grace + the probe
      assert.strictEqual(yield* Ref.get(runs), 1)
      const reopened = yield* breaker.snapshot
      assert.strictEqual(reopened.state, "Open")
      assert.strictEqual(reopened.retryAfterMillis, 20_000)
      assert.strictEqual(reopened.totals.trips, 2)
      yield* Ref.set(healthy, true)
      yield* TestClock.adjust("19 seconds")
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust("2100 millis")
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* Ref.get(runs), 2)
    }))

  it.effect("a real call inside the grace takes the permit: the probe does not run", () =>
    Effect.gen(function*() {
      const { healthy, probe, runs } = yield* switchableProbe
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "10 seconds", probe })
      yield* Ref.set(healthy, true)
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* ok.pipe(withBreaker(breaker)), "ok")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* Ref.get(runs), 0)
    }))

  it.effect("successThreshold above 1: probes run one after the other, never overlapping, until it closes", () =>
    Effect.gen(function*() {
      const probes = yield* switchableProbe
      yield* Ref.set(probes.healthy, true)
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        halfOpen: { permits: 3, successThreshold: 3 },
        probe: probes.probe
      })
      yield* trip(breaker, 1)
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* Ref.get(probes.runs), 3)
      assert.strictEqual(probes.maxOverlap(), 1)
    }))

  it.effect("a probe that hangs is bounded by probeTimeout and counts as a failed trial", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        probe: Effect.andThen(Deferred.succeed(started, undefined), Effect.never),
        probeTimeout: "2 seconds"
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("11 seconds")
      yield* Deferred.await(started)
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* TestClock.adjust("2 seconds")
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Open")
      assert.match(snapshot.lastError ?? "", /timed out after 2s/)
    }))

  it.effect("the probe is classified like a call: an excluded failure decides nothing and the probe retries", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        isFailure: (e) => !(e instanceof Boom) || e.counted,
        probe: Effect.andThen(Ref.update(runs, (n) => n + 1), Effect.fail(new Boom({ counted: false })))
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("11 seconds")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.strictEqual(yield* Ref.get(runs), 2)
    }))

  it.effect("probing stops when the breaker's scope closes", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const scope = yield* Scope.make()
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        probe: Effect.andThen(Ref.update(runs, (n) => n + 1), Effect.fail(new Boom({ counted: true })))
      }).pipe(Scope.provide(scope))
      yield* trip(breaker, 1)
      yield* TestClock.adjust("11 seconds")
      assert.strictEqual(yield* Ref.get(runs), 1)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* Ref.get(runs), 1)
    }))

  it.effect("without a probe an idle breaker stays HALF_OPEN (the behaviour the probe fixes)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "10 seconds" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      const fiber = yield* Effect.forkChild(ok.pipe(withBreaker(breaker)))
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.effect("with a callTimeout the probe is bounded by it, like a call, not by probeTimeout", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        callTimeout: "20 seconds",
        probe: Effect.andThen(Deferred.succeed(started, undefined), Effect.never)
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("11 seconds")
      yield* Deferred.await(started)
      yield* TestClock.adjust("10 seconds") // the default probeTimeout would have ended it here
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* TestClock.adjust("10 seconds")
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Open")
      assert.match(snapshot.lastError ?? "", /timed out after 20s/)
    }))

  it.effect("the default probeTimeout is 10 seconds", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        probe: Effect.never
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("11 seconds") // open period and the default 1 s grace
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("a probe runs only while the trial is idle: not while a call holds the permit", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        probe: Ref.update(runs, (n) => n + 1)
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      const call = yield* Effect.forkChild(Effect.sleep("5 seconds").pipe(withBreaker(breaker)))
      yield* TestClock.adjust("4 seconds") // four graces pass while the call holds the only permit
      assert.strictEqual(yield* Ref.get(runs), 0)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(call)
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* Ref.get(runs), 0)
    }))
})
