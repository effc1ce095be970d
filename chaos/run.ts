/**
 * `npm run chaos`: chaos under load, ~3 minutes, stops by itself.
 *
 * Boots the Orchestrator Dynamic service against private Redis, Kafka, Temporal
 * and MongoDB (FerretDB) servers, each behind a fault proxy, drives POST /plans at
 * a steady rate while a fault schedule kills, pauses, stalls, cuts and slows each
 * server in turn, then checks the invariants from the servers themselves, prints
 * the results and writes docs/reliability.md. Exits 1 when an invariant fails.
 *
 * Needs `gc()` for the memory check, so without `--expose-gc` it runs itself
 * again with the flag.
 *
 * Environment:
 * - `CHAOS_DURATION_MS`: the schedule's length (default 150000)
 * - `CHAOS_RATE`: plans per second (default 20)
 * - `CHAOS_SEED`: repeat a run's plans and fault jitter
 * - `CHAOS_OUT`: where to write the report (default docs/reliability.md; `-` for nowhere)
 */

const number = (name: string, fallback: number): number => {
  const text = process.env[name]
  if (text === undefined || text.trim() === "") return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name}: got ${JSON.stringify(text)}, expected a positive number`)
    process.exit(2)
  }
  return value
}

// `npm run` passes --expose-gc: every measurement starts from a collected heap.
if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc (npm run does)")
const { runChaos } = await import("./harness.ts")
const out = process.env["CHAOS_OUT"]
const durationMs = number("CHAOS_DURATION_MS", 150_000)
const rate = number("CHAOS_RATE", 20)
const seed = process.env["CHAOS_SEED"] === undefined ? undefined : number("CHAOS_SEED", 1)
const command = [
  "npm run chaos",
  ...["CHAOS_DURATION_MS", "CHAOS_RATE", "CHAOS_SEED"].flatMap((name) =>
    process.env[name] === undefined ? [] : [`${name}=${process.env[name]}`]
  )
]
try {
  const report = await runChaos({
    durationMs,
    rate,
    seed,
    writeReport: out === "-" ? false : out ?? true,
    command: command.length === 1 ? command[0] : `${command.slice(1).join(" ")} ${command[0]}`
  })
  process.exitCode = report.ok ? 0 : 1
} catch (error) {
  console.error(`chaos: the run could not complete: ${error instanceof Error ? error.stack : String(error)}`)
  process.exitCode = 1
}
