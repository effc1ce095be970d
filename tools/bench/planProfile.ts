/**
 * Where a plan's CPU goes (`BENCH_ONLY=profile`): the example service as `npm start` runs it (embedded
 * dependencies, breakers on), under `node --cpu-prof`, loaded by autocannon after a warm-up; the profile
 * written at exit is read into self time per function and per file, each divided by the plans served in
 * the whole life of the process (start-up and warm-up included, so each figure is an upper bound).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { selfTimes } from "./cpuProfile.ts"
import { type ExampleProcess, startExample } from "./example.ts"
import { loadPlans, requireAllServed } from "./planLoad.ts"

export interface Frame {
  readonly where: string
  /** µs of self time per plan served. */
  readonly perPlanUs: number
  /** Share of the busy time (idle left out), %. */
  readonly percent: number
}

export interface PlanProfile {
  readonly plans: number
  readonly seconds: number
  /** Busy µs per plan: every sample but `(idle)`, over the plans served. */
  readonly busyPerPlanUs: number
  readonly functions: ReadonlyArray<Frame>
  readonly files: ReadonlyArray<Frame>
}

const IDLE = /^\(idle\)/

const frames = (times: ReadonlyMap<string, number>, busy: number, plans: number, limit: number) =>
  [...times].filter(([key]) => !IDLE.test(key)).toSorted((a, b) => b[1] - a[1]).slice(0, limit).map((
    [where, micros]
  ) => ({ where: where.replace(/\s+/g, " ").trim(), perPlanUs: micros / plans, percent: 100 * micros / busy }))

/** Profiles the service under `seconds` of load (after 2 s of warm-up) and returns its top frames. */
export const planProfile = async (settings: {
  readonly seconds: number
  readonly connections: number
  readonly log: (line: string) => void
}): Promise<PlanProfile> => {
  const dir = mkdtempSync(join(tmpdir(), "nh-plan-profile-"))
  let service: ExampleProcess | undefined
  try {
    service = await startExample({}, ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval=200"])
    const url = service.url
    settings.log(`profile  the service under ${settings.connections} connections for ${settings.seconds} s`)
    const warm = await loadPlans(url, 2, settings.connections)
    const result = await loadPlans(url, settings.seconds, settings.connections)
    requireAllServed(result, "the profiled run")
    // SIGINT: Node writes the profile as it exits.
    await service.stop("SIGINT")
    const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"))
    if (file === undefined) throw new Error(`no profile was written in ${dir}\n${service.stderr()}`)
    const times = selfTimes(join(dir, file))
    const idle = [...times.byFunction].filter(([key]) => IDLE.test(key)).reduce((n, [, us]) => n + us, 0)
    const busy = times.total - idle
    const plans = warm.requests.total + result.requests.total
    return {
      plans,
      seconds: settings.seconds,
      busyPerPlanUs: busy / plans,
      functions: frames(times.byFunction, busy, plans, 12),
      files: frames(times.byFile, busy, plans, 8)
    }
  } finally {
    await service?.stop("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
  }
}
