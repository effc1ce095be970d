/**
 * The short version of `npm run chaos` (see chaos/harness.ts and docs/reliability.md):
 * 40 seconds of plans at 8 per second against private real servers while every server
 * is crashed, hung, stalled, cut or slowed in turn, then every invariant checked from
 * the servers themselves. A server that cannot start fails the test (runChaos throws).
 * Invariants only: nothing here depends on how fast a loaded machine is.
 */
import { describe, expect, it } from "vitest"
import { runChaos } from "../../tools/chaos/harness.ts"

describe("chaos under load (short)", () => {
  it(
    "no accepted ticket lost, none refused for Kafka, refused plans leave nothing, the outbox drains, every breaker closes",
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
        expect(invariants[id]?.ok, `(${id}) ${invariants[id]?.name}: ${invariants[id]?.detail}`).toBe(true)

      // (a) every accepted ticket is in Kafka (Kafka duplicates are allowed) and in MongoDB exactly once
      check("a")
      expect(report.tickets.lost).toBe(0)
      expect(report.tickets.duplicatedInMongo).toBe(0)
      expect(report.requests.accepted).toBeGreaterThan(0)
      // (b) no plan refused or failed because of Kafka, though Kafka was down: its tickets were queued
      check("b")
      expect(report.requests.queued).toBe(report.requests.accepted)
      expect(report.circuits.find((c) => c.circuit === "kafka_producer")?.trips).toBeGreaterThan(0)
      // (c) plans not accepted left no ticket and no RUNNING workflow
      check("c")
      // (n) plans sent twice (concurrently, or after the client gave up): no accepted plan's workflow terminated
      check("n")
      expect(report.requests.retried).toBeGreaterThan(0)
      expect(report.requests.retriedAccepted).toBeGreaterThan(0)
      expect(report.leftovers.checked).toBe(report.requests.rejected + report.requests.failed)
      expect(report.leftovers.checked).toBeGreaterThan(0)
      // (d) the outbox drained after Kafka came back, and before shutdown
      check("d")
      expect(report.backlog.maxPending).toBeGreaterThan(0)
      expect(report.backlog.pendingInMongo).toBe(0)
      // (e) every plan answered 202, or 502/503 with a typed step report
      check("e")
      expect(report.requests.violations).toBe(0)
      // (f) no call outlived its timeout
      check("f")
      expect(report.latency.max).toBeLessThanOrEqual(report.latencyBoundMs)
      // (g) no unhandled rejection, uncaught exception or logged defect
      check("g")
      // (h) every breaker CLOSED at the end
      check("h")
      // (i) metrics agree with the logged transitions, and every breaker did trip
      check("i")
      for (const circuit of report.circuits) expect(circuit.trips, circuit.circuit).toBeGreaterThan(0)
      // (j) memory back to its baseline
      check("j")
      // (k) two fail-fast breakers out at once
      check("k")
      expect(report.overlap.maxNotClosedFailFast).toBeGreaterThanOrEqual(2)
      // (l) the schedule ran: every fault injected and lifted
      check("l")
      expect(report.faults.every((f) => f.injectedAtMs !== undefined && f.liftDoneAtMs !== undefined)).toBe(true)
      expect(report.ok).toBe(true)
    },
    300_000
  )
})
