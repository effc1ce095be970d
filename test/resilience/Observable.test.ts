/**
 * What a user of a breaker can observe besides its state: snapshots (totals, lastError, since,
 * retryAfter), the errors callers get, listeners (`onTransition`, `onCall`, `annotate`), the
 * `onSettled` callback of `protect`, the readers' `view` and the facade's admission. Time is driven by TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  CircuitBreaker,
  CircuitBreakerError,
  CircuitBreakerTimeoutError,
  TripPolicy,
  withBreaker
} from "@neural-hive/resilience"
import { Cause, Duration, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Boom, countedOnly, fail, ok, trip } from "../support/breakers.ts"
import { Admission } from "../support/resilienceInternals.ts"

const settledWith = (breaker: CircuitBreaker.CircuitBreaker) => {
  const seen: Array<string> = []
  const call = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.exit(
      breaker.protect(effect, undefined, (outcome, state, tripped) => seen.push(`${outcome}:${state}:${tripped}`))
    )
  return { seen, call }
}

describe("CircuitBreaker: protect tells onSettled how each call ended, where, and whether it tripped", () => {
  it.effect("CLOSED, OPEN, HALF_OPEN and forced open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 2, recoveryTimeout: "1 second" })
      const { call, seen } = settledWith(breaker)
      yield* call(ok)
      yield* call(fail())
      yield* call(fail())
      yield* call(ok)
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.forkChild(call(Effect.sleep("1 second")))
      yield* Effect.yieldNow
      yield* call(ok)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(probe)
      yield* breaker.forceOpen
      yield* call(ok)
      assert.deepStrictEqual(seen, [
        "success:Closed:false",
        "failure:Closed:false",
        "failure:Closed:true",
        "rejected:Open:false",
        "rejected:HalfOpen:false",
        "success:HalfOpen:false",
        "rejected:Open:false"
      ])
    }))

  it.effect("a failed probe reports that it tripped the breaker again", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "1 second" })
      const { call, seen } = settledWith(breaker)
      yield* call(fail())
      yield* TestClock.adjust("1 second")
      yield* call(fail())
      assert.deepStrictEqual(seen, ["failure:Closed:true", "failure:HalfOpen:true"])
    }))

  it.effect("the same with a listener's annotate and with throwOnTrip (the other code paths)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "1 second",
        throwOnTrip: true
      })
      const annotated: Array<string> = []
      yield* breaker.listen({
        annotate: (outcome, state, exit) => Effect.sync(() => annotated.push(`${outcome}:${state}:${exit._tag}`))
      })
      const { call, seen } = settledWith(breaker)
      yield* call(ok)
      const tripped = yield* call(fail())
      yield* call(ok)
      yield* TestClock.adjust("1 second")
      yield* call(ok)
      assert.deepStrictEqual(seen, [
        "success:Closed:false",
        "failure:Closed:true",
        "rejected:Open:false",
        "success:HalfOpen:false"
      ])
      assert.deepStrictEqual(annotated, [
        "success:Closed:Success",
        "failure:Closed:Failure",
        "rejected:Open:Failure",
        "success:HalfOpen:Success"
      ])
      assert.isTrue(Exit.isFailure(tripped))
      if (Exit.isFailure(tripped)) {
        assert.strictEqual((Cause.squash(tripped.cause) as CircuitBreakerError).reason, "Tripped")
      }
    }))
})

describe("CircuitBreaker: the errors callers get", () => {
  it.effect("a rejection while OPEN, while every HALF_OPEN permit is taken, and while forced open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1, recoveryTimeout: "30 seconds" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("12 seconds")
      const open = yield* Effect.flip(ok.pipe(withBreaker(breaker)))
      assert.deepInclude(open, {
        _tag: "CircuitBreakerError",
        circuit: "kafka_producer",
        state: "Open",
        reason: "Open"
      })
      assert.strictEqual(Duration.toMillis((open as CircuitBreakerError).retryAfter), 18_000)
      yield* TestClock.adjust("18 seconds")
      const probe = yield* Effect.forkChild(Effect.never.pipe(withBreaker(breaker)))
      yield* Effect.yieldNow
      const busy = yield* Effect.flip(ok.pipe(withBreaker(breaker)))
      assert.deepInclude(busy, { state: "HalfOpen", reason: "HalfOpen" })
      assert.strictEqual(Duration.toMillis((busy as CircuitBreakerError).retryAfter), 0)
      yield* Fiber.interrupt(probe)
      yield* breaker.forceOpen
      const forced = yield* Effect.flip(ok.pipe(withBreaker(breaker)))
      assert.deepInclude(forced, { state: "Open", reason: "ForcedOpen" })
      assert.strictEqual(Duration.toMillis((forced as CircuitBreakerError).retryAfter), Infinity)
      assert.instanceOf(forced, Error)
      assert.strictEqual((yield* breaker.snapshot).totals.rejected, 3)
    }))

  it.effect("an open period starts when the breaker trips, not at clock zero", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("100 seconds")
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "30 seconds" })
      yield* trip(breaker, 1)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.retryAfterMillis, 30_000)
      assert.strictEqual(snapshot.since, 100_000)
      yield* TestClock.adjust("30 seconds")
      yield* ok.pipe(withBreaker(breaker))
      assert.strictEqual((yield* breaker.snapshot).since, 130_000) // closed by the probe, at its time
    }))

  it.effect("throwOnTrip: the error carries the open period; a late failure of an earlier call keeps its own error", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        recoveryTimeout: "30 seconds",
        throwOnTrip: true
      })
      const late = yield* Effect.forkChild(
        Effect.flip(Effect.sleep("1 second").pipe(Effect.andThen(fail()), withBreaker(breaker)))
      )
      yield* Effect.yieldNow
      const tripped = yield* Effect.flip(fail().pipe(withBreaker(breaker)))
      assert.deepInclude(tripped, { state: "Open", reason: "Tripped", circuit: "c" })
      assert.strictEqual(Duration.toMillis((tripped as CircuitBreakerError).retryAfter), 30_000)
      yield* TestClock.adjust("1 second")
      // Admitted before the trip: its failure opened nothing, so the caller gets its own error.
      assert.instanceOf(yield* Fiber.join(late), Boom)
    }))

  it.effect("a timed-out call counts even when the classifiers exclude every error", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 1,
        callTimeout: "1 second",
        isFailure: () => false
      })
      const fiber = yield* Effect.forkChild(Effect.flip(Effect.never.pipe(withBreaker(breaker, () => false))))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      assert.instanceOf(error, CircuitBreakerTimeoutError)
      assert.deepInclude(error, { _tag: "CircuitBreakerTimeoutError", circuit: "c" })
      assert.strictEqual(Duration.toMillis((error as CircuitBreakerTimeoutError).timeout), 1_000)
      assert.strictEqual(yield* breaker.state, "Open")
    }))
})

const both = (first: Boom, second: Boom) => Effect.failCause(Cause.combine(Cause.fail(first), Cause.fail(second)))

describe("CircuitBreaker: a failure made of several causes", () => {
  it.effect("counts when any typed failure counts, whatever its place, and records that one", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3, isFailure: countedOnly })
      yield* Effect.exit(both(new Boom({ counted: true }), new Boom({ counted: false })).pipe(withBreaker(breaker)))
      yield* Effect.exit(both(new Boom({ counted: false }), new Boom({ counted: true })).pipe(withBreaker(breaker)))
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.failures, 2)
      assert.strictEqual(snapshot.totals.failures, 2)
      assert.strictEqual(snapshot.totals.ignored, 0)
    }))

  it.effect("a defect beside an excluded failure counts", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3, isFailure: countedOnly })
      const cause = Cause.combine(Cause.fail(new Boom({ counted: false })), Cause.die(new Error("bug")))
      yield* Effect.exit(Effect.failCause(cause).pipe(withBreaker(breaker)))
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.failures, 1)
      assert.strictEqual(snapshot.lastError, "Error: bug")
    }))
})

describe("CircuitBreaker: snapshots", () => {
  it.effect("lastError: the last counted failure's message, in the shape of the error, secrets removed", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 100, isFailure: countedOnly })
      const lastError = (error: unknown) =>
        Effect.gen(function*() {
          yield* Effect.exit(Effect.fail(error).pipe(withBreaker(breaker)))
          return (yield* breaker.snapshot).lastError
        })
      assert.isUndefined((yield* breaker.snapshot).lastError)
      assert.strictEqual(
        yield* lastError(new Error("connect to redis://app:s3cret@cache:6379 refused")),
        "Error: connect to redis://app:***@cache:6379 refused"
      )
      assert.strictEqual(yield* lastError(new TypeError("")), "TypeError")
      assert.strictEqual(yield* lastError({ _tag: "RedisError", message: "LOADING" }), "RedisError: LOADING")
      assert.strictEqual(yield* lastError({ _tag: "Gone" }), "Gone")
      assert.strictEqual(yield* lastError({ _tag: "Gone", message: 42 }), "Gone")
      assert.strictEqual(yield* lastError("plain text"), "plain text")
      yield* lastError(new Boom({ counted: false })) // not counted: the last counted one stays
      assert.strictEqual((yield* breaker.snapshot).lastError, "plain text")
      const listened: Array<string | undefined> = []
      yield* breaker.listen({ onTransition: (t) => listened.push(t.lastError) })
      yield* breaker.forceOpen
      assert.deepStrictEqual(listened, ["plain text"])
    }))

  it.effect("totals count every outcome; a slow success counts as slow and as a failure, keeping lastError", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 100,
        slowCallThreshold: "1 second",
        isFailure: countedOnly
      })
      yield* ok.pipe(withBreaker(breaker))
      yield* Effect.exit(fail().pipe(withBreaker(breaker)))
      yield* Effect.exit(fail(false).pipe(withBreaker(breaker)))
      const slow = yield* Effect.forkChild(Effect.sleep("1 second").pipe(withBreaker(breaker)))
      yield* TestClock.adjust("1 second") // exactly the threshold: slow
      yield* Fiber.join(slow)
      const fast = yield* Effect.forkChild(Effect.sleep("999 millis").pipe(withBreaker(breaker)))
      yield* TestClock.adjust("999 millis")
      yield* Fiber.join(fast)
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual(snapshot.totals, { successes: 2, failures: 2, slow: 1, ignored: 1, rejected: 0, trips: 0 })
      assert.strictEqual(snapshot.lastError, "Boom")
      assert.strictEqual(snapshot.failures, 0) // the fast success reset the consecutive count
      assert.strictEqual(snapshot.mode, "Normal")
      assert.strictEqual(snapshot.name, "c")
    }))

  it.effect("an elapsed open period reads as HALF_OPEN in a snapshot and in view.state, even before the timer", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "1 second" })
      yield* trip(breaker, 1)
      assert.strictEqual(breaker.view.state(), "Open")
      assert.strictEqual(breaker.view.snapshot().retryAfterMillis, 1_000)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(breaker.view.state(), "HalfOpen")
      assert.strictEqual(breaker.view.snapshot().state, "HalfOpen")
      assert.strictEqual(breaker.view.snapshot().failures, 1)
      assert.strictEqual(breaker.view.snapshot().since, 1_000)
    }))
})

describe("CircuitBreaker: listeners", () => {
  it.effect("onCall sees every outcome with its duration; rejections last 0; a closed scope stops it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 2, isFailure: countedOnly })
      const calls: Array<string> = []
      const scope = yield* Scope.make()
      yield* Scope.provide(scope)(breaker.listen({ onCall: (outcome, millis) => calls.push(`${outcome}:${millis}`) }))
      const call = (effect: Effect.Effect<unknown, unknown>) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.forkChild(Effect.exit(effect.pipe(withBreaker(breaker))))
          yield* TestClock.adjust("250 millis")
          yield* Fiber.join(fiber)
        })
      yield* call(Effect.sleep("250 millis"))
      yield* call(Effect.sleep("100 millis").pipe(Effect.andThen(fail(false))))
      yield* call(fail())
      yield* call(fail())
      yield* call(ok)
      assert.deepStrictEqual(calls, ["success:250", "ignored:100", "failure:0", "failure:0", "rejected:0"])
      yield* Scope.close(scope, Exit.void)
      yield* call(ok)
      assert.strictEqual(calls.length, 5)
    }))

  it.effect("a listener that leaves takes only itself away", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c" })
      const seen: Array<string> = []
      const first = yield* Scope.make()
      yield* Scope.provide(first)(breaker.listen({ onCall: (o) => seen.push(`1:${o}`) }))
      yield* breaker.listen({ onCall: (o) => seen.push(`2:${o}`) })
      yield* Scope.close(first, Exit.void)
      yield* ok.pipe(withBreaker(breaker))
      assert.deepStrictEqual(seen, ["2:success"])
    }))

  it.effect("view.subscribe runs a listener without a scope until view.unsubscribe; a listen beside it stays", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      const seen: Array<string> = []
      const subscribed: CircuitBreaker.Listener = {
        onCall: (o) => seen.push(`sub:${o}`),
        onTransition: (t) => seen.push(`sub:${t.to}`)
      }
      // Not subscribed yet: nothing happens.
      breaker.view.unsubscribe(subscribed)
      breaker.view.subscribe(subscribed)
      yield* breaker.listen({ onCall: (o) => seen.push(`listen:${o}`) })
      yield* ok.pipe(withBreaker(breaker))
      yield* Effect.exit(fail().pipe(withBreaker(breaker)))
      breaker.view.unsubscribe(subscribed)
      yield* Effect.exit(ok.pipe(withBreaker(breaker)))
      assert.deepStrictEqual(seen, [
        "sub:success",
        "listen:success",
        "sub:Open",
        "sub:failure",
        "listen:failure",
        "listen:rejected"
      ])
    }))

  it.effect("listen in a scope already closed removes the listener at once", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c" })
      const seen: Array<string> = []
      const closed = yield* Scope.make()
      yield* Scope.close(closed, Exit.void)
      yield* Scope.provide(closed)(breaker.listen({ onCall: (o) => seen.push(o) }))
      yield* ok.pipe(withBreaker(breaker))
      assert.deepStrictEqual(seen, [])
    }))

  it.effect("two annotators both see every call; each leaves with its own scope", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      const seen: Array<string> = []
      const first = yield* Scope.make()
      yield* Scope.provide(first)(breaker.listen({ annotate: (o) => Effect.sync(() => seen.push(`1:${o}`)) }))
      yield* breaker.listen({ annotate: (o) => Effect.sync(() => seen.push(`2:${o}`)) })
      yield* ok.pipe(withBreaker(breaker))
      yield* Scope.close(first, Exit.void)
      yield* Effect.exit(fail().pipe(withBreaker(breaker)))
      yield* Effect.exit(ok.pipe(withBreaker(breaker)))
      assert.deepStrictEqual(seen, ["1:success", "2:success", "2:failure", "2:rejected"])
    }))

  it.effect("transitions carry the circuit, the reason, the time and the failures held", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "mongodb_client", failMax: 2, recoveryTimeout: "5 seconds" })
      const seen: Array<CircuitBreaker.Transition> = []
      yield* breaker.listen({ onTransition: (t) => seen.push(t) })
      yield* TestClock.adjust("1 second")
      yield* trip(breaker, 2)
      yield* TestClock.adjust("5 seconds")
      yield* ok.pipe(withBreaker(breaker))
      assert.deepStrictEqual(seen, [
        {
          circuit: "mongodb_client",
          from: "Closed",
          to: "Open",
          mode: "Normal",
          reason: "Tripped",
          at: 1_000,
          failures: 2,
          retryAfterMillis: 5_000,
          lastError: "Boom"
        },
        {
          circuit: "mongodb_client",
          from: "Open",
          to: "HalfOpen",
          mode: "Normal",
          reason: "OpenElapsed",
          at: 6_000,
          failures: 2,
          retryAfterMillis: 0,
          lastError: "Boom"
        },
        {
          circuit: "mongodb_client",
          from: "HalfOpen",
          to: "Closed",
          mode: "Normal",
          reason: "ProbesSucceeded",
          at: 6_000,
          failures: 0,
          retryAfterMillis: 0,
          lastError: "Boom"
        }
      ])
    }))
})

describe("CircuitBreaker: a guarded effect built once is reused across states", () => {
  it.effect("its calls count again after the breaker recovered", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 2, recoveryTimeout: "1 second" })
      const failing = Effect.exit(fail().pipe(withBreaker(breaker)))
      const passing = ok.pipe(withBreaker(breaker))
      yield* failing
      yield* failing
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust("1 second")
      yield* passing
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* failing
      yield* failing
      assert.strictEqual(yield* breaker.state, "Open")
    }))
})

describe("CircuitBreaker: failureRateOverTime reads the Clock for every outcome", () => {
  it.effect("a success recorded late in the clock stays in the window with the failure after it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window: "10 seconds", minimumCalls: 2 })
      })
      yield* TestClock.adjust("20 seconds")
      yield* ok.pipe(withBreaker(breaker))
      yield* Effect.exit(fail().pipe(withBreaker(breaker)))
      assert.strictEqual(yield* breaker.state, "Open") // 1 of 2 in the window: 50%
    }))
})

describe("CircuitBreaker: the readers' view", () => {
  it.effect("view reads what breaker.state and breaker.snapshot give, synchronously; totals move nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "reader", failMax: 2, recoveryTimeout: "1 second" })
      const { view } = breaker
      assert.strictEqual(breaker.view, view, "one view per breaker")
      yield* ok.pipe(withBreaker(breaker))
      yield* trip(breaker, 2)
      yield* Effect.flip(Effect.void.pipe(withBreaker(breaker)))
      assert.strictEqual(view.state(), yield* breaker.state)
      assert.deepStrictEqual(view.snapshot(), yield* breaker.snapshot)
      assert.deepStrictEqual(view.totals(), { successes: 1, failures: 2, slow: 0, ignored: 0, rejected: 1, trips: 1 })
      const seen: Array<string> = []
      yield* breaker.listen({ onTransition: (t) => seen.push(t.to) })
      yield* TestClock.adjust("1 second")
      // The timer ended the period: the view sees HALF_OPEN; reading the totals reported nothing more.
      assert.deepStrictEqual(seen, ["HalfOpen"])
      view.totals()
      assert.deepStrictEqual(seen, ["HalfOpen"])
      assert.strictEqual(view.state(), "HalfOpen")
      assert.strictEqual(view.snapshot().retryAfterMillis, 0)
    }))
})

describe("CircuitBreaker: the facade's admission (internal)", () => {
  it.effect("admit, succeed and fail drive the breaker like a call; callTimeoutMillis is read by the facade", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "c",
        failMax: 2,
        callTimeout: "3 seconds",
        throwOnTrip: true,
        isFailure: countedOnly
      })
      const impl = Admission.of(breaker)
      assert.strictEqual(impl.callTimeoutMillis, 3_000)
      const excluded = new Boom({ counted: false })
      const failOnce = (error: unknown, isFailure?: (error: unknown) => boolean) =>
        Admission.fail(impl, Admission.admit(impl) as number, Admission.start(impl), error, isFailure)
      assert.strictEqual(failOnce(excluded), excluded)
      const counted = new Boom({ counted: true })
      assert.strictEqual(failOnce(counted, () => false), counted)
      assert.strictEqual(failOnce(counted), counted)
      const tripped = failOnce(counted)
      assert.deepInclude(tripped, { reason: "Tripped", cause: counted })
      const rejected = Admission.admit(impl)
      assert.instanceOf(rejected, CircuitBreakerError)
      assert.deepStrictEqual(breaker.view.totals(), {
        successes: 0,
        failures: 2,
        slow: 0,
        ignored: 2,
        rejected: 1,
        trips: 1
      })
      const plain = yield* CircuitBreaker.make({ name: "d" })
      const plainImpl = Admission.of(plain)
      assert.isUndefined(plainImpl.callTimeoutMillis)
      assert.isNaN(Admission.start(plainImpl), "no clock read without a use for durations")
      Admission.succeed(plainImpl, Admission.admit(plainImpl) as number, 0)
      assert.strictEqual(plain.view.totals().successes, 1)
      const fake = { ...plain } as CircuitBreaker.CircuitBreaker
      assert.throws(() => Admission.of(fake), /made by CircuitBreaker\.make/)
    }))
})

describe("CircuitBreaker: the combinators in both forms", () => {
  it.effect("withBreaker takes the effect first or last, with a call-level classifier", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      assert.strictEqual(yield* withBreaker(ok, breaker), "ok")
      assert.strictEqual(yield* ok.pipe(withBreaker(breaker, () => false)), "ok")
      assert.instanceOf(yield* Effect.flip(withBreaker(fail(), breaker, () => false)), Boom)
      assert.strictEqual(yield* breaker.state, "Closed") // excluded by the call
      assert.instanceOf(yield* Effect.flip(withBreaker(fail(), breaker)), Boom)
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it("CircuitBreaker's policy constructors are TripPolicy's", () => {
    assert.strictEqual(CircuitBreaker.consecutive, TripPolicy.consecutive)
  })
})

describe("CircuitBreaker: a breaker whose scope closed", () => {
  it.effect("publishes nothing more: its open period's timer stops with it", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const breaker = yield* Scope.provide(scope)(
        CircuitBreaker.make({ name: "c", failMax: 1, recoveryTimeout: "1 second" })
      )
      const seen: Array<string> = []
      yield* breaker.listen({ onTransition: (t) => seen.push(t.to) })
      yield* trip(breaker, 1)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(seen, ["Open"])
    }))
})
