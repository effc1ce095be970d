/**
 * `Remote` as a third party uses it: a tiny in-memory coordination backend,
 * written against the package's public entry only (no internal module, no
 * machine), shares one circuit between two replicas. It proves a backend
 * other than `@neural-hive/fleet` (Postgres, etcd) needs nothing else: observe
 * the local decisions, read what may be shared, adopt what was decided
 * elsewhere. Time is driven by TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Remote, withBreaker } from "@neural-hive/resilience"
import { Effect, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"

/** The "store": the last decision per circuit, with the replica that took it; every replica is told. */
const makeStore = () => {
  const replicas = new Set<{ readonly pod: string; readonly breaker: CircuitBreaker.CircuitBreaker }>()
  const decisions: Array<string> = []
  const publish = (from: string, decision: Remote.Decision) => {
    decisions.push(`${from}:${decision._tag}`)
    for (const r of replicas) if (r.pod !== from) Remote.adopt(r.breaker, decision)
  }
  /** Joins `breaker` to the store: its own decisions are published, the others' adopted. */
  const join = (pod: string, breaker: CircuitBreaker.CircuitBreaker): Effect.Effect<void, never, Scope.Scope> => {
    replicas.add({ pod, breaker })
    return Remote.observe(breaker, (transition) => {
      switch (transition.reason) {
        case "Tripped":
        case "ProbeFailed": {
          const { openings, remainingMillis } = Remote.status(breaker)
          return publish(pod, { _tag: "Open", remainingMillis, openings })
        }
        case "ProbesSucceeded":
        case "Reset":
          return publish(pod, { _tag: "Closed" })
        case "ForcedOpen":
          return publish(pod, { _tag: "ForcedOpen" })
        case "Disabled":
          return publish(pod, { _tag: "Disabled" })
        default:
          return // the end of an open period is each replica's own
      }
    })
  }
  return { join, decisions }
}

const options = { name: "payments", failMax: 2, recoveryTimeout: "10 seconds" } as const
const down = Effect.fail("connection refused")

describe("Remote: a coordination backend built on the public API only", () => {
  it.effect("a trip on one replica opens the other for the time left; its probe's success closes both", () =>
    Effect.gen(function*() {
      const store = makeStore()
      const a = yield* CircuitBreaker.make(options)
      const b = yield* CircuitBreaker.make(options)
      yield* store.join("a", a)
      yield* store.join("b", b)
      const reasons: Array<string> = []
      yield* b.listen({ onTransition: (t) => reasons.push(`${t.to}:${t.reason}`) })

      yield* TestClock.adjust("1 second")
      for (let i = 0; i < 2; i++) yield* Effect.ignore(down.pipe(withBreaker(a)))
      assert.deepStrictEqual(store.decisions, ["a:Open"])
      // b never called the dependency, yet refuses calls for a's period, and counts no trip of its own.
      const refused = yield* Effect.flip(Effect.succeed("sent").pipe(withBreaker(b)))
      assert.strictEqual(refused._tag, "CircuitBreakerError")
      assert.deepStrictEqual(Remote.status(b), {
        state: "Open",
        mode: "Normal",
        openings: 1,
        remainingMillis: 10_000,
        permitsHeld: 0
      })
      assert.strictEqual(b.view.totals().trips, 0)
      assert.strictEqual(a.view.totals().trips, 1)

      // Both periods end together; b's probe succeeds, and the store closes a as well.
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* Effect.succeed("sent").pipe(withBreaker(b)), "sent")
      assert.deepStrictEqual(store.decisions, ["a:Open", "b:Closed"])
      assert.strictEqual(a.view.state(), "Closed")
      assert.deepStrictEqual(reasons, ["Open:Remote", "HalfOpen:OpenElapsed", "Closed:ProbesSucceeded"])
    }))

  it.effect("observe leaves out what the breaker adopted: a backend never publishes a decision back", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      const local: Array<string> = []
      yield* Remote.observe(breaker, (t) => local.push(t.reason))
      assert.isTrue(Remote.adopt(breaker, { _tag: "ForcedOpen" }))
      assert.isTrue(Remote.adopt(breaker, { _tag: "Closed" }))
      yield* breaker.forceOpen
      assert.deepStrictEqual(local, ["ForcedOpen"])
      assert.deepStrictEqual(Remote.status(breaker), {
        state: "Open",
        mode: "ForcedOpen",
        openings: 0,
        remainingMillis: Infinity,
        permitsHeld: 0
      })
    }))

  it.effect("sharedCount: the consecutive count a fleet may sum, only while CLOSED and Normal", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ ...options, failMax: 3 })
      assert.deepStrictEqual(Remote.sharedCount(breaker), { failures: 0, failMax: 3, firstOpenMillis: 10_000 })
      yield* Effect.ignore(down.pipe(withBreaker(breaker)))
      assert.strictEqual(Remote.sharedCount(breaker)?.failures, 1)
      yield* breaker.disable
      assert.isUndefined(Remote.sharedCount(breaker))
      const rate = yield* CircuitBreaker.make({
        name: "rate",
        policy: CircuitBreaker.failureRate({ threshold: 0.5, size: 10 })
      })
      assert.isUndefined(Remote.sharedCount(rate), "a rate over a window does not sum across replicas")
    }))

  it.effect("a HALF_OPEN granted by the backend lets exactly the permitted probes through", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      assert.isTrue(Remote.adopt(breaker, { _tag: "Open", remainingMillis: 60_000, openings: 1 }))
      assert.isTrue(Remote.adopt(breaker, { _tag: "HalfOpen" }))
      assert.strictEqual(Remote.status(breaker).state, "HalfOpen")
      const probe = yield* Effect.forkChild(Effect.never.pipe(withBreaker(breaker)))
      yield* Effect.yieldNow
      assert.strictEqual(Remote.status(breaker).permitsHeld, 1)
      const second = yield* Effect.flip(Effect.void.pipe(withBreaker(breaker)))
      assert.strictEqual(second._tag, "CircuitBreakerError")
      yield* Fiber.interrupt(probe)
      assert.strictEqual(Remote.status(breaker).permitsHeld, 0, "an interrupted probe gives its permit back")
    }))
})
