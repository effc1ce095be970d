/**
 * The short version of the crash scenario of `npm run chaos` (see chaos/crash.ts and
 * docs/reliability.md): the service's own process SIGKILLed twice under load, once with a
 * backlog queued while Kafka is out and once mid-drain, and started again against the same
 * real servers. A server that cannot start, or a service process that does not boot, fails
 * the test (runCrash throws).
 */
import { describe, expect, it } from "vitest"
import { runCrash } from "../../tools/chaos/crash.ts"

describe("chaos: the service process killed and restarted", () => {
  it(
    "nothing lost, nothing duplicated beyond what the key collapses, the restarted process drains the backlog",
    async () => {
      const report = await runCrash({ durationMs: 30_000, rate: 8 })
      const invariants = Object.fromEntries(report.invariants.map((i) => [i.id, i]))
      const check = (id: string) =>
        expect(invariants[id]?.ok, `(${id}) ${invariants[id]?.name}: ${invariants[id]?.detail}`).toBe(true)

      // (e1) two SIGKILLs, each with tickets pending in MongoDB, and the process came back each time
      check("e1")
      expect(report.kills.map((k) => k.kafka)).toEqual(["refusing", "slow"])
      for (const kill of report.kills) expect(kill.pendingAtKill).toBeGreaterThan(0)
      // (e2) every plan answered, the cut-off ones on a retry with the same id
      check("e2")
      expect(report.requests.cutOff).toBeGreaterThan(0)
      // (e3) nothing lost
      check("e3")
      expect(report.tickets.lost).toBe(0)
      expect(report.requests.accepted).toBeGreaterThan(0)
      expect(report.requests.queued).toBeGreaterThan(0)
      // (e4) one ticket per plan; Kafka duplicates only as the same key with the same bytes
      check("e4")
      expect(report.tickets.duplicatedInMongo).toBe(0)
      expect(report.tickets.differingInKafka).toBe(0)
      // (e5) refused plans left nothing
      check("e5")
      // (e6) the backlog the killed process left was published by the restarted one
      check("e6")
      expect(report.backlog.left).toBe(0)
      expect(report.ok).toBe(true)
    },
    420_000
  )
})
