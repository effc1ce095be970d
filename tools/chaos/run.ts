/**
 * `npm run chaos`: chaos under load, ~3 minutes, stops by itself.
 *
 * Boots the Orchestrator Dynamic service against private Redis, Kafka, Temporal
 * and MongoDB (FerretDB) servers, each behind a fault proxy, drives POST /plans at
 * a steady rate while a fault schedule kills, pauses, stalls, cuts and slows each
 * server in turn, then checks the invariants from the servers themselves, prints
 * the results and writes docs/reliability.md. Exits 1 when an invariant fails.
 *
 * Then the crash scenario (tools/chaos/crash.ts): the service's own process, under the same load,
 * SIGKILLed twice (with a backlog while Kafka is out, then mid-drain) and started again; the
 * invariants (e1)-(e7) are checked the same way and written to docs/reliability.md too.
 *
 * `npm run chaos -- --find-rate`: no faults; raises the rate step by step and prints the
 * highest the rig sustains on this machine, then runs the schedule at half of it.
 * `npm run chaos -- --crash`: the crash scenario only.
 *
 * Needs `gc()` for the memory check (`npm run` passes `--expose-gc`).
 *
 * Environment:
 * - `CHAOS_DURATION_MS`: the schedule's length (default 150000)
 * - `CHAOS_CRASH_DURATION_MS`: the crash scenario's length (default 60000)
 * - `CHAOS_RATE`: plans per second (default: half of `SUSTAINED_RATE`)
 * - `CHAOS_SEED`: repeat a run's plans and fault jitter
 * - `CHAOS_OUT`: where to write the report (default docs/reliability.md; `-` for nowhere)
 * - `CHAOS_DELIVERY`: the outbox relay's delivery, `at-least-once` (default) or `exactly-once`
 * - `CHAOS_SERVICE_LOG`: a file that receives every line the crash scenario's service process wrote (each life's prefixed by its number)
 */

/** The highest no-fault rate `--find-rate` measured on the project's 2-core machine (docs/reliability.md, "Rate"). */
const SUSTAINED_RATE = 30
const FIND_RATES = [5, 10, 20, 30, 40, 60, 80, 120]

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

const args = process.argv.slice(2)
const unknown = args.filter((a) => a !== "--find-rate" && a !== "--crash")
if (unknown.length > 0) {
  console.error(`chaos: unknown argument ${unknown.join(" ")}; expected --find-rate or --crash`)
  process.exit(2)
}
if (args.includes("--find-rate") && args.includes("--crash")) {
  console.error("chaos: --find-rate and --crash go apart: --crash runs at CHAOS_RATE, or half the rate found before")
  process.exit(2)
}
// Every memory measurement starts from a collected heap.
if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc (npm run does)")
const { findRate, runChaos } = await import("./harness.ts")
const { crashMarkdown, runCrash } = await import("./crash.ts")
const { writeCrashSection } = await import("./report.ts")
const out = process.env["CHAOS_OUT"]
const durationMs = number("CHAOS_DURATION_MS", 150_000)
const crashDurationMs = number("CHAOS_CRASH_DURATION_MS", 60_000)
const seed = process.env["CHAOS_SEED"] === undefined ? undefined : number("CHAOS_SEED", 1)
const deliveryText = process.env["CHAOS_DELIVERY"] ?? "at-least-once"
if (deliveryText !== "at-least-once" && deliveryText !== "exactly-once") {
  console.error(`CHAOS_DELIVERY: got ${JSON.stringify(deliveryText)}, expected at-least-once or exactly-once`)
  process.exit(2)
}
const delivery: "at-least-once" | "exactly-once" = deliveryText
try {
  const rateFinding = args.includes("--find-rate") ? await findRate({ rates: FIND_RATES }) : undefined
  if (rateFinding !== undefined) {
    console.log(`chaos: highest rate held without faults: ${rateFinding.sustained} plans/s`)
  }
  const rate = number("CHAOS_RATE", Math.max(1, (rateFinding?.sustained ?? SUSTAINED_RATE) / 2))
  const command = [
    ...["CHAOS_DURATION_MS", "CHAOS_CRASH_DURATION_MS", "CHAOS_RATE", "CHAOS_SEED", "CHAOS_DELIVERY"].flatMap((name) =>
      process.env[name] === undefined ? [] : [`${name}=${process.env[name]}`]
    ),
    "npm run chaos",
    ...(args.length > 0 ? ["--", ...args] : [])
  ]
  const commandLine = command.join(" ")
  const report = args.includes("--crash") ? undefined : await runChaos({
    durationMs,
    rate,
    seed,
    rateFinding,
    writeReport: out === "-" ? false : out ?? true,
    command: commandLine,
    delivery
  })
  const crash = await runCrash({ durationMs: crashDurationMs, rate, seed, delivery })
  if (out !== "-") console.log(`chaos: wrote ${writeCrashSection(crashMarkdown(crash, commandLine), out ?? true)}`)
  process.exitCode = (report?.ok ?? true) && crash.ok ? 0 : 1
} catch (error) {
  console.error(`chaos: the run could not complete: ${error instanceof Error ? error.stack : String(error)}`)
  process.exitCode = 1
}
