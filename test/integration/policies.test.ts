/**
 * The policies composed around real Redis calls, against a private `redis-server` behind the fault proxy
 * (the scenarios of `npm run policies`, tools/policies/scenarios.ts, in a short form):
 * - an adaptive limit in front of `RedisCache.make`'s `use` while the proxy stalls: calls in flight stay at
 *   the limit reached before the stall, every call beyond it is rejected at once, none is held;
 * - a retry budget during a full outage (the proxy resets every connection): attempts reaching the proxy
 *   ÷ calls offered ≤ 1.1 plus the reserve, against exactly 3 for naive retries;
 * - hedged GETs against the proxy's slow tail: hedges sent and won, every answer the stored value, the
 *   hedges within the budget, fewer slow calls than without.
 * Counts only; the one timing is a lower bound (a held reply takes at least its delay). No server: the
 * tests fail, each with why it could not start.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { amplification, hedged, type Rig, stall, startRig } from "../../tools/policies/scenarios.ts"

let started: Rig | undefined
let startError: unknown = new Error("the rig was not started")

beforeAll(async () => {
  try {
    started = await startRig()
  } catch (error) {
    startError = error // each test fails with it (vitest would only mark them skipped)
  }
})

afterAll(async () => {
  await started?.close()
})

/** The private Redis and its proxy; throws why they could not start. */
const theRig = (): Rig => {
  if (started === undefined) throw startError
  return started
}

describe("Bulkhead.adaptive in front of RedisCache while the proxy stalls", () => {
  const settings = { rate: 300, warmMillis: 800, stallMillis: 800, everyMillis: 100 }

  it("in flight stays at the limit reached before the stall; the calls beyond it are rejected, not held", async () => {
    const run = await stall(theRig(), true, settings)
    expect(run.servedBefore).toBeGreaterThan(0)
    expect(run.limitAtStall).toBeGreaterThanOrEqual(2)
    // Nothing ends while stalled, so the limit cannot move, and in flight never passes it.
    for (const sample of run.samples) {
      expect(sample.limit).toBe(run.limitAtStall)
      expect(sample.inFlight).toBeLessThanOrEqual(run.limitAtStall)
    }
    expect(run.inFlightAtEnd).toBeGreaterThan(0)
    // The caller holds only what is in flight: every other call came back, rejected, during the stall.
    expect(run.heldAtEnd).toBe(run.inFlightAtEnd)
    expect(run.rejectedDuringStall).toBeGreaterThan(0)
    expect(run.rejectedDuringStall + run.heldAtEnd).toBe(run.offeredDuringStall)
    // Once the proxy passes again, the held calls are answered.
    expect(run.failed).toBe(0)
    expect(run.succeeded).toBeGreaterThanOrEqual(run.heldAtEnd)
  })

  it("without the limit, every call offered during the stall is held", async () => {
    const run = await stall(theRig(), false, settings)
    expect(run.offeredDuringStall).toBeGreaterThan(100)
    expect(run.heldAtEnd).toBe(run.offeredDuringStall)
    expect(run.inFlightAtEnd).toBe(run.offeredDuringStall)
    expect(run.rejectedDuringStall).toBe(0)
    expect(run.failed).toBe(0)
  })
})

describe("RetryBudget.withRetry during a full outage (the proxy resets every connection)", () => {
  const settings = { rate: 100, millis: 1_500 }

  it("naive retries: every call reaches the dependency 3 times", async () => {
    const run = await amplification(theRig(), "naive", settings)
    expect(run.offered).toBe(150)
    expect(run.attempts).toBe(3 * run.offered)
    expect(run.reached).toBe(run.attempts) // each attempt dials: the proxy counts it
  })

  it("the budget: attempts reaching the proxy ÷ calls offered ≤ 1.1 plus the reserve", async () => {
    const run = await amplification(theRig(), "budget", settings)
    expect(run.reached).toBe(run.attempts)
    expect(run.reached).toBeGreaterThan(run.offered) // some retries (the reserve, the ratio) were made
    expect(run.reached / run.offered).toBeLessThanOrEqual(1.1 + run.reserve / run.offered)
    expect(run.denied).toBeGreaterThan(0)
  })
})

describe("Hedge over a pool of Redis connections against the proxy's slow tail", () => {
  const settings = { rate: 200, millis: 1_500, pool: 8, fraction: 0.05, delayMs: 200 }

  it("hedges are sent and won, each answer is the stored value, within the budget; fewer slow calls", async () => {
    const plain = await hedged(theRig(), undefined, settings)
    expect(plain.calls).toBe(300)
    expect(plain.allCorrect).toBe(true)
    expect(plain.repliesDelayed).toBeGreaterThan(0)
    // Each held reply made at least one call slow (a lower bound on time: never flaky).
    expect(plain.slowCalls).toBeGreaterThanOrEqual(plain.repliesDelayed)
    expect(plain.serverGets).toBe(plain.calls)

    const run = await hedged(theRig(), { percentile: 0.9, minDelayMillis: 20 }, settings)
    expect(run.calls).toBe(300)
    expect(run.allCorrect).toBe(true) // the answer kept is the first one, and a right one
    expect(run.hedged).toBeGreaterThan(0)
    expect(run.hedgesWon).toBeGreaterThan(0)
    expect(run.hedgesWon).toBeLessThanOrEqual(run.hedged)
    // Hedges take from a budget of 10 % of the calls plus its reserve (1/s over a 10 s window).
    expect(run.hedged).toBeLessThanOrEqual(Math.floor(0.1 * run.calls + 10))
    // Redis served the calls and the hedges (a hedge that lost before it was sent is not served).
    expect(run.serverGets).toBeGreaterThanOrEqual(run.calls)
    expect(run.serverGets).toBeLessThanOrEqual(run.calls + run.hedged)
    expect(run.slowCalls).toBeLessThan(plain.slowCalls)
  })
})
