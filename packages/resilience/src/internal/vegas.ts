/**
 * A Vegas-style concurrency limit (as Netflix's concurrency-limits describes
 * it), pure: the limit grows while calls take about the least time seen (no
 * queue at the dependency), shrinks when they take longer (a queue forms), and
 * drops by a tenth on a call that timed out. Calls made while the limit was not
 * half used teach nothing (the limit was not what held them back).
 *
 * @internal
 */

export interface VegasSettings {
  readonly minLimit: number
  readonly maxLimit: number
  /** Samples after which the no-load latency is learnt again (it may have moved). */
  readonly probeEvery: number
}

export interface VegasState {
  readonly limit: number
  /** The least latency seen since the last probe (ms); `Infinity` before the first sample. */
  readonly noLoadMillis: number
  readonly samples: number
}

export const initial = (limit: number): VegasState => ({ limit, noLoadMillis: Number.POSITIVE_INFINITY, samples: 0 })

/** Netflix's log10 steps, never below 1 (a limit under 10 still moves). */
const step = (limit: number) => Math.max(1, Math.log10(limit))

export const update = (
  settings: VegasSettings,
  state: VegasState,
  sample: { readonly millis: number; readonly inFlight: number; readonly drop: boolean }
): VegasState => {
  const samples = state.samples + 1
  const probe = samples % settings.probeEvery === 0
  const rtt = Math.max(sample.millis, 0.001)
  const noLoadMillis = probe ? rtt : Math.min(state.noLoadMillis, rtt)
  const clamp = (limit: number) => Math.min(settings.maxLimit, Math.max(settings.minLimit, limit))
  if (sample.drop) return { limit: clamp(state.limit * 0.9), noLoadMillis, samples }
  if (sample.inFlight * 2 < state.limit) return { limit: state.limit, noLoadMillis, samples }
  const queue = Math.ceil(state.limit * (1 - noLoadMillis / rtt))
  const t = step(state.limit)
  const next = queue <= t
    ? state.limit + 6 * t
    : queue < 3 * t
    ? state.limit + t
    : queue > 6 * t
    ? state.limit - t
    : state.limit
  return { limit: clamp(next), noLoadMillis, samples }
}
