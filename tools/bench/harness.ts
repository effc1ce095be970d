/**
 * The measuring loop: warm-up and calibration, then rounds in which every
 * scenario runs its competitors in a rotated order, each after a `gc()`.
 * Per-round numbers are kept so that ratios and added costs are taken inside
 * one round, then summarized by their median.
 */

/** What one measurement returns: the cost per unit and the wall time it took. */
export interface Sample {
  /**
   * Time scenarios: main-thread CPU ns per call (`process.threadCpuUsage`), which other processes on a shared
   * machine disturb far less than wall time. Memory scenarios: bytes per breaker.
   */
  readonly perUnit: number
  /** Wall-clock ns per call (time scenarios only). */
  readonly wallPerUnit?: number | undefined
  /** Wall time of the timed part, in ns; drives calibration. */
  readonly totalNs: number
  /** Optional counts the scenario wants reported (e.g. admitted and rejected callers). */
  readonly counts?: Readonly<Record<string, number>> | undefined
}

export interface Case {
  /** Row label, unique inside its scenario. */
  readonly id: string
  /** The case whose cost counts as "bare" for this one (same scenario), if any. */
  readonly baseline?: string | undefined
  /** Marks a bare row: it has no added cost and no ratio. */
  readonly bare?: boolean | undefined
  /** Runs `n` iterations and reports the cost. */
  readonly run: (n: number) => Promise<Sample>
}

export interface Scenario {
  readonly id: string
  readonly title: string
  readonly unit: "ns/call" | "B/breaker"
  /** What one iteration is, for the report ("call", "batch of 1,000 calls", ...). */
  readonly iteration: string
  /** The id of our row that ratios are taken against. */
  readonly reference: string
  /** Iterations of the first calibration run, and bounds for the calibrated count. */
  readonly calibration: { readonly start: number; readonly min: number; readonly max: number } | "fixed"
  /** With `fixed` calibration: the iterations of every run. */
  readonly fixedN?: number | undefined
  readonly cases: ReadonlyArray<Case>
  readonly notes?: ReadonlyArray<string> | undefined
}

export interface Settings {
  readonly rounds: number
  /** Wall time aimed at for one measurement, in ms. */
  readonly targetMs: number
  readonly log: (line: string) => void
}

export interface CaseResult {
  readonly id: string
  readonly n: number
  /** Per round, in round order. */
  readonly perUnit: ReadonlyArray<number>
  readonly wallPerUnit: ReadonlyArray<number>
  readonly added: ReadonlyArray<number> | undefined
  readonly ratio: ReadonlyArray<number> | undefined
  readonly counts: Readonly<Record<string, number>> | undefined
}

export interface ScenarioResult {
  readonly scenario: Scenario
  readonly cases: ReadonlyArray<CaseResult>
  /** The order the cases ran in, per round. */
  readonly orders: ReadonlyArray<ReadonlyArray<string>>
}

const collect = (): void => {
  const gc = globalThis.gc
  if (typeof gc !== "function") throw new Error("gc() is not exposed: run with node --expose-gc")
  gc()
}

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return NaN
  const sorted = values.toSorted((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

// Student's t at 97.5 % (a two-sided 95 % interval) for 1 to 30 degrees of freedom; 1.96 beyond.
const T975 = [
  12.71,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.16,
  2.145,
  2.131,
  2.12,
  2.11,
  2.101,
  2.093,
  2.086,
  2.08,
  2.074,
  2.069,
  2.064,
  2.06,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042
]

/** The mean of `values` and the half-width of its 95 % confidence interval (NaN for fewer than two values). */
export const meanInterval = (values: ReadonlyArray<number>): { readonly mean: number; readonly half: number } => {
  const n = values.length
  if (n === 0) return { mean: NaN, half: NaN }
  const mean = values.reduce((a, b) => a + b, 0) / n
  if (n < 2) return { mean, half: NaN }
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)
  return { mean, half: (T975[n - 2] ?? 1.96) * Math.sqrt(variance / n) }
}

export const rotate = <A>(items: ReadonlyArray<A>, by: number): Array<A> => {
  const k = items.length === 0 ? 0 : by % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}

const measure = async (scenario: Scenario, c: Case, n: number): Promise<Sample> => {
  collect()
  try {
    return await c.run(n)
  } catch (error) {
    throw new Error(`${scenario.id} / ${c.id}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error
    })
  }
}

const calibrate = async (scenario: Scenario, c: Case, settings: Settings): Promise<number> => {
  if (scenario.calibration === "fixed") {
    const n = scenario.fixedN ?? 1
    await measure(scenario, c, n)
    return n
  }
  const { max, min, start } = scenario.calibration
  const target = settings.targetMs * 1e6
  let n = start
  // Three runs: they warm the JIT up and refine the estimate of the cost per iteration.
  for (let i = 0; i < 3; i++) {
    const sample = await measure(scenario, c, n)
    const perIteration = Math.max(sample.totalNs, 1) / n
    n = Math.min(max, Math.max(min, Math.round(target / perIteration)))
  }
  return n
}

/**
 * Runs every scenario: a warm-up that also calibrates each case's iteration
 * count, then `rounds` rounds in which each scenario's cases run in an order
 * rotated by the round number (and reversed in odd rounds).
 */
export const runAll = async (
  scenarios: ReadonlyArray<Scenario>,
  settings: Settings
): Promise<Array<ScenarioResult>> => {
  const counts = new Map<Case, number>()
  for (const scenario of scenarios) {
    for (const c of scenario.cases) {
      settings.log(`warm-up  ${scenario.id}  ${c.id}`)
      counts.set(c, await calibrate(scenario, c, settings))
    }
  }

  const samples = new Map<Case, Array<Sample>>()
  const orders = new Map<Scenario, Array<Array<string>>>()
  for (let round = 0; round < settings.rounds; round++) {
    settings.log(`round ${round + 1}/${settings.rounds}`)
    for (const scenario of scenarios) {
      // Rotated by one each round, and reversed every other round, so each case follows different neighbours.
      const rotated = rotate(scenario.cases, round)
      const order = round % 2 === 1 ? rotated.toReversed() : rotated
      orders.set(scenario, [...(orders.get(scenario) ?? []), order.map((c) => c.id)])
      for (const c of order) {
        const sample = await measure(scenario, c, counts.get(c)!)
        samples.set(c, [...(samples.get(c) ?? []), sample])
      }
    }
  }

  return scenarios.map((scenario) => {
    const byId = new Map(scenario.cases.map((c) => [c.id, samples.get(c)!] as const))
    const reference = byId.get(scenario.reference)
    return {
      scenario,
      orders: orders.get(scenario) ?? [],
      cases: scenario.cases.map((c): CaseResult => {
        const own = samples.get(c)!
        const base = c.baseline === undefined ? undefined : byId.get(c.baseline)
        if (c.baseline !== undefined && base === undefined) {
          throw new Error(`${scenario.id}: baseline ${c.baseline} of ${c.id} is not a case of the scenario`)
        }
        const last = own[own.length - 1]
        return {
          id: c.id,
          n: counts.get(c)!,
          perUnit: own.map((s) => s.perUnit),
          wallPerUnit: own.map((s) => s.wallPerUnit ?? NaN),
          added: base === undefined ? undefined : own.map((s, i) => s.perUnit - base[i]!.perUnit),
          ratio: c.bare === true || reference === undefined
            ? undefined
            : own.map((s, i) => s.perUnit / reference[i]!.perUnit),
          counts: last?.counts
        }
      })
    }
  })
}

/** Accumulates wall time and main-thread CPU time over one or more timed regions. */
export interface Stopwatch {
  start(): void
  stop(): void
  /** The sample for `units` calls timed so far. */
  sample(units: number, counts?: Readonly<Record<string, number>>): Sample
}

export const stopwatch = (): Stopwatch => {
  let wallNs = 0
  let cpuNs = 0
  let wallAt = 0n
  let cpuAt: NodeJS.CpuUsage = { user: 0, system: 0 }
  return {
    start() {
      cpuAt = process.threadCpuUsage()
      wallAt = process.hrtime.bigint()
    },
    stop() {
      const wall = process.hrtime.bigint()
      const cpu = process.threadCpuUsage(cpuAt)
      wallNs += Number(wall - wallAt)
      cpuNs += (cpu.user + cpu.system) * 1000
    },
    sample: (units, counts) => ({ perUnit: cpuNs / units, wallPerUnit: wallNs / units, totalNs: wallNs, counts })
  }
}

/** Elapsed ns since `start` (a `process.hrtime.bigint()` reading). */
export const since = (start: bigint): number => Number(process.hrtime.bigint() - start)

export const now = (): bigint => process.hrtime.bigint()
