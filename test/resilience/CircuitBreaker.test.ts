import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerError, failOpen, Registry, withBreaker } from "@neural-hive/resilience"
import { Context, Duration, Effect, Exit, Fiber, Option, Ref, Schedule, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Boom, counting, fail, ok, state, trip } from "../support/breakers.ts"

describe("CircuitBreaker: consecutive policy (the seed's failMax)", () => {
  it.effect("opens after failMax consecutive counted failures, not before", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 3, recoveryTimeout: "30 seconds" })
      yield* trip(breaker, 2)
      assert.strictEqual(yield* state(breaker), "Closed")
      yield* trip(breaker, 1)
      assert.strictEqual(yield* state(breaker), "Open")
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.totals.trips, 1)
      assert.strictEqual(snapshot.totals.failures, 3)
      assert.strictEqual(snapshot.lastError, "Boom")
    }))

  it.effect("a success in between restarts the count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3 })
      yield* trip(breaker, 2)
      yield* ok.pipe(withBreaker(breaker))
      yield* trip(breaker, 2)
      assert.strictEqual(yield* state(breaker), "Closed")
      assert.strictEqual((yield* breaker.snapshot).failures, 2)
    }))

  it.effect("an open breaker rejects without running the call, with circuit, state and retryAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "temporal_client", failMax: 1, recoveryTimeout: "30 seconds" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      const runs = yield* Ref.make(0)
      const error = yield* Effect.flip(counting(runs, ok).pipe(withBreaker(breaker)))
      assert.instanceOf(error, CircuitBreakerError)
      assert.strictEqual(error._tag, "CircuitBreakerError")
      if (error._tag !== "CircuitBreakerError") return
      assert.strictEqual(error.circuit, "temporal_client")
      assert.strictEqual(error.state, "Open")
      assert.strictEqual(error.reason, "Open")
      assert.strictEqual(Duration.toMillis(error.retryAfter), 20_000)
      assert.match(error.message, /temporal_client/)
      assert.strictEqual(yield* Ref.get(runs), 0)
      assert.strictEqual((yield* breaker.snapshot).totals.rejected, 1)
    }))
})

describe("CircuitBreaker: the open period ends by the Clock", () => {
  it.effect("moves to HALF_OPEN at recoveryTimeout with no call, and the transition is published then", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "30 seconds" })
      const seen: Array<CircuitBreaker.Transition> = []
      yield* breaker.listen({ onTransition: (t) => seen.push(t) })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("29999 millis")
      assert.deepStrictEqual(seen.map((t) => t.to), ["Open"])
      yield* TestClock.adjust("1 millis")
      // The timer fiber ran during adjust: the transition is already recorded, no call or read needed.
      assert.deepStrictEqual(seen.map((t) => [t.from, t.to, t.reason]), [
        ["Closed", "Open", "Tripped"],
        ["Open", "HalfOpen", "OpenElapsed"]
      ])
      assert.strictEqual(seen[1]!.at - seen[0]!.at, 30_000)
      assert.strictEqual(seen[0]!.retryAfterMillis, 30_000)
    }))

  it.effect("transitions is a Stream of the same events", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "1 second" })
      const collected = yield* breaker.transitions.pipe(Stream.take(3), Stream.runCollect, Effect.forkChild)
      yield* Effect.yieldNow
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      yield* ok.pipe(withBreaker(breaker))
      const transitions = yield* Fiber.join(collected)
      assert.deepStrictEqual(Array.from(transitions, (t) => t.to), ["Open", "HalfOpen", "Closed"])
    }))

  it.effect("seed 30/60: probed after 30 s, then every 60 s while probes fail; closing resets the growth", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "kafka_producer",
        failMax: 1,
        recoveryTimeout: "30 seconds",
        maxOpenDuration: "60 seconds"
      })
      const opens: Array<number> = []
      yield* breaker.listen({ onTransition: (t) => t.to === "Open" && opens.push(t.retryAfterMillis) })
      yield* trip(breaker, 1)
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust(opens[opens.length - 1]!)
        assert.strictEqual(yield* state(breaker), "HalfOpen")
        yield* trip(breaker, 1)
      }
      assert.deepStrictEqual(opens, [30_000, 60_000, 60_000, 60_000])
      yield* TestClock.adjust("60 seconds")
      yield* ok.pipe(withBreaker(breaker))
      assert.strictEqual(yield* state(breaker), "Closed")
      yield* trip(breaker, 1)
      assert.deepStrictEqual(opens.slice(4), [30_000])
    }))

  it.effect("doubles from recoveryTimeout up to maxOpenDuration", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "1 second",
        maxOpenDuration: "5 seconds"
      })
      const opens: Array<number> = []
      yield* breaker.listen({ onTransition: (t) => t.to === "Open" && opens.push(t.retryAfterMillis) })
      yield* trip(breaker, 1)
      for (let i = 0; i < 4; i++) {
        yield* TestClock.adjust(opens[opens.length - 1]!)
        yield* trip(breaker, 1)
      }
      assert.deepStrictEqual(opens, [1000, 2000, 4000, 5000, 5000])
    }))

  it.effect("a Schedule replaces the doubling", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        openDuration: Schedule.fibonacci("1 second").pipe(Schedule.upTo({ times: 4 }))
      })
      const opens: Array<number> = []
      yield* breaker.listen({ onTransition: (t) => t.to === "Open" && opens.push(t.retryAfterMillis) })
      yield* trip(breaker, 1)
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust(opens[opens.length - 1]!)
        yield* trip(breaker, 1)
      }
      // fibonacci 1, 1, 2, 3 then the schedule ends and its last delay repeats.
      assert.deepStrictEqual(opens, [1000, 1000, 2000, 3000, 3000, 3000])
    }))
})

describe("CircuitBreaker: HALF_OPEN", () => {
  it.effect("one probe by default; other callers are rejected with reason HalfOpen while it runs", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "1 second" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.sleep("100 millis").pipe(Effect.as("probe"), withBreaker(breaker), Effect.forkChild)
      yield* Effect.yieldNow
      const rejected = yield* Effect.flip(ok.pipe(withBreaker(breaker)))
      assert.strictEqual(rejected._tag === "CircuitBreakerError" && rejected.reason, "HalfOpen")
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(probe), "probe")
      assert.strictEqual(yield* state(breaker), "Closed")
    }))

  it.effect("permits and successThreshold: closes after that many successful probes", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "1 second",
        halfOpen: { permits: 3, successThreshold: 2 }
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      yield* ok.pipe(withBreaker(breaker))
      assert.strictEqual(yield* state(breaker), "HalfOpen")
      yield* ok.pipe(withBreaker(breaker))
      assert.strictEqual(yield* state(breaker), "Closed")
    }))

  it.effect("a counted probe failure reopens at once, even after successes", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "1 second",
        halfOpen: { permits: 3, successThreshold: 3 }
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      yield* ok.pipe(withBreaker(breaker))
      yield* ok.pipe(withBreaker(breaker))
      yield* trip(breaker, 1)
      assert.strictEqual(yield* state(breaker), "Open")
      assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 2000)
    }))

  it.effect("an interrupted probe frees its permit and decides nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "1 second" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.never.pipe(withBreaker(breaker), Effect.forkChild)
      yield* Effect.yieldNow
      assert.isTrue(Exit.isFailure(yield* Effect.exit(ok.pipe(withBreaker(breaker)))))
      yield* Fiber.interrupt(probe)
      assert.strictEqual(yield* state(breaker), "HalfOpen")
      assert.strictEqual(yield* ok.pipe(withBreaker(breaker)), "ok")
      assert.strictEqual(yield* state(breaker), "Closed")
    }))

  it.effect("an ignored (not counted) probe failure frees its permit too", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "1 second",
        isFailure: (e) => e instanceof Boom && e.counted
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      yield* Effect.flip(fail(false).pipe(withBreaker(breaker)))
      assert.strictEqual(yield* state(breaker), "HalfOpen")
      yield* ok.pipe(withBreaker(breaker))
      assert.strictEqual(yield* state(breaker), "Closed")
    }))

  it.effect("a result from before a trip changes nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "1 second" })
      const slow = yield* Effect.sleep("5 seconds").pipe(withBreaker(breaker), Effect.forkChild)
      yield* Effect.yieldNow
      yield* trip(breaker, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* state(breaker), "HalfOpen")
      yield* TestClock.adjust("4 seconds")
      yield* Fiber.join(slow)
      // The slow call was admitted while CLOSED: its success must not close the HALF_OPEN breaker.
      assert.strictEqual(yield* state(breaker), "HalfOpen")
    }))
})

describe("CircuitBreaker: classification and timeouts", () => {
  it.effect("isFailure decides which typed failures count; the caller still gets the error", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 2,
        isFailure: (e) => e instanceof Boom && e.counted
      })
      for (let i = 0; i < 5; i++) {
        const error = yield* Effect.flip(fail(false).pipe(withBreaker(breaker)))
        assert.strictEqual(error._tag, "Boom")
      }
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.totals.ignored, 5)
      assert.strictEqual(snapshot.totals.failures, 0)
    }))

  it.effect("a per-call isFailure overrides the breaker's", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      yield* Effect.flip(fail().pipe(withBreaker(breaker, () => false)))
      assert.strictEqual(yield* state(breaker), "Closed")
    }))

  it.effect("defects count; interruptions never do", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 2, isFailure: () => false })
      const interrupted = yield* Effect.never.pipe(withBreaker(breaker), Effect.forkChild)
      yield* Effect.yieldNow
      yield* Fiber.interrupt(interrupted)
      assert.strictEqual((yield* breaker.snapshot).totals.ignored, 1)
      yield* Effect.exit(Effect.die(new Error("bug")).pipe(withBreaker(breaker)))
      yield* Effect.exit(Effect.die(new Error("bug")).pipe(withBreaker(breaker)))
      assert.strictEqual(yield* state(breaker), "Open")
    }))

  it.effect("callTimeout interrupts the call, fails with reason Timeout and counts a failure", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 2,
        callTimeout: "2 seconds",
        isFailure: () => false
      })
      const interrupted = yield* Ref.make(false)
      const hung = Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)), withBreaker(breaker))
      const fiber = yield* Effect.forkChild(Effect.flip(hung))
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      assert.instanceOf(error, CircuitBreaker.CircuitBreakerTimeoutError)
      assert.strictEqual(error._tag, "CircuitBreakerTimeoutError")
      assert.isTrue(yield* Ref.get(interrupted))
      assert.strictEqual((yield* breaker.snapshot).totals.failures, 1)
    }))

  it.effect("slowCallThreshold: a slow success counts as a failure but returns its value", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 2, slowCallThreshold: "1 second" })
      const slowCall = Effect.sleep("1500 millis").pipe(Effect.as("late"), withBreaker(breaker))
      for (let i = 0; i < 2; i++) {
        const fiber = yield* Effect.forkChild(slowCall)
        yield* TestClock.adjust("1500 millis")
        assert.strictEqual(yield* Fiber.join(fiber), "late")
      }
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Open")
      assert.strictEqual(snapshot.totals.slow, 2)
    }))
})

describe("CircuitBreaker: rate policies", () => {
  it.effect("failureRate opens at the threshold over the last N calls, after minimumCalls", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        policy: CircuitBreaker.failureRate({ threshold: 0.5, size: 4, minimumCalls: 4 })
      })
      yield* ok.pipe(withBreaker(breaker))
      yield* ok.pipe(withBreaker(breaker))
      yield* trip(breaker, 1)
      assert.strictEqual(yield* state(breaker), "Closed") // only 3 calls seen
      yield* ok.pipe(withBreaker(breaker))
      // window now [S, S, F, S]: 25%
      assert.strictEqual(yield* state(breaker), "Closed")
      yield* trip(breaker, 1) // [S, F, S, F]: 50%
      assert.strictEqual(yield* state(breaker), "Open")
    }))

  it.effect("failureRateOverTime forgets failures older than the window", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        policy: CircuitBreaker.failureRateOverTime({ threshold: 0.5, window: "10 seconds", minimumCalls: 3 })
      })
      yield* trip(breaker, 2)
      yield* TestClock.adjust("11 seconds")
      yield* trip(breaker, 1)
      // The first two slid out of the window: 1 call, below minimumCalls.
      assert.strictEqual(yield* state(breaker), "Closed")
      assert.strictEqual((yield* breaker.snapshot).failures, 1)
      yield* ok.pipe(withBreaker(breaker))
      yield* trip(breaker, 1)
      // 3 calls, 2 failed: 66% >= 50%
      assert.strictEqual(yield* state(breaker), "Open")
    }))
})

describe("CircuitBreaker: manual control and fail-open", () => {
  it.effect("forceOpen rejects with reason ForcedOpen and never half-opens; reset closes", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", recoveryTimeout: "1 second" })
      yield* breaker.forceOpen
      yield* TestClock.adjust("1 hour")
      const error = yield* Effect.flip(ok.pipe(withBreaker(breaker)))
      assert.instanceOf(error, CircuitBreakerError)
      if (!(error instanceof CircuitBreakerError)) return
      assert.strictEqual(error.reason, "ForcedOpen")
      assert.isFalse(Duration.isFinite(error.retryAfter))
      yield* breaker.reset
      assert.strictEqual(yield* ok.pipe(withBreaker(breaker)), "ok")
    }))

  it.effect("disable passes every call through and still measures; enabled: false starts that way", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, enabled: false })
      yield* trip(breaker, 5)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.mode, "Disabled")
      assert.strictEqual(snapshot.totals.failures, 5)
      yield* breaker.reset
      yield* trip(breaker, 1)
      assert.strictEqual(yield* state(breaker), "Open")
      yield* breaker.disable
      assert.strictEqual(yield* ok.pipe(withBreaker(breaker)), "ok")
    }))

  it.effect("withBreaker then failOpen gives the fallback when rejected or failed, the value on success", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "redis_client", failMax: 1, failureMode: "fail-open" })
      const open = failOpen("cache", Option.none)
      assert.deepStrictEqual(yield* ok.pipe(Effect.map(Option.some), withBreaker(breaker), open), Option.some("ok"))
      assert.deepStrictEqual(yield* fail().pipe(withBreaker(breaker), open), Option.none())
      const runs = yield* Ref.make(0)
      assert.deepStrictEqual(
        yield* counting(runs, ok).pipe(Effect.map(Option.some), withBreaker(breaker), open),
        Option.none()
      )
      assert.strictEqual(yield* Ref.get(runs), 0)
      assert.strictEqual((yield* breaker.snapshot).failureMode, "fail-open")
    }))
})

describe("CircuitBreaker: options are validated", () => {
  const cases: Array<[string, CircuitBreaker.Options, string]> = [
    ["failMax 0", { name: "c", failMax: 0 }, "failMax"],
    ["failMax 1.5", { name: "c", failMax: 1.5 }, "failMax"],
    ["negative recoveryTimeout", { name: "c", recoveryTimeout: -1 }, "recoveryTimeout"],
    ["unparseable duration", { name: "c", recoveryTimeout: "soon" as never }, "recoveryTimeout"],
    [
      "max below recovery",
      { name: "c", recoveryTimeout: "60 seconds", maxOpenDuration: "30 seconds" },
      "maxOpenDuration"
    ],
    [
      "threshold above 1",
      { name: "c", policy: CircuitBreaker.failureRate({ threshold: 1.5, size: 10 }) },
      "policy.threshold"
    ],
    ["threshold 0", { name: "c", policy: CircuitBreaker.failureRate({ threshold: 0, size: 10 }) }, "policy.threshold"],
    [
      "successThreshold above permits",
      { name: "c", halfOpen: { permits: 1, successThreshold: 2 } },
      "halfOpen.successThreshold"
    ],
    ["permits 0", { name: "c", halfOpen: { permits: 0 } }, "halfOpen.permits"],
    ["failMax and policy", { name: "c", failMax: 3, policy: CircuitBreaker.consecutive(3) }, "failMax"],
    ["empty name", { name: "" }, "name"],
    ["name with spaces", { name: "kafka producer" }, "name"],
    ["zero callTimeout", { name: "c", callTimeout: 0 }, "callTimeout"]
  ]
  for (const [title, options, option] of cases) {
    it.effect(`${title}: fails with CircuitBreakerOptionsError naming ${option}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(CircuitBreaker.make(options))
        assert.strictEqual(error._tag, "CircuitBreakerOptionsError")
        assert.strictEqual(error.option, option)
        assert.include(error.message, option)
        assert.include(error.message, "expected")
      }))
  }
})

describe("CircuitBreaker: registry", () => {
  it.effect("knows every breaker, replays them to late subscribers, refuses duplicate names, forgets closed scopes", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.Registry
      yield* CircuitBreaker.make({ name: "kafka_producer" })
      const seen: Array<string> = []
      yield* registry.onRegister((b) => {
        seen.push(b.name)
      })
      yield* Effect.scoped(CircuitBreaker.make({ name: "redis_client" }))
      assert.deepStrictEqual(seen, ["kafka_producer", "redis_client"])
      const names = (yield* registry.snapshots).map((s) => s.name)
      assert.deepStrictEqual(names, ["kafka_producer"])
      const duplicate = yield* Effect.flip(CircuitBreaker.make({ name: "kafka_producer" }))
      assert.strictEqual(duplicate.option, "name")
      assert.isTrue(Option.isSome(yield* registry.get("kafka_producer")))
    }).pipe(Effect.provide(Registry.layer)))
})

describe("CircuitBreaker.layer: a breaker declared as a service", () => {
  class KafkaBreaker extends Context.Service<KafkaBreaker, CircuitBreaker.CircuitBreaker>()("test/KafkaBreaker") {}

  it.effect("provides the breaker, registers it, and fails the layer on bad options", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const breaker = yield* KafkaBreaker
        yield* trip(breaker, 2)
        const registry = yield* Registry.Registry
        return { state: yield* breaker.state, names: (yield* registry.breakers).map((b) => b.name) }
      })
      const result = yield* program.pipe(
        Effect.provide(CircuitBreaker.layer(KafkaBreaker, { name: "kafka_producer", failMax: 2 })),
        Effect.provide(Registry.layer)
      )
      assert.deepStrictEqual(result, { state: "Open", names: ["kafka_producer"] })
      const error = yield* Effect.flip(
        Effect.provide(Effect.asVoid(KafkaBreaker), CircuitBreaker.layer(KafkaBreaker, { name: "k", failMax: 0 }))
      )
      assert.strictEqual(error._tag, "CircuitBreakerOptionsError")
      assert.strictEqual(error.option, "failMax")
    }))
})
