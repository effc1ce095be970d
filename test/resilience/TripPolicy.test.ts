/**
 * The trip policies' counters, driven directly.
 */
import { describe, expect, it } from "@effect/vitest"
import { TripPolicy } from "@neural-hive/resilience"

describe("TripPolicy.consecutive", () => {
  it("trips on the failMax-th failure in a row; a success restarts the count", () => {
    const counter = TripPolicy.consecutive(3).counter()
    expect([counter.failure(0), counter.failure(0)]).toEqual([false, false])
    expect(counter.success(0)).toBe(false)
    expect(counter.failures(0)).toBe(0)
    expect([counter.failure(0), counter.failure(0), counter.failure(0)]).toEqual([false, false, true])
    counter.reset()
    expect(counter.failures(0)).toBe(0)
  })
})

describe("TripPolicy.failureRate", () => {
  it("decides on every outcome once minimumCalls were recorded, over the last size calls", () => {
    const counter = TripPolicy.failureRate({ threshold: 0.5, size: 4, minimumCalls: 3 }).counter()
    expect(counter.failure(0)).toBe(false) // 1 call
    expect(counter.success(0)).toBe(false) // 2 calls
    expect(counter.success(0)).toBe(false) // 1 of 3
    expect(counter.failure(0)).toBe(true) // 2 of 4: 50%
    expect(counter.failures(0)).toBe(2)
  })

  it("slides: failures older than the last size calls leave the ratio", () => {
    const counter = TripPolicy.failureRate({ threshold: 0.75, size: 4 }).counter()
    counter.failure(0)
    counter.failure(0)
    counter.success(0)
    expect(counter.success(0)).toBe(false) // [F F S S]: 50%
    expect(counter.success(0)).toBe(false) // [F S S S]
    expect(counter.failures(0)).toBe(1)
    counter.failure(0)
    counter.failure(0)
    expect(counter.failure(0)).toBe(true) // [S F F F]: 75%
    counter.reset()
    expect(counter.failures(0)).toBe(0)
    expect(counter.failure(0)).toBe(false) // 1 call again, below minimumCalls (size)
  })

  it("defaults minimumCalls to size", () => {
    expect(TripPolicy.failureRate({ threshold: 1, size: 7 }).minimumCalls).toBe(7)
  })
})

describe("TripPolicy.failureRateOverTime", () => {
  it("accepts the window as a duration or milliseconds", () => {
    expect(TripPolicy.failureRateOverTime({ threshold: 0.5, window: "1 minute", minimumCalls: 1 }).windowMillis)
      .toBe(60_000)
    expect(TripPolicy.failureRateOverTime({ threshold: 0.5, window: 500, minimumCalls: 1 }).windowMillis).toBe(500)
  })

  it("decides on every outcome inside the window; buckets older than the window are forgotten", () => {
    const counter = TripPolicy.failureRateOverTime({ threshold: 0.5, window: "10 seconds", minimumCalls: 4 })
      .counter()
    expect(counter.failure(0)).toBe(false)
    expect(counter.failure(1_000)).toBe(false)
    expect(counter.success(2_000)).toBe(false) // 3 calls
    expect(counter.success(3_000)).toBe(true) // 2 of 4: 50%, decided on a success
    counter.reset()
    counter.failure(0)
    counter.failure(1_000)
    expect(counter.failures(10_500)).toBe(1) // the first bucket left the window
    expect(counter.failures(11_500)).toBe(0)
    expect(counter.success(12_000)).toBe(false)
    expect(counter.success(12_100)).toBe(false)
    expect(counter.failure(12_200)).toBe(false) // 1 of 3
    expect(counter.failure(12_300)).toBe(true) // 2 of 4
  })

  it("a gap longer than the whole window clears every bucket at once", () => {
    const counter = TripPolicy.failureRateOverTime({ threshold: 0.1, window: 1_000, minimumCalls: 1, buckets: 4 })
      .counter()
    for (let t = 0; t < 1_000; t += 100) counter.success(t)
    counter.failure(999)
    expect(counter.failures(999)).toBe(1)
    expect(counter.failures(1e9)).toBe(0)
    expect(counter.failure(1e9)).toBe(true) // 1 of 1: the old successes are gone
  })
})

describe("TripPolicy values", () => {
  it("describe themselves: tag, parameters, and whether their counter needs the clock", () => {
    expect(TripPolicy.consecutive(3)).toMatchObject({ _tag: "Consecutive", failMax: 3, usesClock: false })
    expect(TripPolicy.failureRate({ threshold: 0.5, size: 10, minimumCalls: 4 })).toMatchObject({
      _tag: "FailureRate",
      threshold: 0.5,
      size: 10,
      minimumCalls: 4,
      usesClock: false
    })
    expect(TripPolicy.failureRateOverTime({ threshold: 0.5, window: "1 minute", minimumCalls: 4 })).toMatchObject({
      _tag: "FailureRateOverTime",
      threshold: 0.5,
      windowMillis: 60_000,
      minimumCalls: 4,
      buckets: 10,
      usesClock: true
    })
  })

  it("a window that is not a duration is NaN (the breaker refuses such a policy)", () => {
    expect(TripPolicy.failureRateOverTime({ threshold: 1, window: "soon" as never, minimumCalls: 1 }).windowMillis)
      .toBeNaN()
  })
})

describe("TripPolicy.failureRate at its edges", () => {
  it("after a reset the old outcomes are gone, also once the ring is full again", () => {
    const counter = TripPolicy.failureRate({ threshold: 0.5, size: 2 }).counter()
    counter.failure(0)
    counter.failure(0)
    counter.reset()
    expect([counter.success(0), counter.success(0)]).toEqual([false, false])
    expect(counter.success(0)).toBe(false) // [S S]: a stale failure in the ring would show here
    expect(counter.failures(0)).toBe(0)
  })

  it("decides as soon as minimumCalls calls were recorded", () => {
    const counter = TripPolicy.failureRate({ threshold: 1, size: 10, minimumCalls: 3 }).counter()
    expect([counter.failure(0), counter.failure(0), counter.failure(0)]).toEqual([false, false, true])
  })
})

describe("TripPolicy.failureRateOverTime buckets", () => {
  it("each bucket leaves the window whole, one bucket width at a time, and a jump clears every bucket it passes", () => {
    const counter = TripPolicy.failureRateOverTime({ threshold: 1, window: 1_000, minimumCalls: 100, buckets: 4 })
      .counter()
    for (const t of [0, 250, 500, 750]) counter.failure(t)
    expect(counter.failures(999)).toBe(4)
    expect(counter.failures(500)).toBe(4) // an earlier time changes nothing
    expect(counter.failures(1_000)).toBe(3) // the bucket [0, 250) left
    expect(counter.failures(1_249)).toBe(3)
    expect(counter.failures(1_500)).toBe(1) // [250, 750) left at once; [750, 1000) is still inside
    expect(counter.failures(1_750)).toBe(0)
  })

  it("below the threshold it stays closed, however many calls", () => {
    const counter = TripPolicy.failureRateOverTime({ threshold: 0.5, window: 1_000, minimumCalls: 2 }).counter()
    expect([counter.success(0), counter.success(1), counter.failure(2)]).toEqual([false, false, false])
    expect(counter.failure(3)).toBe(true) // 2 of 4
  })

  it("a success also moves the window before it is counted", () => {
    const counter = TripPolicy.failureRateOverTime({ threshold: 0.5, window: 1_000, minimumCalls: 2, buckets: 4 })
      .counter()
    counter.failure(0)
    expect(counter.success(1_000)).toBe(false) // the failure left: 1 call, below minimumCalls
    expect(counter.failure(1_000)).toBe(true) // 1 of 2
  })
})
