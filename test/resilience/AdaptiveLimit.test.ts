/**
 * The adaptive bulkhead: the Vegas update on its own (pure), then a simulated dependency on TestClock
 * whose latency grows past 20 calls in flight, which then hangs: the limit settles near what the
 * dependency serves, and while it hangs the calls in flight stay there instead of piling up.
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, CircuitBreakerOptionsError } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/testing/TestClock"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type * as VegasModule from "../../packages/resilience/src/internal/vegas.js"

// Internal: imported by path at run time and typed from the built declarations (`.js`): tsc refuses a `.ts`
// import across its projects (TS2878), as in FastPath.test.ts.
const root = fileURLToPath(new URL("../..", import.meta.url))
const Vegas: typeof VegasModule = await import(path.join(root, "packages/resilience/src/internal/vegas.ts"))

const settings = { minLimit: 1, maxLimit: 200, probeEvery: 1_000 }
const at = (limit: number, noLoadMillis: number): VegasModule.VegasState => ({ limit, noLoadMillis, samples: 1 })

describe("Vegas update", () => {
  it("grows while calls take the least time seen, with the limit in use", () => {
    const next = Vegas.update(settings, at(20, 10), { millis: 10, inFlight: 20, drop: false })
    assert.isAbove(next.limit, 20)
  })
  it("shrinks when calls take much longer than the least time seen (a queue at the dependency)", () => {
    const next = Vegas.update(settings, at(40, 10), { millis: 40, inFlight: 40, drop: false })
    assert.isBelow(next.limit, 40)
  })
  it("drops by a tenth on a timeout, and never below minLimit or above maxLimit", () => {
    assert.strictEqual(Vegas.update(settings, at(50, 10), { millis: 5_000, inFlight: 50, drop: true }).limit, 45)
    assert.strictEqual(Vegas.update(settings, at(1, 10), { millis: 10, inFlight: 1, drop: true }).limit, 1)
    assert.strictEqual(Vegas.update(settings, at(199, 10), { millis: 10, inFlight: 199, drop: false }).limit, 200)
  })
  it("learns nothing from a call made while the limit was not half used", () => {
    assert.strictEqual(Vegas.update(settings, at(40, 10), { millis: 10, inFlight: 5, drop: false }).limit, 40)
  })
  it("learns the no-load latency again every probeEvery samples", () => {
    const state = { limit: 20, noLoadMillis: 5, samples: 999 }
    assert.strictEqual(Vegas.update(settings, state, { millis: 12, inFlight: 20, drop: false }).noLoadMillis, 12)
  })
})

/**
 * A dependency that serves 20 calls at 10 ms and slows beyond (each call's latency is 10 ms x calls in
 * flight / 20), or hangs. The load offers 4 calls every millisecond (about 4 times what it serves).
 */
const simulate = (bulkhead: Bulkhead.Bulkhead | undefined, healthyMillis: number, hangMillis: number) =>
  Effect.gen(function*() {
    let inFlight = 0
    let hung = false
    let peakWhileHung = 0
    let served = 0
    const call = Effect.suspend(() => {
      inFlight++
      const latency = Math.max(10, (10 * inFlight) / 20)
      return (hung ? Effect.never : Effect.sleep(`${latency} millis`)).pipe(
        Effect.tap(() => Effect.sync(() => void served++)),
        Effect.ensuring(Effect.sync(() => void inFlight--))
      )
    })
    const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
    for (let ms = 0; ms < healthyMillis + hangMillis; ms++) {
      if (ms === healthyMillis) hung = true
      for (let i = 0; i < 4; i++) {
        fibers.push(yield* Effect.forkChild(Effect.ignore(bulkhead === undefined ? call : bulkhead.run(call))))
      }
      yield* TestClock.adjust("1 millis")
      if (hung) peakWhileHung = Math.max(peakWhileHung, inFlight)
    }
    yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
    return { peakWhileHung, served }
  })

describe("Bulkhead.adaptive", () => {
  it.effect("under a dependency that hangs, calls in flight stay near what it served before, not the offered load", () =>
    Effect.gen(function*() {
      const unlimited = yield* simulate(undefined, 1_000, 500)
      const bulkhead = yield* Bulkhead.adaptive({ name: "temporal_client", initialLimit: 10, maxLimit: 200 })
      const limited = yield* simulate(bulkhead, 1_000, 500)
      const limitBeforeHang = bulkhead.stats().limit
      // Without a limit every offered call piles up: 4 a millisecond for 500 ms.
      assert.isAtLeast(unlimited.peakWhileHung, 2_000)
      // With it, what was in flight when it hung (the limit it had learnt, near the 20 it serves well).
      assert.isAtMost(limited.peakWhileHung, 60)
      assert.isAtLeast(limited.peakWhileHung, 10)
      assert.strictEqual(limited.peakWhileHung, Math.min(limited.peakWhileHung, limitBeforeHang))
      assert.isAbove(limited.served, 1_000)
      assert.isAbove(bulkhead.stats().rejected, 0)
    }))

  it.effect("bad options are a CircuitBreakerOptionsError naming the option", () =>
    Effect.gen(function*() {
      const tries: Array<[Partial<Bulkhead.AdaptiveOptions>, string]> = [
        [{ minLimit: 0 }, "minLimit"],
        [{ maxLimit: 0 }, "maxLimit"],
        [{ initialLimit: 500 }, "initialLimit"],
        [{ maxQueued: -1 }, "maxQueued"],
        [{ name: "" }, "name"]
      ]
      for (const [patch, option] of tries) {
        const error = yield* Effect.flip(Bulkhead.adaptive({ name: "c", ...patch } as Bulkhead.AdaptiveOptions))
        assert.instanceOf(error, CircuitBreakerOptionsError)
        assert.strictEqual(error.option, option, JSON.stringify(patch))
      }
    }))
})

describe("Bulkhead.adaptive on a fast, healthy dependency", () => {
  it.effect("calls of 950-969 µs with the limit in use keep it at its maximum, nothing rejected", () =>
    Effect.gen(function*() {
      // At its maximum, so every call is made with the limit in use (half of it or more) and teaches it.
      const bulkhead = yield* Bulkhead.adaptive({ name: "redis_client", initialLimit: 20, minLimit: 1, maxLimit: 20 })
      // 20 calls at once, each 950-969 µs, 500 rounds starting at drifting fractions of a millisecond. (The
      // bulkhead times calls in ns: the live clock's whole ms read such calls as 0 or 1 ms, a latency that
      // "doubled", and shrank the limit of a healthy Redis from 20 to 5 in npm run policies.)
      for (let round = 0; round < 500; round++) {
        const fibers = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, i) => Effect.sleep(`${950 + i} micros`).pipe(bulkhead.run)),
          (call) => Effect.forkChild(call)
        )
        yield* TestClock.adjust("1 millis")
        yield* Fiber.joinAll(fibers)
        yield* TestClock.adjust("23 micros")
      }
      assert.strictEqual(bulkhead.stats().limit, 20)
      assert.strictEqual(bulkhead.stats().rejected, 0)
    }))
})
