/**
 * `npm run policies`: the policies measured against a real Redis behind the fault proxy (tools/policies/
 * scenarios.ts), about a minute; `POLICIES_QUICK=1` runs a short form (seconds) that checks every figure
 * is observed, for CI. Prints a table and the load average, and writes them into docs/policies.md
 * between `<!-- policies:results:start -->` and `<!-- policies:results:end -->` (`POLICIES_OUT`: another
 * file, or `-` for nowhere; the quick form writes nowhere unless told).
 *
 * (i) retry amplification in a full outage: attempts reaching the dependency ÷ calls offered, naive
 *     2 retries vs `RetryBudget.withRetry` (goal ≤ 1.1 plus the reserve);
 * (ii) a hanging dependency: calls outstanding over time with and without `Bulkhead.adaptive`, heap and
 *     RSS growth, event-loop delay p99;
 * (iii) hedged GETs with 5 % of replies held 200 ms: p50/p99 with and without `Hedge`, extra GETs
 *     counted by Redis (goal: p99 at least halved for ≤ 10 % extra).
 *
 * Exits 1 when a figure is NaN, missing, or a zero the run did not observe.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import {
  type Amplification,
  amplification,
  type Hedged,
  hedged,
  hedgeLabel,
  logged,
  type Rig,
  SLACK_MS,
  type Stall,
  stall,
  startRig
} from "./scenarios.ts"

const QUICK = process.env["POLICIES_QUICK"] === "1"
const root = fileURLToPath(new URL("../..", import.meta.url))
const settings = QUICK
  ? {
    outage: { rate: 100, millis: 2_000 },
    stall: { rate: 500, warmMillis: 1_000, stallMillis: 1_500, everyMillis: 250 },
    hedge: { rate: 200, millis: 2_000, pool: 8, fraction: 0.05, delayMs: 200 }
  }
  : {
    outage: { rate: 100, millis: 10_000 },
    stall: { rate: 500, warmMillis: 2_000, stallMillis: 5_000, everyMillis: 250 },
    hedge: { rate: 200, millis: 10_000, pool: 8, fraction: 0.05, delayMs: 200 }
  }

// Above the jitter of a machine shared with other builds (at a load of 7, a tenth of the calls took more than the
// default 5 ms, and their hedges spent the budget the slow tail needed).
const HEDGE = { percentile: 0.9, minDelayMillis: 20 }

const log = (line: string) => console.log(`[policies] ${line}`)
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(", ")
const f1 = (x: number) => (Math.abs(x) < 0.05 ? 0 : x).toFixed(1)
const f2 = (x: number) => x.toFixed(2)

const amplificationTable = (rows: ReadonlyArray<Amplification>) => [
  "| retries (2 per call, exponential from 100 ms, jittered) | calls offered | attempts (client) | reached the proxy | reached ÷ offered | goal | denied by the budget |",
  "|---|---|---|---|---|---|---|",
  ...rows.map((r) =>
    `| ${
      r.policy === "naive" ? "naive (`Effect.retry`, `times: 2`)" : "`RetryBudget.withRetry` (ratio 0.1, 1/s reserve)"
    } | ${r.offered} | ${r.attempts} | ${r.reached} | **${f2(r.reached / r.offered)}** | ${
      r.policy === "naive" ? "–" : `≤ 1.1 + ${r.reserve} ÷ ${r.offered} = ${f2(1.1 + r.reserve / r.offered)}`
    } | ${r.denied} |`
  )
]

const stallTable = (without: Stall, withLimit: Stall) => {
  const rows = without.samples.map((s, i) => {
    const w = withLimit.samples[i]
    return `| ${(s.at / 1000).toFixed(2)} | ${s.inFlight} | ${w?.inFlight ?? "–"} | ${
      w === undefined ? "–" : Math.floor(w.limit)
    } |`
  })
  return [
    "| s into the stall | in flight, no limit | in flight, `Bulkhead.adaptive` | its limit |",
    "|---|---|---|---|",
    ...rows,
    "",
    "| | no limit | `Bulkhead.adaptive` |",
    "|---|---|---|",
    `| most in flight before the stall (what Redis served) | ${without.servedBefore} | ${withLimit.servedBefore} |`,
    `| calls offered during the stall | ${without.offeredDuringStall} | ${withLimit.offeredDuringStall} |`,
    `| in flight when the stall ended | **${without.inFlightAtEnd}** | **${withLimit.inFlightAtEnd}** |`,
    `| calls held by the caller when it ended | ${without.heldAtEnd} | ${withLimit.heldAtEnd} |`,
    `| rejected before the stall (the limit moving under load) | ${without.rejectedBefore} | ${withLimit.rejectedBefore} |`,
    `| rejected at once during the stall (\`BulkheadRejectedError\`) | ${without.rejectedDuringStall} | ${withLimit.rejectedDuringStall} |`,
    `| heap growth over the stall (after GC) | ${f1(without.heapGrowthMB)} MB | ${f1(withLimit.heapGrowthMB)} MB |`,
    `| RSS growth over the stall | ${f1(without.rssGrowthMB)} MB | ${f1(withLimit.rssGrowthMB)} MB |`,
    `| event-loop delay p99 during the stall | ${f1(without.eventLoopP99Ms)} ms | ${f1(withLimit.eventLoopP99Ms)} ms |`,
    `| after the proxy passed again: succeeded / failed | ${without.succeeded} / ${without.failed} | ${withLimit.succeeded} / ${withLimit.failed} |`
  ]
}

const hedgeTable = (plain: Hedged, hedging: Hedged) => [
  `| GET | calls | replies the proxy held | p50 | p99 | calls ≥ ${
    settings.hedge.delayMs - SLACK_MS
  } ms | hedges sent / won / denied | GETs Redis served | extra calls |`,
  "|---|---|---|---|---|---|---|---|---|",
  ...[plain, hedging].map((r) =>
    `| ${hedgeLabel(r.how)} | ${r.calls} | ${r.repliesDelayed} | ${f1(r.p50)} ms | **${
      f1(r.p99)
    } ms** | ${r.slowCalls} | ${
      r.hedging ? `${r.hedged} / ${r.hedgesWon} / ${r.hedgesDenied}` : "–"
    } | ${r.serverGets} | ${f1(r.extraPercent)} % |`
  )
]

/** Figures that are NaN, missing, or a zero that was not observed. */
const unobserved = (
  amp: ReadonlyArray<Amplification>,
  stalls: ReadonlyArray<Stall>,
  hedges: ReadonlyArray<Hedged>
): Array<string> => {
  const problems: Array<string> = []
  const finite = (what: string, x: number) => {
    if (!Number.isFinite(x)) problems.push(`${what}: ${x}`)
  }
  const positive = (what: string, x: number) => {
    finite(what, x)
    if (!(x > 0)) problems.push(`${what}: ${x}, expected above 0`)
  }
  if (amp.length !== 2) problems.push(`amplification: ${amp.length} rows, expected 2`)
  for (const r of amp) {
    positive(`${r.policy}: calls offered`, r.offered)
    positive(`${r.policy}: attempts reaching the proxy`, r.reached)
    if (r.reached !== r.attempts) {
      problems.push(`${r.policy}: ${r.attempts} attempts but ${r.reached} reached the proxy`)
    }
  }
  const budget = amp.find((r) => r.policy === "budget")
  if (budget !== undefined) positive("budget: retries denied", budget.denied)
  if (stalls.length !== 2) problems.push(`stall: ${stalls.length} runs, expected 2`)
  for (const s of stalls) {
    const name = s.limited ? "stall with the limit" : "stall without a limit"
    positive(`${name}: in flight before`, s.servedBefore)
    positive(`${name}: held at the end`, s.heldAtEnd)
    positive(`${name}: in flight at the end`, s.inFlightAtEnd)
    positive(`${name}: offered during the stall`, s.offeredDuringStall)
    finite(`${name}: heap growth`, s.heapGrowthMB)
    finite(`${name}: RSS growth`, s.rssGrowthMB)
    positive(`${name}: event-loop delay p99`, s.eventLoopP99Ms)
    positive(`${name}: succeeded`, s.succeeded)
    if (s.samples.length < 3) problems.push(`${name}: ${s.samples.length} samples`)
    if (s.limited) {
      positive(`${name}: limit`, s.limitAtStall)
      positive(`${name}: rejected during the stall`, s.rejectedDuringStall)
    }
  }
  if (hedges.length !== 2) problems.push(`hedge: ${hedges.length} runs, expected 2`)
  for (const h of hedges) {
    const name = h.hedging ? "hedged" : "not hedged"
    positive(`${name}: p50`, h.p50)
    positive(`${name}: p99`, h.p99)
    positive(`${name}: replies the proxy held`, h.repliesDelayed)
    positive(`${name}: GETs Redis served`, h.serverGets)
    finite(`${name}: extra calls`, h.extraPercent)
    if (!h.allCorrect) problems.push(`${name}: an answer was not the stored value`)
    if (h.hedging) {
      positive(`${name}: hedges sent`, h.hedged)
      positive(`${name}: hedges won`, h.hedgesWon)
      positive(`${name}: extra calls`, h.extraPercent)
    }
  }
  return problems
}

const write = (file: string, body: string) => {
  const start = "<!-- policies:results:start -->"
  const end = "<!-- policies:results:end -->"
  const text = fs.readFileSync(file, "utf8")
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i) throw new Error(`${file}: no ${start} ... ${end} markers`)
  fs.writeFileSync(file, `${text.slice(0, i + start.length)}\n${body}\n${text.slice(j)}`)
}

const goals = (amp: ReadonlyArray<Amplification>, stalls: ReadonlyArray<Stall>, hedges: ReadonlyArray<Hedged>) => {
  const budget = amp.find((r) => r.policy === "budget")
  const limited = stalls.find((s) => s.limited)
  const [plain, hedging] = [hedges.find((h) => !h.hedging), hedges.find((h) => h.hedging)]
  const lines: Array<string> = []
  if (budget !== undefined) {
    const bound = 1.1 + budget.reserve / budget.offered
    lines.push(
      `retry amplification with the budget ${f2(budget.reached / budget.offered)} (goal ≤ 1.1 + reserve = ${
        f2(bound)
      }): ${budget.reached / budget.offered <= bound ? "met" : "MISSED"}`
    )
  }
  if (limited !== undefined) {
    lines.push(
      `in flight under the stall with the limit ${limited.inFlightAtEnd}, held ${limited.heldAtEnd} (limit ${
        Math.floor(limited.limitAtStall)
      }): ${limited.heldAtEnd <= limited.limitAtStall ? "met" : "MISSED"}`
    )
  }
  if (plain !== undefined && hedging !== undefined) {
    const met = hedging.p99 <= plain.p99 / 2 && hedging.extraPercent <= 10
    lines.push(
      `hedging p99 ${f1(plain.p99)} → ${f1(hedging.p99)} ms for ${
        f1(hedging.extraPercent)
      } % extra (goal: halved, ≤ 10 %): ${met ? "met" : "MISSED"}`
    )
  }
  return lines
}

const main = async () => {
  const loadBefore = load()
  log(`${QUICK ? "quick form" : "full run"}; load average ${loadBefore}; starting Redis and the proxy`)
  let rig: Rig | undefined
  try {
    rig = await startRig()
    const amp: Array<Amplification> = []
    for (const policy of ["naive", "budget"] as const) {
      log(`(i) full outage, ${policy} retries`)
      amp.push(await amplification(rig, policy, settings.outage))
    }
    const stalls: Array<Stall> = []
    for (const limited of [false, true]) {
      log(`(ii) hanging dependency, ${limited ? "with" : "without"} the adaptive limit`)
      stalls.push(await stall(rig, limited, settings.stall))
    }
    const hedges: Array<Hedged> = []
    for (const how of [undefined, HEDGE]) {
      log(`(iii) slow tail, ${hedgeLabel(how)}`)
      hedges.push(await hedged(rig, how, settings.hedge))
    }
    const loadAfter = load()
    const busy = Math.max(os.loadavg()[0]!, Number(loadBefore.split(",")[0])) > 2
    const s = settings
    const body = [
      ...(busy
        ? [
          "> **To be re-run on a quiet machine:** the load average was above 2 during this run, so the timings " +
          "(latencies, event-loop delay) are those of a busy machine; the counts are not affected.",
          ""
        ]
        : []),
      `Measured by \`${QUICK ? "POLICIES_QUICK=1 " : ""}npm run policies\` on ${
        new Date().toISOString().slice(0, 10)
      }, against a private \`redis-server\` behind the rig's fault proxy, on a ${os.cpus().length}-core machine ` +
      `shared with the server (load average ${loadBefore} at the start, ${loadAfter} at the end).`,
      "",
      `**(i) Retry amplification in a full outage.** ${s.outage.rate} calls a second for ${
        s.outage.millis / 1000
      } s while the proxy resets every connection; each attempt dials its own connection, so the proxy's ` +
      "count of accepted connections is the count of attempts that reached the dependency (it matches the count " +
      "at the client). No breaker: it would stop both after `failMax`; the budget bounds what gets past one.",
      "",
      ...amplificationTable(amp),
      "",
      `**(ii) A hanging dependency.** ${s.stall.rate} GETs a second through \`RedisCache.make\`'s \`use\` ` +
      `(command timeout 30 s, so none times out in the window), ${s.stall.warmMillis / 1000} s with the proxy ` +
      `passing, then ${s.stall.stallMillis / 1000} s with it stalled (it forwards nothing); calls in flight ` +
      "counted at the caller. `Bulkhead.adaptive({ initialLimit: 20, minLimit: 2, maxLimit: 200 })`, no queue.",
      "",
      ...stallTable(stalls[0]!, stalls[1]!),
      "",
      `**(iii) Hedged GETs against a slow tail.** ${s.hedge.rate} GETs a second for ${
        s.hedge.millis / 1000
      } s (open loop) through \`GuardedClient.make\` over ${s.hedge.pool} ioredis connections (each attempt ` +
      "takes the one with the fewest commands pending, so a hedge does not queue behind the reply it hedges); " +
      `the proxy holds ${s.hedge.fraction * 100} % of replies ${s.hedge.delayMs} ms (seeded). The hedge learns ` +
      `its delay (p90 of recent latencies, at least ${HEDGE.minDelayMillis} ms) and takes its hedges from a retry ` +
      "budget of 10 % " +
      "(inside `RetryBudget.withRetry`, which counts the calls). GETs counted by Redis (`INFO commandstats`).",
      "",
      ...hedgeTable(hedges[0]!, hedges[1]!)
    ].join("\n")
    console.log(`\n${body}\n`)
    for (const line of goals(amp, stalls, hedges)) log(line)
    log(`log lines the policies wrote (counted, not printed): ${JSON.stringify(Object.fromEntries(logged))}`)
    const problems = unobserved(amp, stalls, hedges)
    if (problems.length > 0) {
      console.error(`policies: FAILED: figures not observed:\n  ${problems.join("\n  ")}`)
      process.exitCode = 1
      return
    }
    const out = process.env["POLICIES_OUT"] ?? (QUICK ? "-" : path.join(root, "docs/policies.md"))
    if (out !== "-") {
      write(out, body)
      log(`written into ${path.relative(root, out)}`)
    }
  } finally {
    await rig?.close()
  }
}

await main().catch((error) => {
  console.error(`policies: the run could not complete: ${error instanceof Error ? error.stack : String(error)}`)
  process.exitCode = 1
})
