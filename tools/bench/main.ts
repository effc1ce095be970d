/**
 * Runs the scenarios, prints the tables and writes docs/performance.md.
 */
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import { reason as breakerPath } from "../../packages/resilience/src/internal/fastPath.ts"
import { type Ceiling, ceilingRun } from "./ceiling.ts"
import { runAll } from "./harness.ts"
import { PATH_CASES, type PathRun, pathRuns } from "./paths.ts"
import { type PlanProfile, planProfile } from "./planProfile.ts"
import { consoleReport, type Environment, markdown, type Scaling } from "./report.ts"
import { BREAKER_COUNTS, type BreakersRow, breakersRow, type ServiceRun, serviceRuns } from "./scaling.ts"
import { makeScenarios, shutdown } from "./scenarios.ts"

/** Measurements outside the round-based harness, selectable in `BENCH_ONLY` like scenarios. */
const EXTRA = {
  breakers: "breakers",
  service: "service",
  paths: "paths",
  ceiling: "ceiling",
  profile: "profile"
} as const

const root = fileURLToPath(new URL("../..", import.meta.url))

const positiveInt = (name: string, fallback: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${raw}`)
  return value
}

const version = (path: string): string => {
  try {
    return (JSON.parse(readFileSync(new URL(path, `file://${root}`), "utf8")) as { version: string }).version
  } catch {
    return "unknown"
  }
}

const commit = (): string => {
  const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" })
  if (head.status !== 0) return "unknown"
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "packages", "tools/bench"], {
    cwd: root,
    encoding: "utf8"
  })
  return `${head.stdout.trim()}${dirty.stdout.trim() === "" ? "" : " (with uncommitted changes)"}`
}

const log = (line: string) => process.stderr.write(`${line}\n`)

export const main = async (): Promise<void> => {
  const quick = process.env["BENCH_QUICK"] === "1"
  const rounds = positiveInt("BENCH_ROUNDS", quick ? 2 : 15)
  const targetMs = positiveInt("BENCH_TARGET_MS", quick ? 20 : 60)
  const partial = (process.env["BENCH_ONLY"] ?? "") !== ""
  const out = process.env["BENCH_OUT"] ?? (quick || partial ? "-" : "docs/performance.md")

  const started = performance.now()
  const loadAtStart = os.loadavg()[0]!
  const only = (process.env["BENCH_ONLY"] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
  const all = await makeScenarios()
  const known = [...all.map((s) => s.id), ...Object.values(EXTRA)]
  const unknown = only.filter((id) => !known.includes(id))
  if (unknown.length > 0) {
    throw new Error(`BENCH_ONLY: unknown scenario ${unknown.join(", ")}; known: ${known.join(", ")}`)
  }
  const wanted = (id: string) => only.length === 0 || only.includes(id)
  // A child of the paths measurement (`paths.ts`) runs only our rows and their bare rows.
  const child = process.env["BENCH_PATHS_CHILD"] === "1"
  // First, while this process waits: the paths' children share the machine with nothing else of this run.
  const paths: Array<PathRun> = wanted(EXTRA.paths) && !child ? await pathRuns({ rounds, targetMs, quick, log }) : []
  const scenarios = all.filter((s) => wanted(s.id)).map((s) =>
    child ? { ...s, cases: s.cases.filter((c) => PATH_CASES.has(c.id)) } : s
  )
  log(`breaker call path: ${breakerPath}`)
  const results = await runAll(scenarios, { rounds, targetMs, log })
  await shutdown()
  // Printed beside the start's: the load of this run's own scenarios, before the service runs.
  const loadBeforeServices = os.loadavg()[0]!

  const breakers: Array<BreakersRow> = []
  if (wanted(EXTRA.breakers)) {
    for (const count of BREAKER_COUNTS) {
      log(`breakers  ${count.toLocaleString("en-US")} in one registry`)
      breakers.push(await breakersRow(count, quick))
    }
  }
  const serviceSettings = {
    seconds: positiveInt("BENCH_SERVICE_SECONDS", quick ? 2 : 5),
    rounds: positiveInt("BENCH_SERVICE_ROUNDS", quick ? 2 : 8),
    connections: positiveInt("BENCH_SERVICE_CONNECTIONS", 10),
    log
  }
  const service: Array<ServiceRun> = wanted(EXTRA.service) ? await serviceRuns(serviceSettings) : []
  const profile: PlanProfile | undefined = wanted(EXTRA.profile)
    ? await planProfile({ seconds: quick ? 2 : 10, connections: serviceSettings.connections, log })
    : undefined
  // Last: it starts the four test servers (provisioned by `npm test`), which would load the machine for the rest.
  const ceiling: Ceiling | undefined = wanted(EXTRA.ceiling)
    ? await ceilingRun({
      seconds: positiveInt("BENCH_CEILING_SECONDS", quick ? 1 : 5),
      concurrency: positiveInt("BENCH_CEILING_CONCURRENCY", 32),
      // As many plans in flight as each server had calls in flight alone: a plan is sequential, so fewer
      // connections would leave every server idle part of the time and measure the load, not the service.
      connections: positiveInt("BENCH_CEILING_CONCURRENCY", 32),
      log
    })
    : undefined
  const scaling: Scaling = { breakers, service, serviceSettings, paths, ceiling, profile }
  const durationSeconds = (performance.now() - started) / 1000

  const report = consoleReport(results, scaling)
  console.log(report)
  // A measuring tool that prints a figure it did not observe has failed (docs/performance.md, "How to read").
  const unobserved = report.split("\n").filter((line) => /\bNaN\b|\bn\/a\b|undefined/.test(line))
  if (
    results.length === 0 && breakers.length === 0 && service.length === 0 && paths.length === 0 &&
    ceiling === undefined && profile === undefined
  ) {
    unobserved.push("nothing was measured")
  }
  // A paths child reports to its parent through BENCH_JSON; the parent's report is the one checked.
  if (unobserved.length > 0 && !child) {
    log(`bench: FAILED: figures not observed:\n  ${unobserved.join("\n  ")}`)
    process.exitCode = 1
    return
  }
  const json = process.env["BENCH_JSON"]
  if (json !== undefined && json !== "") {
    writeFileSync(
      json,
      JSON.stringify(
        {
          path: breakerPath,
          load: [loadAtStart, os.loadavg()[0]!],
          scenarios: results.map((r) => ({ scenario: r.scenario.id, orders: r.orders, cases: r.cases })),
          breakers,
          service,
          paths,
          ceiling,
          profile
        },
        null,
        2
      )
    )
    log(`wrote ${json}`)
  }

  const env: Environment = {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    memoryGiB: os.totalmem() / 2 ** 30,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    breakerPath,
    packages: [
      ["@neural-hive/resilience", version("packages/resilience/package.json")],
      ["effect", version("node_modules/effect/package.json")],
      ["opossum", version("node_modules/opossum/package.json")],
      ["cockatiel", version("node_modules/cockatiel/package.json")],
      ["prom-client", version("node_modules/prom-client/package.json")],
      ["autocannon", version("node_modules/autocannon/package.json")]
    ],
    commit: commit(),
    load: [loadAtStart, loadBeforeServices, os.loadavg()[0]!],
    rounds,
    targetMs,
    quick,
    durationSeconds,
    command: [
      quick ? "BENCH_QUICK=1" : "",
      process.env["BENCH_ROUNDS"] ? `BENCH_ROUNDS=${rounds}` : "",
      process.env["BENCH_TARGET_MS"] ? `BENCH_TARGET_MS=${targetMs}` : "",
      process.env["BENCH_SERVICE_SECONDS"] ? `BENCH_SERVICE_SECONDS=${serviceSettings.seconds}` : "",
      process.env["BENCH_SERVICE_ROUNDS"] ? `BENCH_SERVICE_ROUNDS=${serviceSettings.rounds}` : "",
      "npm run bench"
    ].filter((s) => s !== "").join(" ")
  }
  if (out !== "-") {
    // Figures from a busy machine are noise: they are printed above, never published. Judged by the load before
    // the run started: from then on the load is the run's own (the scenarios' process with V8's GC threads read
    // 3.1 on an otherwise idle 2-core machine, the service runs and the real servers load both cores on purpose).
    const busy = loadAtStart > os.availableParallelism()
    if (busy && process.env["BENCH_ALLOW_BUSY"] !== "1") {
      log(
        `bench: not writing ${out}: load average ${loadAtStart.toFixed(1)} at the start, above the ` +
          `${os.availableParallelism()} cores; rerun on a quiet machine (BENCH_ALLOW_BUSY=1 overrides)`
      )
      process.exitCode = 1
      return
    }
    const path = new URL(out, `file://${root}`)
    writeFileSync(path, markdown(results, scaling, env))
    log(`wrote ${fileURLToPath(path)}`)
  }
  log(`done in ${durationSeconds.toFixed(0)} s`)
}
