/**
 * The breaker's two call paths side by side: the fast path
 * (`packages/resilience/src/internal/fastPath.ts`, on the tested Effect
 * versions) and the public path (`Effect.suspend` + `Effect.onExitPrimitive`).
 * `NH_BREAKER_PATH` is read once when the breaker's module loads, so each path
 * runs in child processes of its own (`tools/bench/run.ts` with `BENCH_PATHS_CHILD=1`):
 * fast, public, public, fast, so that a drift in the machine's load falls on
 * both paths alike. `main.ts` runs them first, before its own scenarios. Each child runs our Effect rows of (1a) and (3) with their
 * bare rows; the per-round figures of a path's two children are pooled.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { CaseResult } from "./harness.ts"
import { ID, SCENARIO } from "./scenarios.ts"

export type BreakerPath = "fast" | "public"

/** The cases a child runs: ours and the bare rows they are compared with. */
export const PATH_CASES: ReadonlySet<string> = new Set([ID.bareEffect, ID.bareEffectFail, ID.ours, ID.oursOnce])
export const PATH_SCENARIOS: ReadonlyArray<string> = [SCENARIO.closedEffect, SCENARIO.rejection]

/** What a child writes to its `BENCH_JSON` file (see `main.ts`). */
interface ChildJson {
  readonly path: string
  readonly load: readonly [number, number]
  readonly scenarios: ReadonlyArray<{ readonly scenario: string; readonly cases: ReadonlyArray<CaseResult> }>
}

export interface PathRun {
  /** The value of `NH_BREAKER_PATH` the child ran with. */
  readonly path: BreakerPath
  /** The child's `reason` from fastPath.ts: `engaged` when its calls really took the fast path. */
  readonly reason: string
  /** The 1-minute load average at the start and the end of the child. */
  readonly load: readonly [number, number]
  readonly scenarios: ChildJson["scenarios"]
}

export interface PathSettings {
  readonly rounds: number
  readonly targetMs: number
  readonly quick: boolean
  readonly log: (line: string) => void
}

export const PATH_ORDER: ReadonlyArray<BreakerPath> = ["fast", "public", "public", "fast"]

const root = fileURLToPath(new URL("../..", import.meta.url))

const child = (breakerPath: BreakerPath, settings: PathSettings, json: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...process.execArgv, path.join(root, "tools/bench/run.ts")], {
      cwd: root,
      env: {
        ...process.env,
        NH_BREAKER_PATH: breakerPath,
        BENCH_PATHS_CHILD: "1",
        BENCH_ONLY: PATH_SCENARIOS.join(","),
        BENCH_ROUNDS: String(settings.rounds),
        BENCH_TARGET_MS: String(settings.targetMs),
        BENCH_QUICK: settings.quick ? "1" : "",
        BENCH_OUT: "-",
        BENCH_JSON: json
      },
      // The child's tables are not needed (the parent reads its JSON); its progress goes to our stderr.
      stdio: ["ignore", "ignore", "inherit"]
    })
    proc.once("error", reject)
    proc.once("exit", (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`bench child with NH_BREAKER_PATH=${breakerPath} ended with ${signal ?? code}`)))
  })

/** Runs the children in `PATH_ORDER`, one at a time. */
export const pathRuns = async (settings: PathSettings): Promise<Array<PathRun>> => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-paths-"))
  try {
    const runs: Array<PathRun> = []
    for (const [i, breakerPath] of PATH_ORDER.entries()) {
      settings.log(`paths  ${i + 1}/${PATH_ORDER.length}: child with NH_BREAKER_PATH=${breakerPath}`)
      const json = path.join(dir, `${i}.json`)
      await child(breakerPath, settings, json)
      const out = JSON.parse(readFileSync(json, "utf8")) as ChildJson
      runs.push({ path: breakerPath, reason: out.path, load: out.load, scenarios: out.scenarios })
    }
    return runs
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** One of our rows on one path: the added cost over its bare row, pooled over the path's children. */
export interface PathFigure {
  /** Per-round added cost over the bare row, in ns per call, every child of the path. */
  readonly added: ReadonlyArray<number>
  /** Per-round CPU ns per call. */
  readonly perUnit: ReadonlyArray<number>
}

export const pathFigure = (
  runs: ReadonlyArray<PathRun>,
  breakerPath: BreakerPath,
  scenario: string,
  id: string
): PathFigure => {
  const cases = runs.filter((r) => r.path === breakerPath).flatMap((r) =>
    r.scenarios.filter((s) => s.scenario === scenario).flatMap((s) => s.cases.filter((c) => c.id === id))
  )
  return { added: cases.flatMap((c) => c.added ?? []), perUnit: cases.flatMap((c) => c.perUnit) }
}
