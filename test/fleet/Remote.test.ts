/**
 * The core's side of the fleet, under TestClock: a breaker adopts decisions
 * taken elsewhere (`Remote.adopt`, the machine's `adopt*`) with reason
 * "Remote", never counted as a local trip, without touching the call path.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Remote, TripPolicy, withBreaker } from "@neural-hive/resilience"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { Machine, phaseOf } from "../support/resilienceInternals.ts"

const options: CircuitBreaker.Options = {
  name: "kafka_producer",
  failMax: 2,
  recoveryTimeout: "1 second",
  maxOpenDuration: "8 seconds"
}

const breakerWithLog = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make(options)
  const transitions: Array<CircuitBreaker.Transition> = []
  yield* breaker.listen({ onTransition: (t) => transitions.push(t) })
  return { breaker, transitions }
})

describe("adopting remote decisions", () => {
  it.effect("an adopted opening rejects for the remaining time, then HALF_OPEN by the Clock; no trip counted", () =>
    Effect.gen(function*() {
      const { breaker, transitions } = yield* breakerWithLog
      assert.isTrue(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 700, openings: 2 }))
      assert.strictEqual(yield* breaker.state, "Open")
      assert.deepStrictEqual(transitions.map((t) => [t.from, t.to, t.reason]), [["Closed", "Open", "Remote"]])
      assert.strictEqual(transitions[0]!.retryAfterMillis, 700)
      const rejected = yield* Effect.flip(Effect.void.pipe(withBreaker(breaker)))
      assert.strictEqual(rejected._tag, "CircuitBreakerError")
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.totals.trips, 0)
      assert.strictEqual(snapshot.totals.rejected, 1)
      yield* TestClock.adjust(699)
      assert.strictEqual(phaseOf(breaker)._tag, "Open")
      yield* TestClock.adjust(1)
      assert.strictEqual(phaseOf(breaker)._tag, "HalfOpen")
      // The adopted openings drive the doubling: a failed probe opens for 1 s x 2^2.
      yield* Effect.exit(Effect.fail("down").pipe(withBreaker(breaker)))
      const phase = phaseOf(breaker)
      assert.isTrue(phase._tag === "Open" && phase.openings === 3)
      assert.strictEqual(transitions.at(-1)!.retryAfterMillis, 4000)
      assert.strictEqual((yield* breaker.snapshot).totals.trips, 1)
    }))

  it.effect("an OPEN breaker only has its period aligned: no transition, the new end holds", () =>
    Effect.gen(function*() {
      const { breaker, transitions } = yield* breakerWithLog
      yield* Effect.exit(Effect.fail("x").pipe(withBreaker(breaker)))
      yield* Effect.exit(Effect.fail("x").pipe(withBreaker(breaker)))
      assert.strictEqual(transitions.length, 1)
      assert.isTrue(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 3000, openings: 1 }))
      assert.isFalse(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 3000, openings: 1 }), "same decision")
      assert.strictEqual(transitions.length, 1)
      yield* TestClock.adjust(2999)
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust(1)
      assert.strictEqual(phaseOf(breaker)._tag, "HalfOpen")
    }))

  it.effect("adoptHalfOpen ends the period now (the probe lease was won); only from a Normal OPEN", () =>
    Effect.gen(function*() {
      const { breaker, transitions } = yield* breakerWithLog
      assert.isFalse(Remote.adopt(breaker, { _tag: "HalfOpen" }), "CLOSED stays CLOSED")
      Remote.adopt(breaker, { _tag: "Open", remainingMillis: 60_000, openings: 1 })
      assert.isTrue(Remote.adopt(breaker, { _tag: "HalfOpen" }))
      assert.strictEqual(transitions.at(-1)!.to, "HalfOpen")
      assert.strictEqual(yield* Effect.void.pipe(withBreaker(breaker)), undefined)
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* breaker.forceOpen
      assert.isFalse(Remote.adopt(breaker, { _tag: "HalfOpen" }), "forced open is not probed")
    }))

  it.effect("adoptClosed forgets the counts; an already CLOSED breaker keeps its own count", () =>
    Effect.gen(function*() {
      const { breaker, transitions } = yield* breakerWithLog
      yield* Effect.exit(Effect.fail("x").pipe(withBreaker(breaker)))
      assert.isFalse(Remote.adopt(breaker, { _tag: "Closed" }))
      assert.strictEqual((yield* breaker.snapshot).failures, 1)
      Remote.adopt(breaker, { _tag: "Open", remainingMillis: 1000, openings: 1 })
      assert.isTrue(Remote.adopt(breaker, { _tag: "Closed" }))
      assert.deepStrictEqual(transitions.at(-1)!.reason, "Remote")
      assert.strictEqual((yield* breaker.snapshot).failures, 0)
      // The timer of the adopted period no longer moves anything.
      yield* TestClock.adjust(2000)
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.effect("admin modes adopted: forced open and disabled, reported as Remote; a forced breaker ignores a trip", () =>
    Effect.gen(function*() {
      const { breaker, transitions } = yield* breakerWithLog
      assert.isTrue(Remote.adopt(breaker, { _tag: "ForcedOpen" }))
      assert.isFalse(Remote.adopt(breaker, { _tag: "ForcedOpen" }))
      assert.deepStrictEqual(
        [transitions.at(-1)!.to, transitions.at(-1)!.mode, transitions.at(-1)!.reason],
        ["Open", "ForcedOpen", "Remote"]
      )
      assert.isFalse(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 10, openings: 1 }))
      assert.strictEqual((yield* breaker.snapshot).totals.trips, 0)
      assert.isTrue(Remote.adopt(breaker, { _tag: "Disabled" }))
      assert.strictEqual((yield* breaker.snapshot).mode, "Disabled")
      assert.isFalse(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 10, openings: 1 }))
      assert.isTrue(Remote.adopt(breaker, { _tag: "Closed" }))
      assert.strictEqual((yield* breaker.snapshot).mode, "Normal")
    }))

  it("Machine.adoptOpen on the pure machine: generation moves on transition only, stale admissions change nothing", () => {
    const settings: Machine.Settings = {
      policy: TripPolicy.consecutive(2),
      permits: 1,
      successThreshold: 1,
      recoveryMillis: 1000,
      maxOpenMillis: 8000
    }
    const opened: Array<[number, number]> = []
    const m = Machine.make(settings, 0, "Normal", {
      onTransition: () => {},
      onOpen: (generation, duration) => opened.push([generation, duration])
    })
    const admitted = Machine.admit(m, 0)
    assert.isTrue(Machine.adoptOpen(m, 500, 1, 100))
    const phase = m.phase.current
    assert.isTrue(phase._tag === "Open" && phase.until === 600 && phase.generation === 1)
    // A call admitted before the adoption fails late: it changes nothing.
    Machine.complete(m, admitted, "failure", 200)
    Machine.complete(m, admitted, "failure", 200)
    assert.strictEqual(m.phase.current, phase)
    assert.isTrue(Machine.adoptOpen(m, 2000, 2, 300))
    assert.strictEqual(m.phase.current.generation, 1, "aligned, not a new opening")
    assert.deepStrictEqual(opened, [[1, 500], [1, 2000]])
    assert.isTrue(Machine.adoptOpen(m, -5, 2, 400), "a negative remainder is none")
    assert.strictEqual(Machine.retryAfter(m, 400), 0)
  })
})
