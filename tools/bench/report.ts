/**
 * Turns the per-round results into the console tables, the target verdicts
 * and docs/performance.md.
 */
import * as os from "node:os"
import type { Ceiling } from "./ceiling.ts"
import type { CaseResult, ScenarioResult } from "./harness.ts"
import { meanInterval, median } from "./harness.ts"
import { type BreakerPath, PATH_ORDER, pathFigure, type PathRun } from "./paths.ts"
import type { PlanProfile } from "./planProfile.ts"
import type { BreakersRow, ServiceRun, ServiceSettings } from "./scaling.ts"
import { BREAKERS, CONCURRENCY, HALF_OPEN_CALLERS, ID, OBSERVABILITY_VARIANT, SCENARIO } from "./scenarios.ts"

/** What `tools/bench/scaling.ts` measured (empty when left out of the run). */
export interface Scaling {
  readonly breakers: ReadonlyArray<BreakersRow>
  readonly service: ReadonlyArray<ServiceRun>
  readonly serviceSettings: Omit<ServiceSettings, "log">
  /** The fast path and the public path, each in child processes (`tools/bench/paths.ts`; empty when left out). */
  readonly paths: ReadonlyArray<PathRun>
  /** Each real server's standalone rate and the service against them (`tools/bench/ceiling.ts`; absent when left out). */
  readonly ceiling?: Ceiling | undefined
  /** The embedded service under `node --cpu-prof` (`tools/bench/planProfile.ts`; absent when left out). */
  readonly profile?: PlanProfile | undefined
}

export interface Environment {
  readonly date: string
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  /** This process's breaker call path: the `reason` of `packages/resilience/src/internal/fastPath.ts`. */
  readonly breakerPath: string
  readonly packages: ReadonlyArray<readonly [string, string]>
  readonly commit: string
  /** The 1-minute load average at the start, before the service runs, and at the end of the run. */
  readonly load: readonly [number, number, number]
  readonly rounds: number
  readonly targetMs: number
  readonly quick: boolean
  readonly durationSeconds: number
  readonly command: string
}

// -----------------------------------------------------------------------------
// numbers
// -----------------------------------------------------------------------------

const fmt = (value: number, unit: string): string => {
  if (!Number.isFinite(value)) return "n/a"
  if (unit === "B/breaker") return Math.round(value).toLocaleString("en-US")
  const abs = Math.abs(value)
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

const signed = (value: number, unit: string): string => (value > 0 ? "+" : "") + fmt(value, unit)

const ratio = (value: number): string => Number.isFinite(value) ? `${value.toFixed(2)}×` : "n/a"

const range = (values: ReadonlyArray<number>, unit: string): string =>
  `${fmt(Math.min(...values), unit)} – ${fmt(Math.max(...values), unit)}`

const find = (results: ReadonlyArray<ScenarioResult>, scenario: string, id: string): CaseResult | undefined =>
  results.find((r) => r.scenario.id === scenario)?.cases.find((c) => c.id === id)

const cost = (c: CaseResult | undefined): number => c === undefined ? NaN : median(c.perUnit)
const added = (c: CaseResult | undefined): number => c?.added === undefined ? NaN : median(c.added)

// -----------------------------------------------------------------------------
// targets
// -----------------------------------------------------------------------------

export interface Verdict {
  readonly target: string
  readonly measured: string
  readonly met: boolean
  /** A check beyond the issue's targets (another API or configuration of ours). */
  readonly extra?: true | undefined
}

export const verdicts = (results: ReadonlyArray<ScenarioResult>, scaling: Scaling): Array<Verdict> => {
  const out: Array<Verdict> = []
  const ns = (v: number) => `${fmt(v, "ns/call")} ns`

  const oursAdded = added(find(results, SCENARIO.closedEffect, ID.ours))
  out.push({
    target: "Closed path, guard built per call: at most 150 ns added per call over bare Effect",
    measured: `${ns(oursAdded)} added (${ns(cost(find(results, SCENARIO.closedEffect, ID.ours)))} vs ${
      ns(cost(find(results, SCENARIO.closedEffect, ID.bareEffect)))
    } bare), scenario 1a`,
    met: oursAdded <= 150
  })
  const onceAdded = added(find(results, SCENARIO.closedEffect, ID.oursOnce))
  out.push({
    target: "Closed path, guard built once: at most 100 ns added per call over bare Effect",
    measured: `${ns(onceAdded)} added, scenario 1a`,
    met: onceAdded <= 100
  })
  for (const id of [ID.oursExecute, ID.oursPromise]) {
    const promiseAdded = added(find(results, SCENARIO.closedPromise, id))
    out.push({
      target: `Closed path, Promise (${id}): at most 80 ns added per call over bare Promise`,
      measured: `${ns(promiseAdded)} added, scenario 1b`,
      met: promiseAdded <= 80
    })
  }
  const rejections = [[ID.ours, "over bare `Effect.fail`"], [ID.oursExecute, "over bare `Promise.reject`"]] as const
  for (const [id, where] of rejections) {
    const rejectionAdded = added(find(results, SCENARIO.rejection, id))
    out.push({
      target: `Rejection (${id}): at most 500 ns added per rejected call, no stack capture`,
      measured: `${ns(rejectionAdded)} added (${where}), scenario 3`,
      met: rejectionAdded <= 500
    })
  }

  const closedRivals: ReadonlyArray<readonly [string, CaseResult | undefined, string]> = [
    [ID.effect, find(results, SCENARIO.closedEffect, ID.effect), "1a, built per call too, over bare Effect"],
    [ID.opossumNoTimeout, find(results, SCENARIO.closedPromise, ID.opossumNoTimeout), "1b, over bare Promise"],
    [ID.opossumDefaults, find(results, SCENARIO.closedPromise, ID.opossumDefaults), "1b, over bare Promise"],
    [ID.cockatiel, find(results, SCENARIO.closedPromise, ID.cockatiel), "1b, over bare Promise"]
  ]
  for (const [id, rival, where] of closedRivals) {
    const theirs = added(rival)
    out.push({
      target: `Closed path: less added than ${id}`,
      measured: `ours ${ns(oursAdded)} (1a) vs ${ns(theirs)} (${where})`,
      met: oursAdded < theirs
    })
  }
  // Same call on both sides: the Promise-based call of scenario 1b.
  const onPromiseAdded = added(find(results, SCENARIO.closedPromise, ID.ours))
  for (const id of [ID.effect, ID.opossumNoTimeout, ID.opossumDefaults, ID.cockatiel]) {
    const theirs = added(find(results, SCENARIO.closedPromise, id))
    out.push({
      target: `Closed path on the Promise call (1b): ${ID.ours} over \`Effect.promise\` adds less than ${id}`,
      measured: `${ns(onPromiseAdded)} vs ${ns(theirs)}`,
      met: onPromiseAdded < theirs,
      extra: true
    })
  }
  const facadeAdded = added(find(results, SCENARIO.closedPromise, ID.oursPromise))
  for (const id of [ID.opossumNoTimeout, ID.opossumDefaults, ID.cockatiel]) {
    const theirs = added(find(results, SCENARIO.closedPromise, id))
    out.push({
      target: `Closed path on the Promise call (1b): ${ID.oursPromise} adds less than ${id}`,
      measured: `${ns(facadeAdded)} vs ${ns(theirs)} (over bare Promise)`,
      met: facadeAdded < theirs,
      extra: true
    })
  }

  const rejection = cost(find(results, SCENARIO.rejection, ID.ours))
  for (const id of [ID.effect, ID.opossumNoTimeout, ID.opossumDefaults, ID.cockatiel]) {
    const theirs = cost(find(results, SCENARIO.rejection, id))
    out.push({
      target: `Rejection: faster than ${id}`,
      measured: `ours ${ns(rejection)} vs ${ns(theirs)}`,
      met: rejection < theirs
    })
  }
  const facadeRejection = cost(find(results, SCENARIO.rejection, ID.oursPromise))
  out.push({
    target: `Rejection: ${ID.oursPromise} under 1 µs and faster than opossum and cockatiel`,
    measured: `${ns(facadeRejection)} vs opossum ${
      ns(Math.min(
        cost(find(results, SCENARIO.rejection, ID.opossumNoTimeout)),
        cost(find(results, SCENARIO.rejection, ID.opossumDefaults))
      ))
    }, cockatiel ${ns(cost(find(results, SCENARIO.rejection, ID.cockatiel)))}`,
    met: facadeRejection < 1000 &&
      facadeRejection < cost(find(results, SCENARIO.rejection, ID.opossumNoTimeout)) &&
      facadeRejection < cost(find(results, SCENARIO.rejection, ID.opossumDefaults)) &&
      facadeRejection < cost(find(results, SCENARIO.rejection, ID.cockatiel)),
    extra: true
  })

  const bytes = cost(find(results, SCENARIO.memory, ID.oursBreaker))
  out.push({
    target: "Memory: under 1 KB per breaker",
    measured: `${fmt(bytes, "B/breaker")} B per breaker (${BREAKERS.toLocaleString("en-US")} breakers)`,
    met: bytes < 1024
  })

  const plain = find(results, SCENARIO.observability, ID.ours)
  const observedCost = (id: string, target: string, extra?: true) => {
    const observed = find(results, SCENARIO.observability, id)
    const factor = median(
      plain?.added !== undefined && observed?.added !== undefined
        ? observed.added.map((a, i) => a / plain.added![i]!)
        : []
    )
    out.push({
      target,
      measured: `${ns(added(observed))} added vs ${ns(added(plain))} without: ${
        ratio(factor)
      } (median per-round ratio, scenario 6)`,
      met: factor <= 2,
      extra
    })
  }
  observedCost(ID.oursObserved, "With metrics attached: at most 2× the closed-path added cost")
  observedCost(
    ID.oursObservedNoHistogram,
    "With metrics attached, histogram off (`Metrics.layer({ histogram: false })`): at most 2× the closed-path " +
      "added cost",
    true
  )
  const scrapeTarget = (breakers: number, ms: number) => {
    const row = scaling.breakers.find((b) => b.breakers === breakers)
    if (row === undefined) return
    out.push({
      target: `Scaling: a \`/metrics\` scrape of ${count(breakers)} breakers in under ${ms} ms`,
      measured: `${row.scrapeMs.toFixed(2)} ms median, ${row.scrapeP99Ms.toFixed(2)} ms p99 (${
        count(row.scrapeBytes)
      } B)`,
      met: row.scrapeMs < ms
    })
  }
  scrapeTarget(1_000, 10)
  scrapeTarget(10_000, 100)
  const largest = scaling.breakers.at(-1)
  if (largest !== undefined && largest.breakers >= 1_000) {
    out.push({
      target: "Memory with `Metrics.layer` attached: at most 2 KB per breaker",
      measured: `${count(Math.round(largest.bytesPerBreaker))} B per breaker (${count(largest.breakers)} breakers; ${
        count(Math.round(largest.bareBytesPerBreaker))
      } B without the metrics)`,
      met: largest.bytesPerBreaker <= 2048
    })
  }
  const flat = (scenario: string, what: string, prefix: string) => {
    // Rows run from the smallest window (or fewest calls in flight) to the largest.
    const rows =
      results.find((r) => r.scenario.id === scenario)?.cases.filter((c) =>
        c.added !== undefined && c.id.startsWith(prefix)
      ) ?? []
    if (rows.length < 2) return
    const costs = rows.map((c) => median(c.added!))
    const smallest = costs[0]!
    const largest = costs[costs.length - 1]!
    out.push({
      target: `Scaling: per-call cost flat across ${what}`,
      measured: `added ${fmt(smallest, "ns/call")} ns at the smallest, ${
        fmt(largest, "ns/call")
      } ns at the largest (all rows ${fmt(Math.min(...costs), "ns/call")} – ${fmt(Math.max(...costs), "ns/call")} ns)`,
      // Flat: the largest costs no more than the smallest, with 1.5x and 50 ns for this machine's noise.
      met: largest <= Math.max(1.5 * smallest, smallest + 50)
    })
  }
  flat(SCENARIO.policies, "`failureRate` windows of 10 to 10,000 calls (scenario 7)", "failureRate,")
  flat(SCENARIO.policies, "`failureRateOverTime` windows of 1 s to 1 h (scenario 7)", "failureRateOverTime,")
  flat(SCENARIO.concurrency, `${CONCURRENCY.map(count).join(" / ")} calls in flight (scenario 8)`, "")
  if (scaling.service.length > 0) {
    const summary = serviceSummary(scaling.service)
    const bound = serviceBound(results, scaling.service)
    out.push({
      target: "Service: the breakers cost at most 1 % of the example's throughput and of its CPU per plan",
      measured: `${percentInterval(summary.cost)} fewer plans/s, ${
        percentInterval(summary.cpuCost)
      } more CPU per plan (mean of ${summary.on.length} alternating pairs, 95 % interval); bound ${
        bound.percent.toFixed(2)
      } %: ${bound.callsPerPlan.toFixed(1)} breaker calls per plan × ${fmt(bound.perCallNs, "ns/call")} ns (1b) ÷ ${
        fmt(bound.cpuPerPlanUs, "ns/call")
      } µs of service CPU per plan`,
      // Met when the whole interval is within 1 %: a mean of 0.5 % ± 2 % shows nothing.
      met: summary.cost.mean + summary.cost.half <= 1 && summary.cpuCost.mean + summary.cpuCost.half <= 1
    })
    out.push({
      target: "Service: at most 500 µs of CPU per plan with embedded dependencies (breakers on)",
      measured: `${
        fmt(median(summary.on.map((r) => r.cpuPerPlanUs)), "ns/call")
      } µs (median of ${summary.on.length} runs)`,
      met: median(summary.on.map((r) => r.cpuPerPlanUs)) <= 500
    })
  }
  const ceiling = scaling.ceiling
  if (ceiling !== undefined) {
    out.push({
      target: "Real servers: the service at 80 % or more of the slowest server's ceiling",
      measured:
        `${fmt(ceiling.service.sustainedPerSecond, "ns/call")} plans/s accepted and published (${
          fmt(ceiling.service.plansPerSecond, "ns/call")
        } accepted, ${fmt(ceiling.service.publishedPerSecond, "ns/call")} published) = ${
          (100 * ceiling.fraction).toFixed(0)
        } % of ${ceiling.slowest.server}'s ${fmt(ceiling.slowest.plansPerSecond, "ns/call")} plans/s (${
          fmt(ceiling.slowest.opsPerSecond, "ns/call")
        } calls/s standalone, ${ceiling.slowest.operation}, ÷ ${ceiling.slowest.callsPerPlan.toFixed(2)} per plan); ` +
        `the ${ceiling.cores} cores allow ${fmt(ceiling.service.cpuBoundPlansPerSecond, "ns/call")} plans/s at the ` +
        `${fmt(ceiling.service.machineCpuPerPlanUs, "ns/call")} µs of CPU a plan costs the service, the servers and ` +
        `the load together: the service ran at ${(100 * ceiling.service.cpuBoundFraction).toFixed(0)} % of that`,
      met: ceiling.fraction >= 0.8
    })
  }
  // A partial run (BENCH_ONLY) lacks some scenarios: leave out the targets it cannot judge.
  return out.filter((v) => !v.measured.includes("n/a"))
}

// -----------------------------------------------------------------------------
// tables
// -----------------------------------------------------------------------------

interface Table {
  readonly header: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
}

const scenarioTable = (result: ScenarioResult): Table => {
  const { scenario } = result
  const unit = scenario.unit
  const memory = unit === "B/breaker"
  const halfOpen = scenario.id === SCENARIO.halfOpen
  const header = [
    "Competitor",
    memory ? "Median B/breaker" : "Median ns/call (CPU)",
    "Min – max over rounds",
    ...(memory ? [] : ["Median ns/call (wall)", "Added over bare (median)"]),
    "Ratio to ours (median)",
    ...(halfOpen ? ["Batch of 10,000, wall (ms)", "Admitted / rejected per batch"] : []),
    "Iterations per measurement"
  ]
  const rows = result.cases.map((c) => {
    const unitCost = median(c.perUnit)
    return [
      c.id === scenario.reference ? `**${c.id}**` : c.id,
      fmt(unitCost, unit),
      range(c.perUnit, unit),
      ...(memory
        ? []
        : [fmt(median(c.wallPerUnit), unit), c.added === undefined ? "—" : signed(median(c.added), unit)]),
      c.ratio === undefined ? "—" : ratio(median(c.ratio)),
      ...(halfOpen
        ? [
          (median(c.wallPerUnit) * HALF_OPEN_CALLERS / 1e6).toFixed(2),
          c.counts === undefined
            ? "—"
            : `${c.counts["admitted per batch"]?.toLocaleString("en-US")} / ${
              c.counts["rejected per batch"]?.toLocaleString("en-US")
            }`
        ]
        : []),
      `${c.n.toLocaleString("en-US")} × ${scenario.iteration}`
    ]
  })
  return { header, rows }
}

const markdownLine = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`

const markdownTable = (table: Table): string =>
  [markdownLine(table.header), markdownLine(table.header.map(() => "---")), ...table.rows.map(markdownLine)].join("\n")

const plain = (s: string) => s.replaceAll("**", "")

const consoleTable = (table: Table): string => {
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((r) => plain(r[i]!).length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? plain(c).padEnd(widths[i]!) : plain(c).padStart(widths[i]!))).join("  ")
  return [line(table.header), widths.map((w) => "-".repeat(w)).join("  "), ...table.rows.map(line)].join("\n")
}

// -----------------------------------------------------------------------------
// how cost grows
// -----------------------------------------------------------------------------

const count = (n: number) => n.toLocaleString("en-US")

/** Per-call added cost of each row of a scaling scenario, with its spread over rounds. */
const addedRows = (result: ScenarioResult | undefined, label: (c: CaseResult) => string) =>
  (result?.cases ?? []).filter((c) => c.added !== undefined).map((c) => [
    label(c),
    signed(median(c.added!), "ns/call"),
    range(c.added!, "ns/call"),
    fmt(median(c.perUnit), "ns/call")
  ])

const concurrencyLabel = (c: CaseResult) => {
  const match = /, ([\d,]+) in flight$/.exec(c.id)
  return `${match === null ? count(1_000) : match[1]} in flight`
}

interface ServiceSummary {
  readonly on: ReadonlyArray<ServiceRun>
  readonly disabled: ReadonlyArray<ServiceRun>
  /** (disabled − on) ÷ disabled plans/s, each round's pair taken together: mean and 95 % half-width. */
  readonly cost: { readonly mean: number; readonly half: number }
  /** (on − disabled) ÷ disabled service CPU per plan: the share of its work the breakers add; mean and half-width. */
  readonly cpuCost: { readonly mean: number; readonly half: number }
}

const serviceSummary = (runs: ReadonlyArray<ServiceRun>): ServiceSummary => {
  const on = runs.filter((r) => r.breakers === "on")
  const disabled = runs.filter((r) => r.breakers === "disabled")
  const pairs = on.flatMap((r) => {
    const pair = disabled.find((d) => d.round === r.round)
    return pair === undefined ? [] : [[r, pair] as const]
  })
  return {
    on,
    disabled,
    cost: meanInterval(pairs.map(([r, d]) => 100 * (d.plansPerSecond - r.plansPerSecond) / d.plansPerSecond)),
    cpuCost: meanInterval(pairs.map(([r, d]) => 100 * (r.cpuPerPlanUs - d.cpuPerPlanUs) / d.cpuPerPlanUs))
  }
}

/** `mean ± half %` of an interval. */
const percentInterval = (i: { readonly mean: number; readonly half: number }): string =>
  `${i.mean.toFixed(2)} % ± ${i.half.toFixed(2)} %`

/** What the breakers can cost a plan at most: their calls per plan times the per-call cost, over the plan's CPU. */
const serviceBound = (results: ReadonlyArray<ScenarioResult>, runs: ReadonlyArray<ServiceRun>) => {
  const on = runs.filter((r) => r.breakers === "on")
  const callsPerPlan = median(on.map((r) => r.breakerCallsPerPlan))
  const cpuPerPlanUs = median(on.map((r) => r.cpuPerPlanUs))
  const perCallNs = added(find(results, SCENARIO.closedPromise, ID.ours))
  return { callsPerPlan, cpuPerPlanUs, perCallNs, percent: 100 * callsPerPlan * perCallNs / 1000 / cpuPerPlanUs }
}

const scalingTables = (results: ReadonlyArray<ScenarioResult>, scaling: Scaling): Array<Table & { title: string }> => {
  const tables: Array<Table & { title: string }> = []
  if (scaling.breakers.length > 0) {
    tables.push({
      title: "Breakers in one registry, with `Metrics.layer` attached",
      header: [
        "Breakers",
        "Heap per breaker, with metrics (B)",
        "Heap per breaker, bare (B)",
        "`/metrics` scrape, p50 (ms)",
        "Scrape, p99 (ms)",
        "Scrape per breaker, p50 (µs)",
        "Body size",
        "Load average"
      ],
      rows: scaling.breakers.map((b) => [
        count(b.breakers),
        count(Math.round(b.bytesPerBreaker)),
        count(Math.round(b.bareBytesPerBreaker)),
        b.scrapeMs.toFixed(2),
        b.scrapeP99Ms.toFixed(2),
        (1000 * b.scrapeMs / b.breakers).toFixed(2),
        `${count(b.scrapeBytes)} B`,
        b.load.toFixed(2)
      ])
    })
  }
  const policies = results.find((r) => r.scenario.id === SCENARIO.policies)
  if (policies !== undefined) {
    tables.push({
      title: "Trip policy and window, per call (scenario 7)",
      header: ["Policy", "Added per call over bare Effect (median)", "Min – max over rounds", "ns/call (CPU)"],
      rows: addedRows(policies, (c) => c.id === ID.ours ? "consecutive (default, `failMax` 5)" : c.id)
    })
  }
  const concurrency = results.find((r) => r.scenario.id === SCENARIO.concurrency)
  if (concurrency !== undefined) {
    tables.push({
      title: "Calls in flight on one breaker, per call (scenario 8)",
      header: [
        "In flight",
        "Added per call over bare Effect.promise (median)",
        "Min – max over rounds",
        "ns/call (CPU)"
      ],
      rows: addedRows(concurrency, concurrencyLabel)
    })
  }
  if (scaling.service.length > 0) {
    const summary = serviceSummary(scaling.service)
    const row = (label: string, runs: ReadonlyArray<ServiceRun>) => [
      label,
      fmt(median(runs.map((r) => r.plansPerSecond)), "ns/call"),
      fmt(median(runs.map((r) => r.cpuPerPlanUs)), "ns/call"),
      fmt(median(runs.map((r) => r.p50Ms)), "ns/call"),
      fmt(median(runs.map((r) => r.p99Ms)), "ns/call"),
      runs.map((r) => fmt(r.plansPerSecond, "ns/call")).join(", "),
      count(runs.reduce((n, r) => n + r.errors + r.non2xx, 0))
    ]
    tables.push({
      title: `Example service under HTTP load (${scaling.serviceSettings.connections} connections, ` +
        `${scaling.serviceSettings.seconds} s per run, ${scaling.serviceSettings.rounds} rounds; ${
          scaling.service.every((r) => r.pinned)
            ? "the service alone on core 0, autocannon on the other cores"
            : "the service and autocannon sharing the cores"
        })`,
      header: [
        "Breakers",
        "Plans/s (median)",
        "Service CPU per plan (µs, median)",
        "p50 latency (ms)",
        "p99 latency (ms)",
        "Plans/s per round",
        "Errors"
      ],
      rows: [
        row("on (the seed's config)", summary.on),
        row("disabled (`enabled: false` for every circuit)", summary.disabled),
        [
          "breaker calls per plan",
          fmt(median(summary.on.map((r) => r.breakerCallsPerPlan)), "ns/call"),
          "",
          "",
          "",
          "",
          ""
        ],
        [
          "cost of the breakers (mean, 95 % interval)",
          `${percentInterval(summary.cost)} of throughput`,
          `${percentInterval(summary.cpuCost)} more CPU per plan`,
          "",
          "",
          "",
          ""
        ]
      ]
    })
  }
  if (scaling.profile !== undefined) {
    const p = scaling.profile
    const rows = (frames: PlanProfile["functions"]) =>
      frames.map((f) => [`\`${f.where}\``, fmt(f.perPlanUs, "ns/call"), `${f.percent.toFixed(1)} %`])
    tables.push({
      title: `Where a plan's CPU goes: the embedded service under \`node --cpu-prof\` (${
        count(p.plans)
      } plans, ${p.seconds} s of load; ${fmt(p.busyPerPlanUs, "ns/call")} µs busy per plan, profiler attached)`,
      header: ["Self time in (function, then file)", "µs per plan", "Share of busy time"],
      rows: [...rows(p.functions), ["", "", ""], ...rows(p.files)]
    })
  }
  if (scaling.ceiling !== undefined) {
    const c = scaling.ceiling
    tables.push({
      title: `Real servers on this machine: each alone (${c.concurrency} calls in flight, ${c.seconds} s), ` +
        `then the service against all four (${c.connections} connections, ${2 * c.seconds} s)`,
      header: [
        "Server",
        "Operation a plan makes",
        "Standalone calls/s",
        "CPU per call standalone, server / client (µs)",
        "Calls per plan",
        "Ceiling (plans/s)",
        "Mean call in the service run (ms)",
        "CPU per plan in the service run (µs)"
      ],
      rows: [
        ...c.rows.map((r) => [
          r.server,
          r.operation,
          fmt(r.opsPerSecond, "ns/call"),
          `${fmt(r.serverCpuPerOpUs, "ns/call")} / ${fmt(r.clientCpuPerOpUs, "ns/call")}`,
          r.callsPerPlan.toFixed(2),
          // The relay reaches Kafka in batches: a short run may see no send at all, and then no limit.
          r.callsPerPlan === 0 ? "no limit: no call in the run" : fmt(r.plansPerSecond, "ns/call"),
          r.callsPerPlan === 0 ? "no call in the run" : fmt(r.serviceCallMs, "ns/call"),
          fmt(r.serverCpuPerPlanUs, "ns/call")
        ]),
        [
          "the service",
          `POST /plans (p50 ${fmt(c.service.p50Ms, "ns/call")} ms, p99 ${fmt(c.service.p99Ms, "ns/call")} ms; ` +
          `${count(c.service.shed)} shed with 503)`,
          `${fmt(c.service.plansPerSecond, "ns/call")} plans/s accepted, ${
            fmt(c.service.publishedPerSecond, "ns/call")
          } published`,
          "",
          "",
          `${(100 * c.fraction).toFixed(0)} % of the slowest`,
          "",
          fmt(c.service.cpuPerPlanUs, "ns/call")
        ],
        ["the load generator", "autocannon", "", "", "", "", "", fmt(c.service.loadCpuPerPlanUs, "ns/call")],
        [
          "the machine",
          `${c.cores} cores`,
          `${fmt(c.service.cpuBoundPlansPerSecond, "ns/call")} plans/s at most`,
          "",
          "",
          `the service at ${(100 * c.service.cpuBoundFraction).toFixed(0)} % of it`,
          "",
          fmt(c.service.machineCpuPerPlanUs, "ns/call")
        ]
      ]
    })
  }
  return tables
}

// -----------------------------------------------------------------------------
// the fast path and the public path
// -----------------------------------------------------------------------------

const pathRows: ReadonlyArray<readonly [string, string, string]> = [
  ["(1a) closed, built per call", SCENARIO.closedEffect, ID.ours],
  ["(1a) closed, built once", SCENARIO.closedEffect, ID.oursOnce],
  ["(3) rejection, built per call", SCENARIO.rejection, ID.ours],
  ["(3) rejection, built once", SCENARIO.rejection, ID.oursOnce]
]

const pathsTable = (runs: ReadonlyArray<PathRun>): Table => {
  const figure = (path: BreakerPath, scenario: string, id: string) => pathFigure(runs, path, scenario, id)
  return {
    header: [
      "Our row",
      "Fast path: added over bare (median)",
      "Public path: added over bare (median)",
      "Public − fast",
      "Fast / public ns/call (CPU, median)"
    ],
    rows: pathRows.map(([label, scenario, id]) => {
      const fast = figure("fast", scenario, id)
      const pub = figure("public", scenario, id)
      return [
        label,
        `${signed(median(fast.added), "ns/call")} ns (${range(fast.added, "ns/call")})`,
        `${signed(median(pub.added), "ns/call")} ns (${range(pub.added, "ns/call")})`,
        `${signed(median(pub.added) - median(fast.added), "ns/call")} ns`,
        `${fmt(median(fast.perUnit), "ns/call")} / ${fmt(median(pub.perUnit), "ns/call")}`
      ]
    })
  }
}

/** The lines under the table: what each child ran on, its load, and whether the machine was quiet. */
const pathsNotes = (runs: ReadonlyArray<PathRun>, cores: number): Array<string> => {
  const loads = runs.flatMap((r) => r.load)
  const quiet = Math.max(...loads) < cores
  const fastReasons = [...new Set(runs.filter((r) => r.path === "fast").map((r) => r.reason))]
  return [
    `Children in this order: ${PATH_ORDER.map((p) => `NH_BREAKER_PATH=${p}`).join(", ")}; each path's figures ` +
    "pool the per-round figures of its two children (the range in brackets is min – max over those rounds).",
    `What the children ran: ${
      runs.map((r, i) =>
        `${i + 1}. \`${r.path}\` → \`${r.reason}\` (load ${r.load[0].toFixed(2)} → ${r.load[1].toFixed(2)})`
      )
        .join("; ")
    }. The load is the 1-minute load average at the child's start and end.`,
    ...(fastReasons.every((r) => r === "engaged")
      ? []
      : [
        `**The fast path was not engaged** in the \`fast\` children (${fastReasons.join(", ")}): both columns ` +
        "measure the public path."
      ]),
    quiet
      ? `Quiet machine: the load average stayed under ${cores} (its ${cores} cores) in every child.`
      : `**Noisy**: the load average reached ${Math.max(...loads).toFixed(2)} on ${cores} cores; other work shared ` +
        "the cores, so these figures carry its noise (compare the two paths, not the absolute values)."
  ]
}

export const consoleReport = (results: ReadonlyArray<ScenarioResult>, scaling: Scaling): string => {
  const parts: Array<string> = []
  for (const result of results) {
    parts.push("", result.scenario.title.replaceAll("`", ""), consoleTable(scenarioTable(result)))
  }
  for (const table of scalingTables(results, scaling)) {
    parts.push("", table.title.replaceAll("`", ""), consoleTable(table))
  }
  if (scaling.paths.length > 0) {
    parts.push("", "The fast path and the public path", consoleTable(pathsTable(scaling.paths)))
    for (const note of pathsNotes(scaling.paths, os.availableParallelism())) {
      parts.push(`  ${plain(note).replaceAll("`", "")}`)
    }
  }
  const all = verdicts(results, scaling)
  parts.push("", "Targets of the issue")
  for (const v of all.filter((x) => x.extra !== true)) {
    parts.push(`  ${v.met ? "MET   " : "MISSED"}  ${v.target}: ${v.measured}`)
  }
  parts.push("", "Further checks")
  for (const v of all.filter((x) => x.extra === true)) {
    parts.push(`  ${v.met ? "MET   " : "MISSED"}  ${v.target}: ${v.measured}`)
  }
  return parts.join("\n")
}

// -----------------------------------------------------------------------------
// docs/performance.md
// -----------------------------------------------------------------------------

const verdictTable = (rows: ReadonlyArray<Verdict>) =>
  markdownTable({
    header: ["Target", "Measured", "Met"],
    rows: rows.map((x) => [x.target, x.measured, x.met ? "yes" : "**no**"])
  })

export const markdown = (results: ReadonlyArray<ScenarioResult>, scaling: Scaling, env: Environment): string => {
  const v = verdicts(results, scaling)
  const out: Array<string> = []
  const push = (...lines: Array<string>) => out.push(...lines)

  push(
    "# Performance",
    "",
    `Generated by \`${env.command}\` (\`tools/bench/run.ts\`) on ${env.date}. Rerun it to refresh this file; do not edit ` +
      "the numbers by hand.",
    ""
  )
  if (env.quick) {
    push(
      "> **Quick smoke run** (`BENCH_QUICK=1`): few rounds and short measurements. These numbers are not " +
        "representative; run `npm run bench` for real figures.",
      ""
    )
  }

  const issue = v.filter((x) => x.extra !== true)
  const further = v.filter((x) => x.extra === true)
  push(
    "## Targets",
    "",
    "The targets of the benchmark issue, judged from the CPU-time medians below. They are measured here, not " +
      "asserted in tests.",
    "",
    verdictTable(issue),
    "",
    `Met ${issue.filter((x) => x.met).length} of ${issue.length}.`,
    "",
    "Call shapes. The headline figure is the closed path with the guard **built per call**: " +
      "`yield* succeed.pipe(withBreaker(breaker))` inside the loop, the way a handler writes " +
      "`publish(ticket).pipe(withBreaker(kafka))`; Effect's breaker is measured the same way " +
      "(`succeed.pipe(breaker.execute({ key }))` per call). **Built once** (the guarded effect made before the loop " +
      "and re-yielded) is shown beside it. On the Promise side `Facade.execute(breaker, call)`, opossum's `fire()` " +
      "and cockatiel's `execute(call)` are all one call per call; `Facade.wrapPromise` wraps the function once, as " +
      "opossum's constructor does. opossum and cockatiel cannot guard an effect, so the closed-path comparison " +
      "with them takes their added cost on the Promise call (1b), over a bare `await`.",
    ""
  )
  if (further.length > 0) {
    push(
      "### Further checks",
      "",
      "Not targets of the issue: the same bars for our Promise API and for a non-default metrics configuration.",
      "",
      verdictTable(further),
      ""
    )
  }

  push(
    "## Where the time goes",
    "",
    "What the closed path does per call since issue 18 (`packages/resilience/src/internal/breaker.ts`), and why:",
    "",
    "- `withBreaker(breaker)` is written out instead of `Function.dual` with a predicate, which goes through " +
      "`arguments` and a rest spread on every call.",
    "- On the fast path (below), `protect` returns one purpose-built effect node (`GuardCall`: breaker, effect, " +
      "classifier) instead of " +
      "`Effect.suspend` over a closure: one allocation instead of a closure, its context and a node.",
    "- When the node runs in CLOSED, it pushes one small settle frame on the fiber's stack and hands over the " +
      "call. `Effect.onExitPrimitive` did the same job but also opens an uninterruptible region for a finalizer " +
      "*effect* and pushes a second frame to leave it; the breaker's settle is synchronous, so the frame only " +
      "turns interruptibility off while it settles (so an interrupted call is still counted) and back on, " +
      "delivering any interruption that arrived meanwhile. Then it passes the value straight to the next frame.",
    "- OPEN rejects without an admission frame, with an error built without the `Error` constructor (no stack " +
      "capture). The clock is read only when a policy, slow calls or a listener need it.",
    "- The Promise facade reads the clock only when something needs durations; `wrapPromise` builds no closure " +
      "per call.",
    "- Memory: no per-breaker closures on the call path, the scope finalizer a bound method, the `unsafe` view " +
      "made on first use.",
    "",
    "The remaining gap to 150 ns on the per-call closed path, from `tools/bench/profile.ts` (`per-call` and " +
      "`suspend`) and the micro-measurements behind it: a bare `Effect.succeed` is an `Exit`, which the " +
      "generator loop unwraps without entering the fiber's run loop, so the bare row never pays for the run " +
      "loop. Any wrapper does: `Effect.suspend(() => succeed)`, the cheapest effect there is, adds about 100 ns " +
      "in the same loop on this machine. Building the guarded call (`withBreaker`, `pipe`, the node) is about " +
      "40 ns and the breaker's own bookkeeping (admission, settle, the policy) under 10 ns in a plain loop; the " +
      "rest is Effect's run loop turning one node and one frame (profile: Effect's run loop and generator " +
      "about half of the self time, garbage collection about a tenth, the breaker's code about an eighth). " +
      "Going lower would mean not being an effect, e.g. a synchronous check before building one.",
    "",
    "The `/metrics` scrape (issue 29): prom-client formatted every sample line on every scrape (escaping and " +
      "joining the label set, looking up the text of shared label sets in a `WeakMap`, allocating the line), and " +
      "the duration histogram kept 14 label objects per series; a profile of scrapes of 10,000 breakers was a " +
      "third garbage collection and most of the rest prom-client's formatting (`getMetricsAsString`, " +
      "`flattenSharedLabels`). The breaker metrics now write their own text " +
      "(`packages/observability/src/internal/breakerSeries.ts`): the label text around a breaker's name is " +
      "prepared once per metric, result and bucket, and a scrape reads each breaker's state and totals once and " +
      "appends the name and the numbers, in one pass; prom-client's `registry.metrics()` takes each metric's " +
      "text as it is (`internal/exposition.ts`), beside the registry's other metrics. The text holds the same " +
      "lines as before (`test/observability/MetricsExposition.test.ts` compares it with the previous " +
      "implementation), so its size is unchanged: about 22 lines per breaker called once. What remains is " +
      "building that text (string joins and the collection of their pieces); it grows linearly with the lines.",
    "",
    "Memory with the metrics attached: each breaker had prom-client's per-label-set counter entries and, for the " +
      "histogram, 4 series of 14 label objects each, made at wiring; and `breaker.listen` kept, through " +
      "`Effect.acquireRelease`, the whole context of the fiber that listened (about 1 KB a listener), plus a scope " +
      "and a finalizer per breaker. Now a breaker name has one small object (its counts carried over, its " +
      "transitions, the indexes of its duration rows), which is also the breaker's listener, added with " +
      "`view.subscribe` (no scope or finalizer); a duration series is a row of 13 numbers in one `Float64Array` " +
      "shared by every breaker, made at the series' first observation and reused when its breaker leaves.",
    ""
  )

  if (scaling.paths.length > 0) {
    push(
      "## The fast path and the public path",
      "",
      "The breaker has two call paths with the same results. The fast path (the node and the settle frame " +
        "above, in `packages/resilience/src/internal/fastPath.ts`) uses Effect's private runtime fields, so it " +
        "runs only on the exact `effect` versions listed there; on any other version, or with " +
        "`NH_BREAKER_PATH=public`, every call goes through `Effect.suspend` and `Effect.onExitPrimitive` (the " +
        "public path). `NH_BREAKER_PATH` is read once, when the breaker's module loads, so `tools/bench/paths.ts` " +
        "measures each path in child processes of this run: our Effect rows of (1a) and (3) with their bare rows, " +
        `measured ${env.date}.`,
      "",
      markdownTable(pathsTable(scaling.paths)),
      "",
      ...pathsNotes(scaling.paths, env.cores).map((note) => `- ${note}`),
      ""
    )
  }

  push(
    "## Machine and versions",
    "",
    `- CPU: ${env.cpu}, ${env.cores} logical cores, ${env.memoryGiB.toFixed(1)} GiB RAM`,
    `- Load: 1-minute load average ${env.load[0].toFixed(1)} at the start, ${
      env.load[1].toFixed(1)
    } before the service runs and ${
      env.load[2].toFixed(1)
    } at the end. From the start on the load is the run's own (the scenarios' process and V8's GC threads, then ` +
      `the service on one core and autocannon on the other, the real servers last); the bench writes this page only when the ` +
      `start was at most the ${env.cores} cores (see Caveats)`,
    `- OS: ${env.os}`,
    `- Node: ${env.node}`,
    `- Breaker call path of the scenario tables: \`${env.breakerPath}\` (\`engaged\`: the fast path)`,
    `- Packages: ${env.packages.map(([name, version]) => `${name} ${version}`).join(", ")}`,
    `- Commit: ${env.commit}`,
    `- Settings: ${env.rounds} rounds, about ${env.targetMs} ms per measurement; the run took ${
      Math.round(env.durationSeconds)
    } s`,
    ""
  )

  push(
    "## Reproduce",
    "",
    "```sh",
    "npm run bench                      # full run, rewrites docs/performance.md",
    "BENCH_ROUNDS=25 npm run bench      # more rounds (default 15)",
    "BENCH_TARGET_MS=100 npm run bench  # longer measurements",
    "BENCH_QUICK=1 npm run bench        # smoke run (2 rounds, short), does not rewrite this file",
    "BENCH_OUT=/tmp/perf.md npm run bench",
    "BENCH_ONLY=closed-effect,rejection npm run bench  # some scenarios only; does not rewrite this file",
    "BENCH_JSON=/tmp/rounds.json npm run bench         # also dump every per-round figure and order",
    "BENCH_ONLY=paths npm run bench                    # only the fast path against the public path",
    "NH_BREAKER_PATH=public npm run bench              # every scenario on the breaker's public path",
    "```",
    "",
    "Scenario ids: closed-effect, closed-promise, in-flight, rejection, half-open, memory, observability, " +
      "policies, concurrency, breakers and service for the two scaling measurements " +
      "(`BENCH_SERVICE_SECONDS`, `BENCH_SERVICE_ROUNDS`, `BENCH_SERVICE_CONNECTIONS` size the HTTP load), and " +
      "paths for the fast path against the public path (child processes; `tools/bench/paths.ts`). " +
      "`tools/bench/profile.ts` runs one of our paths in a focused loop for `node --cpu-prof` and prints the top " +
      "self-time frames of the profile (usage at the top of the file).",
    "",
    "`tools/bench/run.ts` re-executes itself with `node --expose-gc` when `gc()` is not exposed.",
    "",
    "A run that prints a figure it did not observe (NaN, n/a) exits 1 and writes nothing; a run on a busy " +
      "machine (load average above the number of cores, at the start or the end) prints its figures but does " +
      "not write this file and exits 1 (`BENCH_ALLOW_BUSY=1` overrides). `.ci/run` runs " +
      "`BENCH_QUICK=1 BENCH_OUT=- npm run bench`, so a bench that stops measuring fails CI.",
    ""
  )

  push(
    "## How it measures",
    "",
    "- One process. A warm-up runs every case three times, which also calibrates its iteration count so that one " +
      "measurement takes about the target time.",
    "- Then, per round, every scenario runs its competitors in an order rotated by one each round and reversed " +
      "every other round (so each competitor follows different neighbours), each measurement after a `gc()`.",
    "- Time is the main thread's CPU time (`process.threadCpuUsage()`) over the timed region, divided by the calls: " +
      "on a shared machine, another process taking the core stretches wall time but not this thread's CPU time. " +
      "The wall-clock median is shown beside it. Every competitor runs all its work on the main thread (no " +
      "worker threads, no I/O, no timers that fire), so the two agree on a quiet machine.",
    "- Ratios (time ÷ ours) and added costs (time − the bare row) are computed inside each round, between " +
      "measurements taken seconds apart, and the tables show their medians over the rounds. Absolute times are " +
      "shown for scale; compare ratios and added costs. Targets are judged on the CPU-time medians.",
    "- Effect-based competitors are timed inside one long-running fiber (a loop of `yield*`), so the figures " +
      "measure the breaker, not `Effect.runPromise`; rows say whether the guarded effect is built per call " +
      "(inside the loop) or once. Promise-based competitors are timed in an `async` loop of `await`.",
    "- Breakers: ours with its defaults (consecutive policy, `failMax` 5); Effect's `effect/persistence/" +
      "CircuitBreaker` with `layerStoreMemory()` and `consecutive(5)`; opossum once with `timeout: false` and " +
      "once with its defaults; cockatiel with `ConsecutiveBreaker` and `handleAll`. The open and half-open " +
      "scenarios trip them with one failure (opossum: `.open()`).",
    `- Scenario (6) attaches ${OBSERVABILITY_VARIANT}`,
    ""
  )

  const growth = scalingTables(results, scaling)
  if (growth.length > 0) {
    push(
      "## How cost grows",
      "",
      "Each table is measured by this run: the breakers table and the service table by `tools/bench/scaling.ts`, " +
        "the real-server table by `tools/bench/ceiling.ts`, the " +
        "policy and concurrency tables are scenarios (7) and (8) below, summarized.",
      ""
    )
    for (const table of growth) push(`### ${table.title}`, "", markdownTable(table), "")
    push(
      "- Breakers: each breaker is made with `CircuitBreaker.make` in one `Registry.Registry` with " +
        "`Metrics.layer` (duration histogram on) attached, and called once (a success: one duration series); " +
        "heap is `heapUsed` plus `arrayBuffers` (the duration rows live in a `Float64Array`) after two `gc()` " +
        "before and after, divided by the count (one or ten breakers are within noise of the process's own " +
        "growth). The bare column makes the same breakers in a registry without the metrics. A scrape is " +
        "`registry.metrics()`, the body `/metrics` serves, timed as wall time after two untimed scrapes: p50 and " +
        "p99 (nearest rank) of 31 to 301 scrapes (quick run: 5 to 51, so its p99 is nearly the maximum). The " +
        "load average is the machine's when the row was measured: figures taken above its core count are noise.",
      "- Service: `examples/orchestrator-dynamic` started as a child process the way `npm start` does (embedded " +
        "dependencies, JSON logs to a discarded stdout), once with the seed's config and once with " +
        "`CIRCUIT_BREAKER_<DEPENDENCY>_ENABLED=false` for all four circuits (pass-through breakers that still " +
        "measure). autocannon sends `POST /plans` with a fresh id per request after a two-second warm-up, " +
        "reconnecting every 500 requests (the service closes a keep-alive connection after 1,000). The order of " +
        "the two flips every round; each round's pair gives one difference, and the cost is the mean of the " +
        "differences with its 95 % confidence interval (Student's t over the pairs). The target is met only when " +
        "the whole interval is within 1 %, for plans/s and for the service process's own CPU time per plan " +
        "(user + system from `/proc`). A run with any non-2xx answer or socket error fails. The bound beside it: " +
        "the breaker calls per plan (read from the service's own `/metrics`) times the per-call cost measured " +
        "in (1b), over the service's CPU per plan. The service runs alone on core 0 and autocannon on the other " +
        "core (`taskset`). Why the interval stays wide: fresh service processes differ by about ±15 % from round " +
        "to round on this VM even alone on their core (952 to 1,298 plans/s within one run, 2026-12-07), so 8 " +
        "pairs give about ±10 % and ±1 % would take about a thousand; hardware instruction counts, which would " +
        "not see that noise, are not available here (`perf stat -e instructions` answers \"not supported\").",
      "- Profile (`tools/bench/planProfile.ts`): the embedded service started as `npm start` does, with " +
        "`--cpu-prof` (200 µs sampling), loaded like the service table, stopped with SIGINT; self time per " +
        "function and per file, idle left out, over every plan it served (start-up included: an upper bound). " +
        "Before the embedded MongoDB kept indexes (commit 1d808aa, the same procedure on 2026-12-07 at load " +
        "average 6): `Embedded.ts`'s document scans (`matches`, `all`, `at` and their callbacks, the outbox " +
        "relay's reads filtered by state over every stored plan) were 56 % of the busy time and " +
        "`BoundedStore.values` 4 %, about 1,800 µs of a plan's 3,150; the client spans' stack traces " +
        "(`addSpanStackTrace`) were 1.8 %, then 4.2 % once the scans were gone, and are no longer captured.",
      "- Real servers (`tools/bench/ceiling.ts`): the servers `npm test` provisions, started on loopback with no " +
        "proxy; each measured alone through the service's own client and breaker (32 calls in flight, after a " +
        "warm-up), then the service against all four with as many connections. A server's ceiling is its rate " +
        "over the calls a plan makes to it, read from the service's `/metrics` (the outbox relay's calls " +
        "included: its sends to Kafka, its marks in MongoDB); the service's rate counts the plans it accepted " +
        "(202), and the plans its adaptive limits shed with 503 are shown beside it. The mean call column shows " +
        "where a plan waits. CPU is read from /proc for each server process and the service, and from " +
        "`process.cpuUsage()` for this process (the standalone client, then autocannon): alone, a server has " +
        "both cores; in the service run all five processes and the load share them, so the machine's bound is " +
        "its cores over the CPU a plan costs them together (the last row). FerretDB (SQLite) answers only an " +
        "`_id` lookup from an index and reads the whole collection for any other filter (about 35 µs per stored " +
        "document): the relay's reads by state took 150-200 ms each at 5,000 documents and held its single " +
        "writer, and the service reached 116 plans/s (session 7). The relay now sends the tickets the service " +
        "hands over (`notifyWritten`) and marks them by `_id`, reading the collection only on its sweeps " +
        "(docs/outbox.md, \"Hand-overs\"). What binds now is FerretDB's write of a mark: measured on this rig " +
        "(FerretDB's CPU from /proc, 2026-12-07), an insert costs it 0.65-0.79 ms, a `findOne` by `_id` 3.5-5 ms " +
        "(flat from 1,000 to 4,000 documents: the index is used), an `updateOne` by `_id` that changes the document " +
        "8-20 ms, an `updateMany` by `$in` of 10 ids 490-860 ms; every plan needs one insert and one mark, and " +
        "in the service run the relay publishes fewer tickets per second than the service accepts, so the " +
        "sustained rate is the published one. With five processes sharing 2 cores, the machine's bound in the " +
        "last row is what no change to the service can pass.",
      ""
    )
  }

  push("## Results", "")
  for (const result of results) {
    push(`### ${result.scenario.title}`, "", markdownTable(scenarioTable(result)), "")
    for (const note of result.scenario.notes ?? []) push(`- ${note}`)
    if ((result.scenario.notes ?? []).length > 0) push("")
  }
  push(
    "Bold rows are ours, the reference of the ratio column. A ratio above 1 means that competitor took longer " +
      "(or used more memory) than ours in the same round. Added over bare: Effect-based rows against the bare " +
      "Effect row of their scenario, Promise-based rows against the bare Promise row.",
    ""
  )

  push(
    "## Caveats",
    "",
    "- **Shared, noisy machine.** Other jobs run on the same cores, so absolute times move between runs and even " +
      "between rounds. CPU time removes most of the time lost to them, not all: they still evict caches, and on " +
      "a loaded run wall time can be several times the CPU time. The min – max column shows the spread. Ratios " +
      "and added costs taken inside a round are the figures to compare, and even they carry noise of tens of ns.",
    "- **CPU time is the main thread's.** Work V8 does on helper threads (concurrent marking, parallel " +
      "scavenging, background compilation) is not counted; it is small for these loops and similar for every " +
      "competitor. Time spent in `gc()` before each measurement is outside the timed region. On this kind of " +
      "virtual machine the thread clock advances in steps of about a millisecond, so a measurement lasts tens " +
      "of milliseconds (`BENCH_TARGET_MS`) to keep that error to a few percent; the quick run's figures are " +
      "coarser.",
    "- **One process, JIT.** All competitors share one V8 isolate: code warmed by one case (Effect's fiber loop, " +
      "Promise machinery) helps the others, and the order of cases matters, which is why it rotates. A breaker " +
      "in a real program may be less optimized (megamorphic call sites, cold code).",
    "- **Sequential loops measure overhead, not throughput.** The guarded call is a resolved Promise or " +
      "`Effect.succeed`; real calls take micro- to milliseconds, which dwarfs every figure here.",
    "- **Built per call vs once.** A bare `Effect.succeed` is an `Exit`, which a generator loop unwraps " +
      "without entering the fiber's run loop; any wrapper (even `Effect.suspend`) leaves that fast path, and " +
      "that alone costs about 100 ns here. It is part of every guarded row and of no bare row.",
    "- **opossum defaults.** `timeout` defaults to 10 s: every call creates and clears a `setTimeout` timer. " +
      "Each breaker also keeps a rolling stats window with two `setInterval` timers (unref'd), emits events on " +
      "every call and, with `rollingPercentilesEnabled` (default), keeps every latency of the current bucket. " +
      "Its rejection builds an `Error` with a stack trace. `timeout: false` removes only the timer.",
    "- **cockatiel** runs every call through an `async` function and its executor's event emitters; its " +
      "rejection is a `BrokenCircuitError` with a stack trace. In half-open it does not reject: callers wait " +
      "for the probe's verdict, then run.",
    "- **Effect's breaker** is keyed and store-based: each call opens a `Scope` under `uninterruptibleMask` and " +
      "goes through the store's `admit` and `record` (memory store here; the Redis store adds two round trips per " +
      "call). Its rejection is a `Schema.Error` with a reason. Its per-breaker memory depends on whether circuits " +
      "are separate breakers or keys of one breaker; both are shown.",
    "- **Ours.** The rejection reuses no error: each rejected call builds a `CircuitBreakerError` without running " +
      "the `Error` constructor (no stack capture). `forceOpen` takes the same fast path as a tripped breaker. " +
      "Without a `callTimeout` the facade runs on the breaker directly (no fiber); with one it goes through " +
      "`withBreaker` to interrupt the call.",
    "- **Scenario (6).** Logging costs nothing on the closed success path, which has no transitions. The " +
      "metrics cost what runs per call: the duration histogram's `observe` (prom-client validates and hashes " +
      "the labels on every observation), and the clock, which the breaker reads twice per call once a listener " +
      "wants durations.",
    "- **Memory** is `heapUsed` deltas: it misses off-heap memory and timers held by libuv, and V8 may keep " +
      "some garbage or free some earlier allocations between the two readings.",
    "- **Half-open** timing includes starting 10,000 fibers or Promises, which dominates for every competitor " +
      "that rejects; the bare cost of that is not subtracted.",
    ""
  )
  return out.join("\n")
}
