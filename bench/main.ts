/**
 * Runs the scenarios, prints the tables and writes docs/performance.md.
 */
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import { runAll } from "./harness.ts"
import { consoleReport, type Environment, markdown } from "./report.ts"
import { makeScenarios, shutdown } from "./scenarios.ts"

const root = fileURLToPath(new URL("..", import.meta.url))

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
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "packages", "bench"], { cwd: root, encoding: "utf8" })
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
  const only = (process.env["BENCH_ONLY"] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
  const all = await makeScenarios()
  const unknown = only.filter((id) => !all.some((s) => s.id === id))
  if (unknown.length > 0) {
    throw new Error(`BENCH_ONLY: unknown scenario ${unknown.join(", ")}; known: ${all.map((s) => s.id).join(", ")}`)
  }
  const scenarios = only.length === 0 ? all : all.filter((s) => only.includes(s.id))
  const results = await runAll(scenarios, { rounds, targetMs, log })
  await shutdown()
  const durationSeconds = (performance.now() - started) / 1000

  console.log(consoleReport(results))
  const json = process.env["BENCH_JSON"]
  if (json !== undefined && json !== "") {
    writeFileSync(
      json,
      JSON.stringify(
        results.map((r) => ({ scenario: r.scenario.id, orders: r.orders, cases: r.cases })),
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
    packages: [
      ["@neural-hive/resilience", version("packages/resilience/package.json")],
      ["effect", version("node_modules/effect/package.json")],
      ["opossum", version("node_modules/opossum/package.json")],
      ["cockatiel", version("node_modules/cockatiel/package.json")],
      ["prom-client", version("node_modules/prom-client/package.json")]
    ],
    commit: commit(),
    rounds,
    targetMs,
    quick,
    durationSeconds,
    command: [
      quick ? "BENCH_QUICK=1" : "",
      process.env["BENCH_ROUNDS"] ? `BENCH_ROUNDS=${rounds}` : "",
      process.env["BENCH_TARGET_MS"] ? `BENCH_TARGET_MS=${targetMs}` : "",
      "npm run bench"
    ].filter((s) => s !== "").join(" ")
  }
  if (out !== "-") {
    const path = new URL(out, `file://${root}`)
    writeFileSync(path, markdown(results, env))
    log(`wrote ${fileURLToPath(path)}`)
  }
  log(`done in ${durationSeconds.toFixed(0)} s`)
}
