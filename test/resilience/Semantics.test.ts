/**
 * The semantics users migrate from pybreaker, cockatiel and resilience4j, checked on every call path:
 * `withBreaker`, `withBreaker` + `failOpen`, `Facade.wrapSync`, `Facade.wrapPromise`, and `Facade.execute`
 * with and without a `callTimeout`.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, CircuitBreakerError, Facade, failOpen, withBreaker } from "@neural-hive/resilience"
import { Cause, Effect, Exit, Option } from "effect"
import { TestClock } from "effect/testing"
import { Boom, countedOnly } from "../support/breakers.ts"

const OK = "ok" as const
/** What a call does: succeed, or fail with this value. */
type Act = typeof OK | { readonly fail: unknown }
type Classifier = (error: unknown) => boolean

interface Path {
  readonly name: string
  /** Extra breaker options the path needs (a callTimeout). */
  readonly options: Partial<CircuitBreaker.Options>
  /** Whether the caller sees the error (fail-open paths hide it). */
  readonly surfacesErrors: boolean
  /** Runs one call; gives `OK`, or the error the caller saw (`none` for a fail-open miss). */
  readonly run: (breaker: CircuitBreaker.CircuitBreaker, act: Act, isFailure?: Classifier) => Effect.Effect<unknown>
}

const asEffect = (act: Act): Effect.Effect<string, unknown> => act === OK ? Effect.succeed(OK) : Effect.fail(act.fail)
const asPromise = (act: Act): Promise<string> => act === OK ? Promise.resolve(OK) : Promise.reject(act.fail)
const settled = (promise: Promise<unknown>) => Effect.promise(() => promise.then(() => OK, (error: unknown) => error))

const execute = (name: string, options: Partial<CircuitBreaker.Options>): Path => ({
  name,
  options,
  surfacesErrors: true,
  run: (breaker, act, isFailure) =>
    settled(Facade.execute(breaker, () => asPromise(act), isFailure === undefined ? undefined : { isFailure }))
})

const paths: ReadonlyArray<Path> = [
  {
    name: "withBreaker",
    options: {},
    surfacesErrors: true,
    run: (breaker, act, isFailure) =>
      Effect.map(
        Effect.exit(asEffect(act).pipe(withBreaker(breaker, isFailure))),
        (exit) => Exit.isSuccess(exit) ? OK : Cause.squash(exit.cause)
      )
  },
  {
    name: "withBreaker + failOpen",
    options: {},
    surfacesErrors: false,
    run: (breaker, act, isFailure) =>
      Effect.map(
        asEffect(act).pipe(Effect.map(Option.some), withBreaker(breaker, isFailure), failOpen("act", Option.none)),
        (o) => Option.isSome(o) ? OK : "none"
      )
  },
  {
    name: "Facade.wrapSync",
    options: {},
    surfacesErrors: true,
    run: (breaker, act, isFailure) =>
      Effect.sync(() => {
        const call = Facade.wrapSync(breaker, () => {
          if (act !== OK) throw act.fail
          return OK
        }, isFailure === undefined ? undefined : { isFailure })
        try {
          return call()
        } catch (error) {
          return error
        }
      })
  },
  {
    name: "Facade.wrapPromise",
    options: {},
    surfacesErrors: true,
    run: (breaker, act, isFailure) =>
      settled(Facade.wrapPromise(breaker, () => asPromise(act), isFailure === undefined ? undefined : { isFailure })())
  },
  execute("Facade.execute", {}),
  execute("Facade.execute with callTimeout", { callTimeout: "1 minute" })
]

const counted = { fail: new Boom({ counted: true }) }
const excluded = { fail: new Boom({ counted: false }) }

const make = (path: Path, options: Omit<CircuitBreaker.Options, "name">) =>
  CircuitBreaker.make({ name: "c", recoveryTimeout: "10 seconds", ...options, ...path.options })

describe.each(paths)("semantics through $name", (path) => {
  it.effect("the breaker's own isFailure is honoured: an excluded error never trips", () =>
    Effect.gen(function*() {
      const breaker = yield* make(path, { failMax: 1, isFailure: countedOnly })
      const seen = yield* path.run(breaker, excluded)
      if (path.surfacesErrors) assert.strictEqual(seen, excluded.fail)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.totals.ignored, 1)
      assert.strictEqual(snapshot.totals.failures, 0)
      yield* path.run(breaker, counted)
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("a breaker-level and a call-level classifier combine: an error counts only when both count it", () =>
    Effect.gen(function*() {
      const breaker = yield* make(path, { failMax: 1, isFailure: countedOnly })
      // The call says "count everything", the breaker excludes: not counted.
      yield* path.run(breaker, excluded, () => true)
      assert.strictEqual(yield* breaker.state, "Closed")
      // The breaker counts it, the call excludes it: not counted.
      yield* path.run(breaker, counted, () => false)
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual((yield* breaker.snapshot).totals.ignored, 2)
      // Both count it: it trips.
      yield* path.run(breaker, counted, () => true)
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("failureRate decides on every outcome: F F F S S over minimumCalls 5 at 50% opens", () =>
    Effect.gen(function*() {
      const breaker = yield* make(path, {
        policy: CircuitBreaker.failureRate({ threshold: 0.5, size: 10, minimumCalls: 5 })
      })
      for (const act of [counted, counted, counted, OK] as const) yield* path.run(breaker, act)
      assert.strictEqual(yield* breaker.state, "Closed") // 4 calls: below minimumCalls
      yield* path.run(breaker, OK) // 3 of 5 failed: 60%
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("failureRateOverTime decides on every outcome too", () =>
    Effect.gen(function*() {
      const breaker = yield* make(path, {
        policy: CircuitBreaker.failureRateOverTime({ threshold: 0.5, window: "1 minute", minimumCalls: 5 })
      })
      for (const act of [counted, counted, counted, OK] as const) yield* path.run(breaker, act)
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* path.run(breaker, OK)
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("a failed half-open probe is counted in failures, as pybreaker's fail_counter", () =>
    Effect.gen(function*() {
      const breaker = yield* make(path, { failMax: 2 })
      yield* path.run(breaker, counted)
      yield* path.run(breaker, counted)
      assert.strictEqual((yield* breaker.snapshot).failures, 2)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* path.run(breaker, counted)
      const reopened = yield* breaker.snapshot
      assert.strictEqual(reopened.state, "Open")
      assert.strictEqual(reopened.failures, 3)
      assert.strictEqual(reopened.totals.trips, 2)
      yield* TestClock.adjust("20 seconds") // the open period doubled
      yield* path.run(breaker, OK)
      const closed = yield* breaker.snapshot
      assert.strictEqual(closed.state, "Closed")
      assert.strictEqual(closed.failures, 0)
    }))

  it.effect("throwOnTrip: the call whose failure opens the breaker gets CircuitBreakerError(Tripped)", () =>
    Effect.gen(function*() {
      const breaker = yield* make(path, { failMax: 2, throwOnTrip: true })
      const first = yield* path.run(breaker, counted)
      if (path.surfacesErrors) assert.strictEqual(first, counted.fail)
      const second = yield* path.run(breaker, counted)
      assert.strictEqual(yield* breaker.state, "Open")
      if (path.surfacesErrors) {
        assert.instanceOf(second, CircuitBreakerError)
        assert.strictEqual((second as CircuitBreakerError).reason, "Tripped")
        assert.strictEqual((second as CircuitBreakerError).cause, counted.fail)
      }
      yield* TestClock.adjust("10 seconds")
      const probe = yield* path.run(breaker, counted) // a failed trial raises the breaker's error too
      if (path.surfacesErrors) assert.strictEqual((probe as CircuitBreakerError).reason, "Tripped")
      const rejected = yield* path.run(breaker, OK)
      if (path.surfacesErrors) assert.strictEqual((rejected as CircuitBreakerError).reason, "Open")
    }))

  it.effect("excluded: \"success\" records an excluded error as a success (pybreaker's exclude)", () =>
    Effect.gen(function*() {
      const asSuccess = yield* make(path, { failMax: 2, isFailure: countedOnly, excluded: "success" })
      for (const act of [counted, excluded, counted]) yield* path.run(asSuccess, act)
      assert.strictEqual(yield* asSuccess.state, "Closed") // the excluded error reset the count
      assert.strictEqual((yield* asSuccess.snapshot).totals.successes, 1)
      const ignoring = yield* CircuitBreaker.make({ name: "d", failMax: 2, isFailure: countedOnly, ...path.options })
      for (const act of [counted, excluded, counted]) yield* path.run(ignoring, act)
      assert.strictEqual(yield* ignoring.state, "Open") // the default ignores it: 2 consecutive counted
    }))
})

describe("manual controls are idempotent", () => {
  const recording = (breaker: CircuitBreaker.CircuitBreaker) =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      yield* breaker.listen({ onTransition: (t) => seen.push(`${t.from}->${t.to}:${t.reason}`) })
      return seen
    })

  it.effect("forceOpen twice publishes one transition and counts one trip", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c" })
      const seen = yield* recording(breaker)
      assert.isTrue(yield* breaker.forceOpen)
      assert.isFalse(yield* breaker.forceOpen)
      assert.deepStrictEqual(seen, ["Closed->Open:ForcedOpen"])
      assert.strictEqual((yield* breaker.snapshot).totals.trips, 1)
    }).pipe(Effect.scoped))

  it.effect("disable twice publishes one transition; reset on a closed breaker publishes nothing but forgets counts", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 3 })
      const seen = yield* recording(breaker)
      yield* Effect.ignore(Effect.fail(new Boom({ counted: true })).pipe(withBreaker(breaker)))
      assert.strictEqual((yield* breaker.snapshot).failures, 1)
      assert.isFalse(yield* breaker.reset)
      assert.strictEqual((yield* breaker.snapshot).failures, 0)
      assert.deepStrictEqual(seen, [])
      assert.isTrue(yield* breaker.disable)
      assert.isFalse(yield* breaker.disable)
      assert.deepStrictEqual(seen, ["Closed->Closed:Disabled"])
      assert.isTrue(yield* breaker.reset) // leaves the disabled mode: a real change
      assert.isFalse(yield* breaker.reset)
      assert.deepStrictEqual(seen, ["Closed->Closed:Disabled", "Closed->Closed:Reset"])
      assert.strictEqual((yield* breaker.snapshot).totals.trips, 0)
    }).pipe(Effect.scoped))

  it.effect("forcing an OPEN breaker open changes its mode, not its trip count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "c", failMax: 1 })
      yield* Effect.ignore(Effect.fail(new Boom({ counted: true })).pipe(withBreaker(breaker)))
      assert.isTrue(yield* breaker.forceOpen)
      const snapshot = yield* breaker.snapshot
      assert.strictEqual(snapshot.mode, "ForcedOpen")
      assert.strictEqual(snapshot.totals.trips, 1)
    }))
})
