/**
 * The board's view of each circuit's policies (bulkhead or adaptive limit,
 * retry budget, hedge), read from their counters once per `stats` event.
 *
 * @internal
 */
import type { Registry } from "@neural-hive/resilience"
import type { PolicyStats } from "../Board.ts"

/** Every circuit's policies, by circuit. @internal */
export const policyStats = (
  entries: ReadonlyArray<Registry.CircuitPolicies>
): Record<string, PolicyStats> => {
  const out: Record<string, PolicyStats> = {}
  for (const { circuit, policies } of entries) {
    const b = policies.bulkhead?.stats()
    const r = policies.retryBudget?.stats()
    const h = policies.hedge?.stats()
    out[circuit] = {
      ...(b === undefined ? {} : {
        bulkhead: {
          limit: b.limit,
          minLimit: b.minLimit,
          maxLimit: b.maxLimit,
          inFlight: b.inFlight,
          queued: b.queued,
          admitted: b.admitted,
          rejected: b.rejected
        }
      }),
      ...(r === undefined ? {} : { retry: { available: r.available, retries: r.retriesTotal, denied: r.denied } }),
      ...(h === undefined ? {} : {
        hedge: {
          sent: h.hedged,
          won: h.hedgesWon,
          denied: h.denied,
          delayMillis: Number.isFinite(h.delayMillis) ? h.delayMillis : null
        }
      })
    }
  }
  return out
}
