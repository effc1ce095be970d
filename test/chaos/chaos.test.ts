/**
 * The short version of `npm run chaos` (see chaos/harness.ts and docs/reliability.md):
 * 40 seconds of plans at 8 per second against private real servers while every server
 * is crashed, hung, stalled, cut or slowed in turn, then every invariant checked from
 * the servers themselves. A server that cannot start fails the test (runChaos throws).
 * Invariants only: nothing here depends on how fast a loaded machine is.
 */
import { describe, expect, it } from "vitest"
import { runChaos } from "./harness.ts"

describe("chaos under load (short)", () => {
  it(
    "no ticket lost or duplicated, every failure typed, every breaker closed again, metrics and logs agree",
    async () => {
      const report = await runChaos({
        durationMs: 40_000,
        rate: 8,
        // The faults and the verdict are printed; the 5-second progress lines are not.
        log: (line) => {
          if (!/^chaos: t=\s*\d+ s sent/.test(line)) console.log(line)
        }
      })
      const invariants = Object.fromEntries(report.invariants.map((i) => [i.id, i]))
      const check = (id: string) =>
        expect(invariants[id]?.ok, `(${id}) ${invariants[id]?.name}: ${invariants[id]?.detail}`)
          .toBe(true)

      // (a) every accepted ticket is in Kafka and in MongoDB exactly once
      check("a")
      expect(report.tickets.lost).toBe(0)
      expect(report.tickets.duplicated).toBe(0)
      expect(report.requests.accepted).toBeGreaterThan(0)
      // (b) every other plan got 502/503 with a typed step report
      check("b")
      expect(report.requests.violations).toBe(0)
      expect(report.requests.rejected + report.requests.failed).toBeGreaterThan(0)
      // (c) no call outlived its timeout
      check("c")
      expect(report.latency.max).toBeLessThanOrEqual(report.latencyBoundMs)
      // (d) no unhandled rejection, uncaught exception or logged defect
      check("d")
      // (e) every breaker CLOSED at the end
      check("e")
      // (f) metrics agree with the logged transitions, and every breaker did trip
      check("f")
      for (const circuit of report.circuits) expect(circuit.trips, circuit.circuit).toBeGreaterThan(0)
      // (g) memory back to its baseline
      check("g")
      // (h) two fail-fast breakers out at once
      check("h")
      expect(report.overlap.maxNotClosedFailFast).toBeGreaterThanOrEqual(2)
      // (i) the schedule ran: every fault injected and lifted
      check("i")
      expect(report.faults.every((f) => f.injectedAtMs !== undefined && f.liftDoneAtMs !== undefined)).toBe(true)
      expect(report.ok).toBe(true)
    },
    240_000
  )
})
