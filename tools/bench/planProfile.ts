/**
 * Where a plan's CPU goes (`BENCH_ONLY=profile`): the example service as `npm start` runs it (embedded
 * dependencies, breakers on), under `node --cpu-prof`, loaded by autocannon after a warm-up; the profile
 * written at exit is read into self time per function and per file, each divided by the plans served in
 * the whole life of the process (start-up and warm-up included, so each figure is an upper bound).
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { EXAMPLE_MAIN, EXAMPLE_NODE, SOURCE_CONDITION } from "../rig/example.ts"
import { freePort } from "../rig/servers.ts"
import { selfTimes } from "./cpuProfile.ts"
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

const root = fileURLToPath(new URL("../..", import.meta.url))
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
  const port = await freePort()
  const child = spawn(
    EXAMPLE_NODE,
    [SOURCE_CONDITION, "--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval=200", EXAMPLE_MAIN],
    {
      cwd: root,
      env: { ...process.env, HTTP_HOST: "127.0.0.1", HTTP_PORT: String(port), DRAIN_SECONDS: "0" },
      stdio: ["ignore", "ignore", "pipe"]
    }
  )
  let stderr = ""
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2_000)
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const url = `http://127.0.0.1:${port}`
  try {
    const deadline = Date.now() + 60_000
    while (!(await fetch(`${url}/live`).then((r) => r.ok, () => false))) {
      if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}\n${stderr}`)
      if (Date.now() > deadline) throw new Error(`the service did not answer /live within 60 s\n${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    settings.log(`profile  the service under ${settings.connections} connections for ${settings.seconds} s`)
    const warm = await loadPlans(url, 2, settings.connections)
    const result = await loadPlans(url, settings.seconds, settings.connections)
    requireAllServed(result, "the profiled run")
    // SIGINT: Node writes the profile as it exits.
    child.kill("SIGINT")
    await exited
    const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"))
    if (file === undefined) throw new Error(`no profile was written in ${dir}\n${stderr}`)
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
    if (child.exitCode === null) {
      child.kill("SIGKILL")
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }
}
