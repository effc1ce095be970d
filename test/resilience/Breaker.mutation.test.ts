/**
 * What a user of the breaker can observe in the corners the other tests leave: a timer that has not
 * fired yet, listeners added while a call runs, the probe loop with several permits, decisions adopted
 * from a fleet, interruption around a CLOSED call, and the error shapes `lastError` reads. Each test
 * here was written for behaviour a mutation run showed unpinned (see docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerError, Remote, withBreaker } from "@neural-hive/resilience"
import { Clock, Duration, Effect, Exit, Fiber, Ref } from "effect"
import { TestClock } from "effect/testing"
import { Boom, fail, ok, trip } from "../support/breakers.ts"
import { Admission, phaseOf, settingsOf } from "../support/resilienceInternals.ts"

/**
 * A Clock whose time the test sets and whose sleeps never end: a breaker on it is one whose timer has
 * not run yet when the open period ends (a busy event loop), so only the breaker's own reads of the
 * clock can notice the end.
 */
const laggingClock = () => {
  let now = 0
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => now,
    currentTimeMillis: Effect.sync(() => now),
    currentTimeNanosUnsafe: () => BigInt(now) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => BigInt(now) * 1_000_000n,
    monotonicTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    sleep: () => Effect.never
  }
  return { clock, advance: (millis: number) => void (now += millis) }
}

/** A breaker with failMax 1 and a 10 s open period on a lagging clock, tripped at 0 and left at `at`. */
const trippedOnLaggingClock = (at: number) =>
  Effect.gen(function*() {
    const { advance, clock } = laggingClock()
    const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "10 seconds" }).pipe(
      Effect.provideService(Clock.Clock, clock)
    )
    yield* trip(breaker, 1)
    advance(at)
    return breaker
  })

describe("CircuitBreaker: the open period ends by the clock even before its timer runs", () => {
  it.effect("a call at the very end of the period is the probe; one just before it is rejected", () =>
    Effect.gen(function*() {
      const early = yield* trippedOnLaggingClock(9_999)
      const rejected = yield* Effect.flip(ok.pipe(withBreaker(early)))
      assert.instanceOf(rejected, CircuitBreakerError)
      assert.strictEqual(Duration.toMillis(rejected.retryAfter), 1)

      const atEnd = yield* trippedOnLaggingClock(10_000)
      assert.strictEqual(yield* ok.pipe(withBreaker(atEnd)), "ok")
      const snapshot = yield* atEnd.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.totals.rejected, 0)
    }))

  it.effect("a failing probe at the end of the period reopens with the doubled period", () =>
    Effect.gen(function*() {
      const breaker = yield* trippedOnLaggingClock(10_000)
      yield* Effect.flip(fail().pipe(withBreaker(breaker)))
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Open")
      assert.strictEqual(snapshot.retryAfterMillis, 20_000)
    }))

  it.effect("state and snapshot read HALF_OPEN once the period is over", () =>
    Effect.gen(function*() {
      const read = yield* trippedOnLaggingClock(10_000)
      assert.strictEqual(yield* read.state, "HalfOpen")
      const snapped = yield* trippedOnLaggingClock(10_000)
      const snapshot = yield* snapped.snapshot
      assert.strictEqual(snapshot.state, "HalfOpen")
      assert.strictEqual(snapshot.retryAfterMillis, 0)
      assert.strictEqual(snapshot.since, 10_000)
      const before = yield* trippedOnLaggingClock(9_999)
      assert.strictEqual(yield* before.state, "Open")
      assert.strictEqual((yield* before.snapshot).state, "Open")
    }))

  it.effect("the facade's admission admits the probe at the end of the period too", () =>
    Effect.gen(function*() {
      const breaker = yield* trippedOnLaggingClock(10_000)
      const impl = Admission.of(breaker)
      const generation = Admission.admit(impl)
      assert.isNumber(generation)
      assert.strictEqual(breaker.view.state(), "HalfOpen")
      Admission.succeed(impl, generation as number, Admission.start(impl))
      assert.strictEqual(breaker.view.state(), "Closed")
    }))
})

describe("CircuitBreaker: call durations for listeners", () => {
  it.effect("a call that started before the first onCall listener reports NaN; the next one its duration", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3 })
      // A listener without onCall does not make calls timed.
      yield* breaker.listen({ onTransition: () => undefined })
      const seen: Array<[string, number]> = []
      const early = yield* Effect.forkChild(Effect.sleep("1 second").pipe(Effect.as("ok"), withBreaker(breaker)))
      yield* Effect.yieldNow
      yield* breaker.listen({ onCall: (outcome, millis) => seen.push([outcome, millis]) })
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(early), "ok")
      const late = yield* Effect.forkChild(Effect.sleep("1 second").pipe(withBreaker(breaker)))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(late)
      assert.strictEqual(seen.length, 2)
      assert.strictEqual(seen[0]![0], "success")
      assert.isNaN(seen[0]![1])
      assert.deepStrictEqual(seen[1], ["success", 1000])
    }))

  it.effect("a HALF_OPEN probe is timed too: a slow probe counts as a failed trial", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        slowCallThreshold: "1 second"
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      const probe = yield* Effect.forkChild(Effect.sleep("2 seconds").pipe(Effect.as("slow"), withBreaker(breaker)))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(probe), "slow") // the caller still gets its value
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Open")
      assert.strictEqual(snapshot.totals.slow, 1)
    }))
})

describe("CircuitBreaker: slow calls are successes that took too long", () => {
  it.effect("a slow failure counts once, as a failure with its error, not as a slow call", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 5, slowCallThreshold: "100 millis" })
      const call = yield* Effect.forkChild(
        Effect.sleep("200 millis").pipe(Effect.andThen(fail()), withBreaker(breaker))
      )
      yield* TestClock.adjust("200 millis")
      yield* Fiber.await(call)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.totals.failures, 1)
      assert.strictEqual(snapshot.totals.slow, 0)
      assert.strictEqual(snapshot.lastError, "Boom")
    }))

  it.effect("a slow failure the classifier excludes stays ignored: slowness does not make it count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        slowCallThreshold: "100 millis",
        isFailure: (error) => !(error instanceof Boom) || error.counted
      })
      const call = yield* Effect.forkChild(
        Effect.sleep("200 millis").pipe(Effect.andThen(fail(false)), withBreaker(breaker))
      )
      yield* TestClock.adjust("200 millis")
      yield* Fiber.await(call)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.deepStrictEqual(
        [snapshot.totals.ignored, snapshot.totals.slow, snapshot.totals.failures],
        [1, 0, 0]
      )
    }))
})

describe("CircuitBreaker: the probe loop", () => {
  it.effect("with several permits, no probe runs while a call holds one; it runs once that call succeeded", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        halfOpen: { permits: 2, successThreshold: 2 },
        probe: Ref.update(runs, (n) => n + 1)
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      const call = yield* Effect.forkChild(Effect.sleep("5500 millis").pipe(withBreaker(breaker)))
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second") // five graces while the call holds a permit
      assert.strictEqual(yield* Ref.get(runs), 0)
      assert.strictEqual((yield* breaker.snapshot).totals.rejected, 0) // the probe did not even try
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(call)
      assert.strictEqual(yield* breaker.state, "HalfOpen") // one success of two
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Ref.get(runs), 1)
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.effect("no probe runs once the breaker closed, nor while it is open again", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const healthy = yield* Ref.make(false)
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "10 seconds",
        maxOpenDuration: "10 seconds",
        probe: Effect.andThen(
          Ref.update(runs, (n) => n + 1),
          Effect.flatMap(Ref.get(healthy), (up) => up ? Effect.void : Effect.fail(new Boom({ counted: true })))
        )
      })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      yield* TestClock.adjust("1 second") // the probe fails: open again for 10 s
      assert.strictEqual(yield* Ref.get(runs), 1)
      for (let i = 0; i < 9; i++) yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Ref.get(runs), 1)
      assert.strictEqual((yield* breaker.snapshot).totals.rejected, 0)
      yield* Ref.set(healthy, true)
      yield* TestClock.adjust("1 second") // HALF_OPEN again
      yield* TestClock.adjust("1 second") // the probe succeeds
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* Ref.get(runs), 2)
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Ref.get(runs), 2)
      assert.strictEqual((yield* breaker.snapshot).totals.successes, 1)
    }))

  it.effect("without a probe, time passing in HALF_OPEN leaves the permit to the first call", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "10 seconds" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* ok.pipe(withBreaker(breaker)), "ok")
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.totals.successes, 1)
    }))
})

describe("CircuitBreaker: trips counted", () => {
  it.effect("forcing open a breaker that is already open is not another trip", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      yield* trip(breaker, 1)
      assert.isTrue(yield* breaker.forceOpen)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.mode, "ForcedOpen")
      assert.strictEqual(snapshot.totals.trips, 1)
    }))
})

describe("CircuitBreaker: decisions adopted from a fleet (Remote.adopt)", () => {
  it.effect("an adopted opening opens for the time left, is reported as Remote and is not a local trip", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 5, recoveryTimeout: "30 seconds" })
      const reasons: Array<string> = []
      yield* breaker.listen({ onTransition: (t) => reasons.push(`${t.from}->${t.to}:${t.reason}`) })
      assert.isTrue(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 4_000, openings: 2 }))
      const phase = phaseOf(breaker)
      assert.strictEqual(phase._tag, "Open")
      assert.strictEqual(phase._tag === "Open" ? phase.until : -1, 4_000)
      assert.strictEqual(phase._tag === "Open" ? phase.openings : -1, 2)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.totals.trips, 0)
      assert.strictEqual(snapshot.retryAfterMillis, 4_000)
      yield* TestClock.adjust("4 seconds") // the adopted period ends by the clock
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.deepStrictEqual(reasons, ["Closed->Open:Remote", "Open->HalfOpen:OpenElapsed"])
    }))

  it.effect("adopting HALF_OPEN, CLOSED, forced open and disabled moves the breaker each time", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "30 seconds" })
      assert.isFalse(Remote.adopt(breaker, { _tag: "HalfOpen" })) // only an OPEN breaker can move to HALF_OPEN
      yield* trip(breaker, 1)
      assert.isTrue(Remote.adopt(breaker, { _tag: "HalfOpen" }))
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.isTrue(Remote.adopt(breaker, { _tag: "Closed" }))
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.isFalse(Remote.adopt(breaker, { _tag: "Closed" }))
      assert.isTrue(Remote.adopt(breaker, { _tag: "ForcedOpen" }))
      assert.strictEqual((yield* breaker.snapshot).mode, "ForcedOpen")
      assert.isTrue(Remote.adopt(breaker, { _tag: "Disabled" }))
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual([snapshot.state, snapshot.mode, snapshot.totals.trips], ["Closed", "Disabled", 1])
    }))

  it.effect("an adopted opening later in time: the period counts from now, in a new generation, mode Normal", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 5, recoveryTimeout: "30 seconds" })
      yield* TestClock.adjust("1 second")
      const before = phaseOf(breaker).generation
      assert.isTrue(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 4_000, openings: 1 }))
      const phase = phaseOf(breaker)
      assert.isAbove(phase.generation, before)
      assert.deepStrictEqual([phase._tag, phase.mode, phase._tag === "Open" ? phase.until : -1], [
        "Open",
        "Normal",
        5_000
      ])
      const ends: Array<number> = []
      yield* breaker.listen({ onTransition: (t) => t.to === "HalfOpen" && ends.push(t.at) })
      yield* TestClock.adjust("4 seconds") // the timer was set for the time left, not more
      assert.deepStrictEqual(ends, [5_000])
    }))

  it.effect("an OPEN breaker only aligns its period and openings to an adopted one, with no transition", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "30 seconds",
        maxOpenDuration: "10 minutes"
      })
      const seen: Array<string> = []
      yield* trip(breaker, 1)
      yield* breaker.listen({ onTransition: (t) => seen.push(`${t.from}->${t.to}`) })
      const generation = phaseOf(breaker).generation
      // The same period and openings: nothing to change.
      assert.isFalse(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 30_000, openings: 1 }))
      assert.isTrue(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 30_000, openings: 3 }))
      assert.isTrue(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 5_000, openings: 3 }))
      const phase = phaseOf(breaker)
      assert.deepStrictEqual(
        [phase.generation, phase._tag === "Open" ? phase.openings : -1, phase._tag === "Open" ? phase.until : -1],
        [generation, 3, 5_000]
      )
      assert.deepStrictEqual(seen, [])
      yield* TestClock.adjust("5 seconds") // the aligned period ends by the clock
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      // The next failed probe reopens as the fourth opening in a row: 30 s doubled three times.
      yield* Effect.flip(fail().pipe(withBreaker(breaker)))
      assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 240_000)
    }))

  it.effect("a forced-open or disabled breaker ignores an adopted opening and half-opening", () =>
    Effect.gen(function*() {
      const forced = yield* CircuitBreaker.make({ name: "f", failMax: 1 })
      yield* forced.forceOpen
      assert.isFalse(Remote.adopt(forced, { _tag: "Open", remainingMillis: 1_000, openings: 1 }))
      assert.isFalse(Remote.adopt(forced, { _tag: "HalfOpen" }))
      assert.isFalse(Remote.adopt(forced, { _tag: "ForcedOpen" }))
      assert.strictEqual((yield* forced.snapshot).mode, "ForcedOpen")
      const disabled = yield* CircuitBreaker.make({ name: "d", failMax: 1 })
      yield* disabled.disable
      assert.isFalse(Remote.adopt(disabled, { _tag: "Open", remainingMillis: 1_000, openings: 1 }))
      assert.isFalse(Remote.adopt(disabled, { _tag: "Disabled" }))
      // Adopting CLOSED ends a disable decided elsewhere.
      assert.isTrue(Remote.adopt(disabled, { _tag: "Closed" }))
      assert.strictEqual((yield* disabled.snapshot).mode, "Normal")
    }))

  it.effect("adopted modes are reported as Remote; forcing open an OPEN breaker keeps its openings", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "10 seconds" })
      const seen: Array<string> = []
      yield* breaker.listen({ onTransition: (t) => seen.push(`${t.from}->${t.to}:${t.mode}:${t.reason}`) })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      yield* Effect.flip(fail().pipe(withBreaker(breaker))) // the second opening in a row
      const generation = phaseOf(breaker).generation
      assert.isTrue(Remote.adopt(breaker, { _tag: "ForcedOpen" }))
      const forced = phaseOf(breaker)
      assert.deepStrictEqual([forced._tag === "Open" ? forced.openings : -1, forced.generation], [2, generation + 1])
      assert.isTrue(Remote.adopt(breaker, { _tag: "Disabled" }))
      assert.isTrue(Remote.adopt(breaker, { _tag: "ForcedOpen" }))
      const fromClosed = phaseOf(breaker)
      assert.strictEqual(fromClosed._tag === "Open" ? fromClosed.openings : -1, 0)
      assert.isTrue(Remote.adopt(breaker, { _tag: "Closed" }))
      assert.deepStrictEqual(seen.slice(-4), [
        "Open->Open:ForcedOpen:Remote",
        "Open->Closed:Disabled:Remote",
        "Closed->Open:ForcedOpen:Remote",
        "Open->Closed:Normal:Remote"
      ])
    }))

  it.effect("the machine's settings are the validated options; Remote.sharedCount shares failMax and the first period", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 3,
        recoveryTimeout: "30 seconds",
        maxOpenDuration: "2 minutes",
        halfOpen: { permits: 3, successThreshold: 2 }
      })
      const settings = settingsOf(breaker)
      assert.deepStrictEqual(
        [settings.recoveryMillis, settings.maxOpenMillis, settings.permits, settings.successThreshold],
        [30_000, 120_000, 3, 2]
      )
      yield* Effect.exit(fail().pipe(withBreaker(breaker)))
      assert.deepStrictEqual(Remote.sharedCount(breaker), { failures: 1, failMax: 3, firstOpenMillis: 30_000 })
    }))
})

describe("CircuitBreaker: annotations", () => {
  it.effect("two annotators both see a rejection, in the order they were added", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "10 seconds" })
      yield* trip(breaker, 1)
      const seen: Array<string> = []
      yield* breaker.listen({
        annotate: (outcome, state, exit) => Effect.sync(() => seen.push(`1:${outcome}:${state}:${exit._tag}`))
      })
      yield* breaker.listen({
        annotate: (outcome, state, exit) => Effect.sync(() => seen.push(`2:${outcome}:${state}:${exit._tag}`))
      })
      const error = yield* Effect.flip(ok.pipe(withBreaker(breaker)))
      assert.instanceOf(error, CircuitBreakerError)
      assert.deepStrictEqual(seen, ["1:rejected:Open:Failure", "2:rejected:Open:Failure"])
      yield* TestClock.adjust("10 seconds")
      yield* ok.pipe(withBreaker(breaker))
      assert.deepStrictEqual(seen.slice(2), ["1:success:HalfOpen:Success", "2:success:HalfOpen:Success"])
    }))

  it.effect("a forced-open breaker annotates its rejections with the forced-open error", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      const seen: Array<string> = []
      yield* breaker.listen({ annotate: (outcome, state) => Effect.sync(() => seen.push(`${outcome}:${state}`)) })
      yield* breaker.forceOpen
      const error = yield* Effect.flip(ok.pipe(withBreaker(breaker)))
      assert.instanceOf(error, CircuitBreakerError)
      assert.strictEqual(error.reason, "ForcedOpen")
      assert.isFalse(Duration.isFinite(error.retryAfter))
      assert.deepStrictEqual(seen, ["rejected:Open"])
    }))
})

/**
 * Forks `region(call through the breaker, then an hour's sleep, then mark reached)`, interrupts it during the sleep,
 * and gives its exit and whether it got past the sleep.
 */
const interruptedAfterCall = (
  breaker: CircuitBreaker.CircuitBreaker,
  region: <E>(self: Effect.Effect<void, E>) => Effect.Effect<void, E>
) =>
  Effect.gen(function*() {
    let reached = false
    const fiber = yield* Effect.forkChild(
      region(
        ok.pipe(
          withBreaker(breaker),
          Effect.andThen(Effect.sleep("1 hour")),
          Effect.andThen(Effect.sync(() => {
            reached = true
          }))
        )
      )
    )
    yield* Effect.yieldNow
    const interrupter = yield* Effect.forkChild(Fiber.interrupt(fiber))
    yield* TestClock.adjust("1 hour")
    yield* Fiber.join(interrupter)
    const exit = yield* Fiber.await(fiber)
    return { exit, reached }
  })

describe("CircuitBreaker: a CLOSED call and interruption", () => {
  it.effect("after a call the fiber is interruptible again", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3 })
      const { exit, reached } = yield* interruptedAfterCall(breaker, (self) => self)
      assert.isTrue(Exit.hasInterrupts(exit))
      assert.isFalse(reached)
    }))

  it.effect("inside an uninterruptible region a call leaves the fiber uninterruptible", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3 })
      const { reached } = yield* interruptedAfterCall(breaker, Effect.uninterruptible)
      assert.isTrue(reached)
      assert.strictEqual((yield* breaker.snapshot).totals.successes, 1)
    }))

  it.effect("an interruption that arrives while the call is settled is delivered right after it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3 })
      let target: Fiber.Fiber<unknown, unknown> | undefined
      let reached = false
      // A listener that stops the calling fiber when it sees the call end (say, a shutdown on a signal).
      yield* breaker.listen({ onCall: () => target?.interruptUnsafe() })
      const fiber = yield* Effect.forkChild(
        Effect.sleep("1 second").pipe(
          Effect.andThen(ok.pipe(withBreaker(breaker))),
          Effect.andThen(Effect.sync(() => reached = true))
        )
      )
      target = fiber
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.hasInterrupts(exit))
      assert.isFalse(reached)
      assert.strictEqual((yield* breaker.snapshot).totals.successes, 1) // the call itself was settled
    }))

  it.effect("a value made synchronously reaches the caller, and counts as a success", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3 })
      assert.strictEqual(yield* Effect.sync(() => 42).pipe(withBreaker(breaker)), 42)
      assert.strictEqual(yield* Effect.succeed(20).pipe(Effect.map((n) => n + 1), withBreaker(breaker)), 21)
      assert.strictEqual((yield* breaker.snapshot).totals.successes, 2)
    }))
})

describe("CircuitBreaker: lastError for every error shape", () => {
  it.effect("null, a tagged value without a message and a plain value", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 10 })
      yield* Effect.flip(Effect.fail(null).pipe(withBreaker(breaker)))
      assert.strictEqual((yield* breaker.snapshot).lastError, "null")
      yield* Effect.flip(Effect.fail({ _tag: "Refused", code: 1 }).pipe(withBreaker(breaker)))
      assert.strictEqual((yield* breaker.snapshot).lastError, "Refused")
      yield* Effect.flip(Effect.fail({ _tag: "Refused", message: "by peer" }).pipe(withBreaker(breaker)))
      assert.strictEqual((yield* breaker.snapshot).lastError, "Refused: by peer")
      yield* Effect.exit(Effect.die(7).pipe(withBreaker(breaker)))
      assert.strictEqual((yield* breaker.snapshot).lastError, "7")
      assert.strictEqual((yield* breaker.snapshot).totals.failures, 4) // a defect counts like a failure
    }))
})
