/**
 * How cost grows with the number of breakers (heap with metrics attached and
 * without, `/metrics` scrape time p50 and p99, and size) and under HTTP load on the example service
 * (plans/s and latency with the breakers on and with them disabled). These are
 * measured outside the round-based harness: each is a handful of long
 * measurements, not millions of short calls.
 */
import { Metrics } from "@neural-hive/observability"
import { CircuitBreaker as Ours, Registry, withBreaker } from "@neural-hive/resilience"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import { type ExampleProcess, startExample } from "./example.ts"
import { median } from "./harness.ts"
import { loadPlans, processCpuMicros, requireAllServed } from "./planLoad.ts"

// -----------------------------------------------------------------------------
// breakers in one registry
// -----------------------------------------------------------------------------

export const BREAKER_COUNTS: ReadonlyArray<number> = [1, 10, 100, 1_000, 10_000]

export interface BreakersRow {
  readonly breakers: number
  /**
   * Heap bytes per breaker, registered and wired to the metrics, each called once: `heapUsed` plus
   * `arrayBuffers` (the duration histograms live in one `Float64Array`, outside the JS heap).
   */
  readonly bytesPerBreaker: number
  /** The same, without the metrics: a breaker in a `Registry.Registry` alone. */
  readonly bareBytesPerBreaker: number
  /** Median wall time of one `registry.metrics()` (the `/metrics` body), in ms. */
  readonly scrapeMs: number
  /** The 99th percentile (nearest rank) of the same. */
  readonly scrapeP99Ms: number
  /** Every timed scrape's time, in ms (after two untimed ones). */
  readonly scrapesMs: ReadonlyArray<number>
  /** Size of the `/metrics` body, in bytes. */
  readonly scrapeBytes: number
  /** The 1-minute load average when the row was measured. */
  readonly load: number
}

/** `heapUsed` + `arrayBuffers` once pending callbacks have run and two full collections are done. */
const settledHeap = async (): Promise<number> => {
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    globalThis.gc!()
  }
  const memory = process.memoryUsage()
  return memory.heapUsed + memory.arrayBuffers
}

/** Timed scrapes per row: about 2 s of scraping at 10 ms per 1,000 breakers (0.2 s quick), at least 31 (quick 5). */
const scrapes = (count: number, quick: boolean) =>
  quick
    ? Math.max(5, Math.min(51, Math.round(20_000 / count)))
    : Math.max(31, Math.min(301, Math.round(200_000 / count)))

/** The nearest-rank percentile `p` (0-100) of `values`. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return NaN
  const sorted = values.toSorted((a, b) => a - b)
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!
}

/** Heap per breaker of `count` breakers made in `context` (each called once), and the breakers, kept alive. */
const makeBreakers = async (
  count: number,
  context: Context.Context<Registry.Registry>,
  scope: Scope.Scope
): Promise<{ readonly bytesPerBreaker: number; readonly kept: ReadonlyArray<Ours.CircuitBreaker> }> => {
  const before = await settledHeap()
  const kept = Effect.runSync(
    Effect.gen(function*() {
      const made: Array<Ours.CircuitBreaker> = []
      for (let i = 0; i < count; i++) {
        const breaker = yield* Ours.make({ name: `circuit_${i}` })
        yield* Effect.succeed(1).pipe(withBreaker(breaker))
        made.push(breaker)
      }
      return made
    }).pipe(Effect.provideContext(context), Scope.provide(scope))
  )
  const after = await settledHeap()
  return { bytesPerBreaker: (after - before) / count, kept }
}

/** Heap per breaker of `count` breakers in a `Registry.Registry` without metrics. */
const bareBytesPerBreaker = async (count: number): Promise<number> => {
  const scope = Scope.makeUnsafe()
  const context = Effect.runSync(Layer.build(Registry.layer).pipe(Scope.provide(scope)))
  const { bytesPerBreaker, kept } = await makeBreakers(count, context, scope)
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return kept.length === count ? bytesPerBreaker : NaN
}

/**
 * `count` breakers made in one `Registry.Registry` with `Metrics.layer`
 * attached (the duration histogram on, its default), each called once; then
 * the registry is scraped several times. Fails when a scrape misses a breaker
 * or a figure is not a number.
 */
export const breakersRow = async (count: number, quick = false): Promise<BreakersRow> => {
  const bare = await bareBytesPerBreaker(count)
  const scope = Scope.makeUnsafe()
  const context = Effect.runSync(
    Layer.build(Metrics.layer({ service: "bench" }).pipe(Layer.provideMerge(Registry.layer))).pipe(
      Scope.provide(scope)
    )
  )
  const registry = Context.get(context, Metrics.PrometheusRegistry)
  const { bytesPerBreaker, kept } = await makeBreakers(count, context, scope)
  // Two untimed scrapes first: the first one prepares the label text, and both let the JIT compile the writer.
  let text = await registry.metrics()
  text = await registry.metrics()
  const times: Array<number> = []
  for (let i = 0; i < scrapes(count, quick); i++) {
    const start = process.hrtime.bigint()
    text = await registry.metrics()
    times.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  const expected = `circuit="circuit_${count - 1}"`
  if (!text.includes(expected) || kept.length !== count) {
    throw new Error(`breakers ${count}: the scrape misses ${expected}`)
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
  const row: BreakersRow = {
    breakers: count,
    bytesPerBreaker,
    bareBytesPerBreaker: bare,
    scrapeMs: median(times),
    scrapeP99Ms: percentile(times, 99),
    scrapesMs: times,
    scrapeBytes: Buffer.byteLength(text),
    load: os.loadavg()[0]!
  }
  const unmeasured = Object.entries(row).filter(([, value]) => typeof value === "number" && !Number.isFinite(value))
  if (unmeasured.length > 0 || text === "") {
    throw new Error(`breakers ${count}: not measured: ${unmeasured.map(([key]) => key).join(", ") || "empty scrape"}`)
  }
  return row
}

// -----------------------------------------------------------------------------
// the example service under HTTP load
// -----------------------------------------------------------------------------

export interface ServiceRun {
  readonly breakers: "on" | "disabled"
  readonly round: number
  readonly plansPerSecond: number
  /** CPU time the service process spent per plan (user + system, from /proc), in µs; NaN where /proc is missing. */
  readonly cpuPerPlanUs: number
  /** Calls through the service's breakers per plan, from its own `/metrics` (`circuit_breaker_calls_total`). */
  readonly breakerCallsPerPlan: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
  readonly non2xx: number
  readonly requests: number
  /** The service ran alone on core 0 and the load on the other cores (`pinCores`). */
  readonly pinned: boolean
}

export interface ServiceSettings {
  readonly seconds: number
  readonly rounds: number
  readonly connections: number
  readonly log: (line: string) => void
}

const dependencies = ["KAFKA", "TEMPORAL", "REDIS", "MONGODB"] as const

/** The sum of every `circuit_breaker_calls_total` series the service publishes. */
const breakerCalls = async (url: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  let total = 0
  for (const line of text.split("\n")) {
    if (line.startsWith(`${Metrics.names.calls}{`)) total += Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return total
}

/** Starts the example as `npm start` does (embedded dependencies), with every breaker on or disabled. */
const startService = (breakers: "on" | "disabled", cpus: string | undefined): Promise<ExampleProcess> =>
  startExample(
    Object.fromEntries(
      dependencies.map((dependency) => [
        `CIRCUIT_BREAKER_${dependency}_ENABLED`,
        breakers === "on" ? "true" : "false"
      ])
    ),
    [],
    "/live",
    cpus
  )

/**
 * Where the service rounds run: the service on core 0, this process (autocannon, the load) on the others, so
 * the two never take each other's core and a round's rate is the service's own. `undefined` (nothing pinned)
 * on one core or without `taskset`. `release` gives this process every core back.
 */
export interface Pinning {
  readonly service: string
  readonly load: string
  readonly release: () => void
}

const pin = (cpus: string): boolean =>
  spawnSync("taskset", ["-a", "-p", "-c", cpus, String(process.pid)], { stdio: "ignore" }).status === 0

export const pinCores = (): Pinning | undefined => {
  const cores = os.availableParallelism()
  const all = `0-${cores - 1}`
  const load = cores === 2 ? "1" : `1-${cores - 1}`
  if (cores < 2 || process.platform !== "linux" || !pin(load)) return undefined
  return { service: "0", load, release: () => void pin(all) }
}

/**
 * Rounds of: breakers on, then disabled (the order flips every round), each a
 * fresh service process warmed up for two seconds, then loaded for `seconds`.
 */
export const serviceRuns = async (settings: ServiceSettings): Promise<Array<ServiceRun>> => {
  const runs: Array<ServiceRun> = []
  const pinning = pinCores()
  settings.log(
    pinning === undefined
      ? "service  not pinned (one core, or no taskset): the service and the load share the cores"
      : `service  the service on core ${pinning.service}, the load (autocannon) on ${pinning.load}`
  )
  try {
    await rounds(settings, pinning, runs)
  } finally {
    pinning?.release()
  }
  return runs
}

const rounds = async (settings: ServiceSettings, pinning: Pinning | undefined, runs: Array<ServiceRun>) => {
  for (let round = 0; round < settings.rounds; round++) {
    const order: ReadonlyArray<"on" | "disabled"> = round % 2 === 0 ? ["on", "disabled"] : ["disabled", "on"]
    for (const breakers of order) {
      settings.log(`service  round ${round + 1}/${settings.rounds}  breakers ${breakers}`)
      const service = await startService(breakers, pinning?.service)
      try {
        await loadPlans(service.url, 2, settings.connections)
        const callsBefore = await breakerCalls(service.url)
        const cpuBefore = processCpuMicros(service.pid)
        const result = await loadPlans(service.url, settings.seconds, settings.connections)
        const cpu = processCpuMicros(service.pid) - cpuBefore
        const calls = await breakerCalls(service.url) - callsBefore
        requireAllServed(result, "service run")
        runs.push({
          breakers,
          round,
          plansPerSecond: result.requests.average,
          cpuPerPlanUs: cpu / Math.max(1, result.requests.total),
          breakerCallsPerPlan: calls / Math.max(1, result.requests.total),
          p50Ms: result.latency.p50,
          p99Ms: result.latency.p99,
          errors: result.errors,
          non2xx: result.non2xx,
          requests: result.requests.total,
          pinned: pinning !== undefined
        })
      } finally {
        await service.stop()
      }
    }
  }
}
