/**
 * The run's output: the summary lines printed at the end, and docs/reliability.md (the part
 * above "## Bad input and abuse", which is written by hand and kept).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { LAST_FAULT_ENDS } from "./faults.ts"
import { type ChaosReport, HEALTH_EVERY_MS, type RateFinding, round, seconds } from "./model.ts"

/** The lines printed at the end of a run. */
export const summary = (report: ChaosReport): string =>
  [
    "",
    `chaos: ${report.ok ? "PASS" : "FAIL"} (seed ${report.seed})`,
    `  requests/s held: ${round(report.perSecond.total)} total, ${
      round(report.perSecond.accepted)
    } accepted (target ${report.rate}; slowest 5 s window ${round(report.perSecond.minWindow)}/s)`,
    `  plans: ${report.requests.sent} sent, ${report.requests.accepted} accepted (${report.requests.queued} with the ticket queued), ${report.requests.rejected} refused fast (503), ${report.requests.failed} failed (502), ${report.requests.violations} violations, ${report.requests.notSent} not sent (in-flight cap); ${report.requests.retried} sent twice by the client, ${report.requests.retriedAccepted} of them accepted`,
    `  faults injected: ${report.faults.length} (${report.faults.map((f) => `${f.server} ${f.inject}`).join("; ")})`,
    `  breaker trips: ${report.circuits.map((c) => `${c.circuit} ${c.trips}`).join(", ")}`,
    `  tickets lost: ${report.tickets.lost}; duplicated in MongoDB ${report.tickets.duplicatedInMongo}; Kafka duplicates (outbox ${report.delivery}) read_committed ${report.tickets.duplicatedInKafka} keys (${report.tickets.extraKafkaMessages} extra messages), read_uncommitted ${report.tickets.readUncommitted.duplicatedKeys} keys (${report.tickets.readUncommitted.extraMessages} extra)`,
    `  outbox: at most ${report.backlog.maxPending} pending; drained ${
      report.backlog.drains.map((d) => seconds(d.drainedAfterMs)).join(", ")
    } after each Kafka lift (bound ${seconds(report.backlog.boundMs)})`,
    `  latency p50 ${Math.round(report.latency.p50)} ms, p99 ${Math.round(report.latency.p99)} ms, max ${
      Math.round(report.latency.max)
    } ms (bound ${report.latencyBoundMs} ms); 503 p50 ${Math.round(report.latency.rejectedP50)} ms, p99 ${
      Math.round(report.latency.rejectedP99)
    } ms`,
    ...report.invariants.map((i) => `  [${i.ok ? "pass" : "FAIL"}] (${i.id}) ${i.name}: ${i.detail}`)
  ].join("\n")

/** Writes `markdown` to `target` (`true`: docs/reliability.md), keeping the hand-written sections; returns the file. */
const reportFile = (target: true | string): string =>
  typeof target === "string"
    ? target
    : path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docs/reliability.md")

/** The hand-written part of docs/reliability.md, kept below the generated sections. */
const KEPT = "\n## Bad input and abuse"

export const writeReport = (markdown: string, target: true | string): string => {
  const file = reportFile(target)
  const previous = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
  const kept = previous.indexOf(KEPT)
  // The crash scenario's section, run apart (`--crash`), is kept too.
  const crash = previous.indexOf(`\n${CRASH_HEADING}`)
  const tail = crash !== -1 ? previous.slice(crash) : kept !== -1 ? previous.slice(kept) : ""
  fs.writeFileSync(file, tail === "" ? markdown : `${markdown.trimEnd()}\n${tail}`)
  return file
}

export const CRASH_HEADING = "## The service process killed: SIGKILL and restart"

/** Writes (or replaces) the crash scenario's section, just above the hand-written part. */
export const writeCrashSection = (section: string, target: true | string): string => {
  const file = reportFile(target)
  const previous = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
  const start = previous.indexOf(`\n${CRASH_HEADING}`)
  const kept = previous.indexOf(KEPT)
  const head = start !== -1 ? previous.slice(0, start) : kept !== -1 ? previous.slice(0, kept) : previous
  const tail = kept !== -1 ? previous.slice(kept) : ""
  fs.writeFileSync(file, `${head.trimEnd()}\n\n${section.trimEnd()}\n${tail}`)
  return file
}

const rateSection = (finding: RateFinding | undefined, rate: number): string => {
  if (finding === undefined) {
    return `The rate was given (${rate} plans/s), not derived from a no-fault measurement in this run.`
  }
  const rows = finding.steps.map((s) =>
    `| ${s.rate} | ${round(s.answeredPerSecond)} | ${s.accepted} / ${s.sent} | ${s.notSent} | ${
      Math.round(s.p99Ms)
    } ms | ${s.held ? "held" : "**not held**"} |`
  )
  return `Measured first with \`npm run chaos -- --find-rate\` (${finding.at}, no faults, ${
    finding.stepMs / 1000
  } s per rate, one rig and one service; a rate is held when the answers keep up within 5%, every plan is
accepted, none is dropped at the in-flight cap and the p99 stays under ${finding.p99LimitMs} ms). Load average
at its end ${finding.loadAverage.map((l) => l.toFixed(2)).join(" / ")}: **the machine (2 cores) was shared
with other engineers' builds and tests at the time**, so these numbers are this machine's, on that day.

| plans/s | answered/s | accepted | not sent | p99 | |
|---|---|---|---|---|---|
${rows.join("\n")}

Highest rate held: **${finding.sustained} plans/s**. The chaos schedule runs at half of it: **${rate} plans/s**.`
}

export const toMarkdown = (
  report: Omit<ChaosReport, "markdown">,
  extra: {
    readonly command: string
    readonly loadAtStart: ReadonlyArray<number>
    readonly healthErrors: number
    readonly errorSamples: ReadonlyArray<string>
    readonly maxInFlight: number
  }
): string => {
  const cpus = os.cpus()
  const machine = `${cpus.length} × ${cpus[0]?.model.trim() ?? "unknown CPU"}, ${
    Math.round(os.totalmem() / 1024 ** 3)
  } GiB, ${os.type()} ${os.release()}, Node ${process.version}; load average at start ${
    extra.loadAtStart.map((l) => l.toFixed(2)).join(" / ")
  } (a machine shared with other work)`
  const faultRows = report.faults.map((f) =>
    `| ${f.server} | ${f.inject} | ${seconds(f.plannedFromMs)} | ${seconds(f.injectedAtMs)} | ${f.lift} | ${
      seconds(f.liftedAtMs)
    } | ${seconds(f.liftDoneAtMs)} |`
  )
  const circuitRows = report.circuits.map((c) =>
    `| ${c.circuit} | ${c.trips} | ${c.halfOpenTransitions} | ${c.closedTransitions} | ${c.failures} | ${c.rejected} | ${c.finalState} |`
  )
  const stopped = Object.entries(report.stoppedBy).toSorted((a, b) => b[1] - a[1]).map(([k, n]) => `| ${k} | ${n} |`)
  const { backlog, leftovers, tickets } = report
  return `# Reliability: chaos under load

\`npm run chaos\` drives the Orchestrator Dynamic service (booted from its layer graph, \`App.make\`, on
127.0.0.1) at a steady rate against private real servers (Redis, Kafka, the Temporal test server, FerretDB
for MongoDB, each behind a fault proxy), while a fault schedule crashes, hangs, stalls, cuts and slows
each of them in turn, overlapping. Then it checks, from the servers themselves, that no accepted plan was
lost, that no plan was refused for Kafka, that refused plans left nothing behind, that the outbox drained,
and that every breaker came back. The program is \`tools/chaos/\` (\`harness.ts\` runs the phases: \`rig.ts\`,
\`service.ts\`, \`load.ts\`, \`faults.ts\`, \`readback.ts\` and \`invariants.ts\`, \`report.ts\`); a 40-second
version at 8 plans/s runs in \`npm test\` (\`test/chaos/chaos.test.ts\`) and does not write this file. See
docs/testing.md, "Chaos", and docs/outbox.md for the pattern checked here.

Then the same command kills the service itself: the crash scenario (\`tools/chaos/crash.ts\`, section "The
service process killed" below) runs the example's real entry point as its own process, SIGKILLs it twice
under load and starts it again, and checks that nothing was lost or duplicated beyond what the message key
collapses (its 30-second version: \`test/chaos/crash.test.ts\`).

This file is written by the run it describes.

## Rate

${rateSection(report.rateFinding, report.rate)}

## Run

| | |
|---|---|
| date | ${report.startedAt} |
| machine | ${machine} |
| command | \`${extra.command}\` |
| seed | ${report.seed} (\`CHAOS_SEED=${report.seed}\` repeats the plans and the fault jitter) |
| load | ${report.rate} plans/s, open loop (fixed interval, at most ${extra.maxInFlight} in flight, a failed plan is never retried), ${
    report.durationMs / 1000
  } s of schedule (the last ${
    Math.round((1 - LAST_FAULT_ENDS) * 100)
  }% without faults), longer if needed until every breaker is CLOSED: ${round(report.loadMs / 1000)} s in all |
| flow of one plan | Temporal and MongoDB breakers checked (503 at once if one refuses, nothing written) → Redis GET + SETEX (fail-open) → Temporal start workflow \`plan-<id>\` → MongoDB insert of the ticket with its outbox mark (\`orchestrator.tickets\`, \`_id: ticket-<id>\`, with the attempt's id and the plan's hash; if this fails, the attempt deletes only its own pending ticket and terminates only a run it started itself) → 202, ticket \`queued\`; the relay publishes it to \`execution-tickets\` (key \`ticket-<id>\`) through \`kafka_producer\` |

Breaker settings (the Orchestrator Dynamic format, short periods so every outage shows whole cycles):

\`\`\`yaml
${report.settingsYaml.trimEnd()}
\`\`\`

## Fault schedule

Times are from the start of the load; the planned time has a small seeded jitter. A restart is done when
the server answers again.

| server | fault | planned | injected | lifted by | lifted at | lift done |
|---|---|---|---|---|---|---|
${faultRows.join("\n")}

Two fail-fast breakers out together: at most ${report.overlap.maxNotClosedFailFast} fail-fast breakers not CLOSED at once
(${report.overlap.maxOpenFailFast} OPEN at the same moment; ${report.overlap.maxNotClosed} counting Redis), first seen at ${
    seconds(report.overlap.firstAtMs)
  } (${report.overlap.circuits.join(", ")}), about ${
    seconds(report.overlap.msWithTwoOrMoreFailFast)
  } in all (sampled every ${HEALTH_EVERY_MS} ms
from \`/health\`). Every breaker was CLOSED again at ${seconds(report.allClosedAtMs)}.

## Results

| measure | value |
|---|---|
| requests per second held | ${
    round(report.perSecond.total)
  } answered/s (target ${report.rate}; slowest 5-second window ${round(report.perSecond.minWindow)}/s), ${
    round(report.perSecond.accepted)
  } accepted/s |
| plans | ${report.requests.sent} sent: ${report.requests.accepted} accepted (202, ${report.requests.queued} with the ticket queued for the relay), ${report.requests.rejected} refused fast (503), ${report.requests.failed} failed with a typed error (502), ${report.requests.violations} anything else |
| not sent (in-flight cap reached) | ${report.requests.notSent} |
| sent twice by the client (same id and body), of them accepted | ${report.requests.retried}, ${report.requests.retriedAccepted} |
| faults injected | ${report.faults.length} (on all four servers; see the schedule) |
| breaker trips | ${report.circuits.map((c) => `${c.circuit} ${c.trips}`).join(", ")} |
| 503 latency | p50 ${Math.round(report.latency.rejectedP50)} ms, p99 ${Math.round(report.latency.rejectedP99)} ms |
| latency, every plan | p50 ${Math.round(report.latency.p50)} ms, p99 ${Math.round(report.latency.p99)} ms, max ${
    Math.round(report.latency.max)
  } ms (bound ${report.latencyBoundMs} ms) |
| **tickets lost** | **${tickets.lost}** (accepted but missing in Kafka or MongoDB) |
| outbox delivery | ${report.delivery} |
| duplicates | MongoDB ${tickets.duplicatedInMongo} (must be 0); Kafka, as a \`read_committed\` reader sees it: ${tickets.duplicatedInKafka} keys with more than one message, ${tickets.extraKafkaMessages} extra messages (${
    report.delivery === "exactly-once" ? "must be 0" : "reported, not failed: see below"
  }); as a \`read_uncommitted\` reader: ${tickets.readUncommitted.duplicatedKeys} keys, ${tickets.readUncommitted.extraMessages} extra messages |
| tickets read back | Kafka ${tickets.inKafka} keys, MongoDB ${tickets.inMongo} documents |
| outbox backlog | at most ${backlog.maxPending} pending (at ${seconds(backlog.maxPendingAtMs)}); empty ${
    backlog.drains.map((d) =>
      `${seconds(d.drainedAfterMs)} after Kafka (and MongoDB) were back at ${seconds(d.liftDoneAtMs)}`
    ).join(
      ", "
    )
  }; ${backlog.finalPending} pending when the load stopped, empty ${
    seconds(backlog.finalDrainMs)
  } later; ${backlog.pendingInMongo} left marked pending in MongoDB |
| plans not accepted, what they left | ${leftovers.checked} checked: ${leftovers.ticketsInMongo} tickets in MongoDB, ${leftovers.messagesInKafka} messages in Kafka; workflows ${leftovers.notFoundWorkflows} never started, ${leftovers.terminatedWorkflows} terminated (compensated), ${leftovers.runningWorkflows} RUNNING. Left something: ${leftovers.leftByClean} refused plans (must be 0), ${leftovers.leftByUnknown} of the ${leftovers.unknown} plans whose outcome was unknown (see below) |
| memory (heap after gc) | baseline ${report.memory.baselineMB} MB, end ${report.memory.finalMB} MB (limit ${report.memory.limitMB} MB) |
| service log | ${report.logs.lines} lines, ${report.logs.errorLines} at ERROR (client connection errors while a server was down), ${report.logs.defects} with a defect |

Per breaker (from \`/metrics\` at the end):

| circuit | trips | to half-open | to closed | counted failures | rejected | final state |
|---|---|---|---|---|---|---|
${circuitRows.join("\n")}

Plans not accepted, by the step that stopped them:

| answer | plans |
|---|---|
${stopped.join("\n")}

${
    report.delivery === "exactly-once"
      ? `Delivery to Kafka is exactly once to \`read_committed\` readers (\`OUTBOX_DELIVERY=exactly-once\`): the relay
sends each batch in a Kafka transaction with a progress record, and settles from that record on start and
after any send whose outcome was unknown, so a committed batch is never sent again and an aborted one is
invisible to \`read_committed\` readers. So the run requires 0 tickets lost, 0 duplicated in MongoDB and 0
Kafka duplicates seen by a \`read_committed\` reader; a \`read_uncommitted\` reader's count (aborted
transactions included) is shown beside it.`
      : `Delivery to Kafka is at-least-once: the relay marks a ticket published after Kafka acknowledged it, so a
send whose outcome was unknown (a timeout while the broker was slow, a crash between the send and the
mark) is sent again, under the same key \`ticket-<id>\`. A consumer deduplicates by that key. So the run
requires 0 tickets lost and 0 duplicated in MongoDB (the ticket's \`_id\` makes a second insert a
duplicate-key error), and reports the Kafka duplicates without failing on them.`
  }

What a plan whose outcome was unknown leaves is reported, not failed. A 502 means a call failed in a way
that may still have had its effect: a Temporal start that timed out may have started the workflow (the
service terminates it when the workflow's memo names this attempt, and cannot when Temporal does not
answer), a MongoDB insert whose connection was cut may have stored the ticket (the service deletes its own
pending ticket, \`{ _id, attempt: <its own>, "outbox.state": "pending" }\`, and terminates the run it
started; when that delete fails too the ticket stays and is published). A 503 whose compensation failed
(\`termination failed\`) is in the same class, and so is a retry that found an earlier attempt's workflow
(\`kept: started by an earlier attempt\`): no attempt ever terminates a workflow or deletes a ticket it did
not create itself, so what the earlier (cut-off) attempt left is not the retry's to undo.

What a retry (same id) answers: 202 when the plan it carries is stored (same plan hash), whatever its own
insert met; 409 when the id holds a plan with other steps (the persistence step names both hashes); 502 or
503 when it cannot tell yet. The table of every branch is in docs/outbox.md ("Retries: each attempt undoes
only what it made").
${
    leftovers.unknownSamples.length > 0
      ? `\nExamples from this run:\n\n${leftovers.unknownSamples.map((s) => `- \`${s}\``).join("\n")}\n`
      : ""
  }
## Invariants

| | invariant | result | numbers |
|---|---|---|---|
${
    report.invariants.map((i) =>
      `| ${i.id} | ${i.name} | ${i.ok ? "pass" : "**FAIL**"} | ${i.detail.replaceAll("|", "\\|")} |`
    ).join("\n")
  }

How each is checked:

- (a) after the service is shut down, a fresh kafkajs consumer group reads \`execution-tickets\` from the
  beginning up to the end offsets, counting keys; a plain MongoDB client reads every ticket of
  \`orchestrator.tickets\` straight from FerretDB, counting by plan and checking \`_id: ticket-<plan>\`.
- (b) no 503/502 whose stopping step is \`ticket\` or names \`kafka_producer\`.
- (c) for every plan answered 503 (refused; compensation done): no \`ticket-<id>\` in MongoDB, no message keyed \`ticket-<id>\` in
  Kafka, and \`plan-<id>\` described with a plain \`@temporalio/client\` against the rig's Temporal is not
  found or not RUNNING (no worker runs in the rig, so a started workflow stays RUNNING unless terminated).
  The same is read for every 502 and reported apart (see above).
- (d) \`/health\`'s \`outbox\` sampled every ${HEALTH_EVERY_MS} ms: the first sample with nothing pending, or
  only tickets younger than the lift (\`oldestPendingSeconds\`; the load goes on, so new tickets keep arriving), after each
  Kafka lift is done (or after MongoDB's, if MongoDB was still out then: the relay reads its backlog there), within ${
    seconds(backlog.boundMs)
  } (the breaker's first probe comes within its 2 s
  open period, then the relay publishes batch after batch); before shutdown, the service is kept up (the
  load stopped) until \`outbox.pending\` is 0, within the same bound, and no ticket is left marked pending
  in MongoDB.
- (e) 202 needs \`accepted: true\`, workflow and persistence ok and the ticket \`queued\`; 503 needs a step
  \`rejected\` naming its circuit; 502 needs a step \`failed\` with an error and a \`reason\`. A 500, a
  reset connection or any other body is a violation.
- (f) ${report.latencyBoundFormula}, measured by the caller (HTTP round trip).
- (g) \`unhandledRejection\` and \`uncaughtException\` listeners during the run; the service logs through
  a logger that formats each line as its JSON output and flags any cause holding a defect (\`Die\`).
- (h) \`/health\` at the end, after the quiet tail.
- (i) \`circuit_breaker_trips_total\` = \`circuit_breaker_open\` lines, \`circuit_breaker_transitions_total{to="half_open"}\`
  = \`circuit_breaker_half_open\` lines, \`{to="closed"}\` = \`circuit_breaker_reset\` lines, per circuit.
- (j) \`process.memoryUsage().heapUsed\` after \`gc()\`, at 8% of the run (before the first fault) and after the
  load stopped (the service still up).
- (k) \`/health\` sampled every ${HEALTH_EVERY_MS} ms.
- (l) each injection and lift ran without error (a restart counts once the server answers).
- (n) a tenth of the plans is sent twice with the same id and body, as clients retry: half concurrently
  (the second 0-150 ms after the first), half after the client gave up on the first attempt (it aborts
  it after 50-400 ms, whatever the service is doing, and sends it again). A plan counts as accepted when
  any attempt was; every accepted plan's workflow is read back from Temporal and must not be TERMINATED
  (a retry must never undo what an earlier attempt made), and its ticket is checked by (a). A plan whose
  first attempt was given up has an unknown outcome for (c).
- (m) the report shows only figures that were observed: a figure that is not a number, missing or
  infinite anywhere in it fails the run (the crash scenario's (e7) says the same of its section).

A SIGKILL of the service process itself is the crash scenario's, below (its own rig, the service in
its own process).

## What earlier runs found

- **A timed-out call was reported as a breaker rejection** (fixed in the Orchestrator: a timed-out call
  ran and may have had its effect, so it is a \`failed\` step with reason \`Timeout\`, 502).
- **The fault proxy left the client connected when the server reset the connection**, so kafkajs kept one
  connection to nothing and the Kafka breaker never closed after the broker came back (fixed in
  \`tools/rig/proxy.ts\`).
- **Refused plans left debris** (issue 14): before the outbox, a plan refused at the Kafka step had already
  started its workflow and stored its ticket. The outbox and the breaker check before any side effect
  are what invariants (b) and (c) check now.
${extra.healthErrors > 0 ? `\n/health did not answer ${extra.healthErrors} samples.\n` : ""}${
    extra.errorSamples.length > 0
      ? `\nFirst ERROR lines of the service's log (for the record):\n\n\`\`\`\n${
        extra.errorSamples.join("\n")
      }\n\`\`\`\n`
      : ""
  }`
}

/**
 * The lines of a report that show a figure that was not observed (NaN, undefined, Infinity): a
 * measuring tool that prints one has failed (docs/reliability.md). The harness turns a non-empty
 * answer into a failed invariant, so the run exits 1 and `npm test`'s short run fails.
 */
export const unobservedFigures = (markdown: string): ReadonlyArray<string> => {
  const found: Array<string> = []
  // Quoted log lines (code fences) are the service's words, not figures of the run.
  let quoted = false
  for (const line of markdown.split("\n")) {
    if (line.trimStart().startsWith("```")) quoted = !quoted
    else if (!quoted && /\b(NaN|undefined|-?Infinity)\b/.test(line)) found.push(line.trim())
  }
  return found
}

/** The invariant `unobservedFigures` decides, appended to a run's invariants. */
export const observedInvariant = (id: string, markdown: string) => {
  const missing = unobservedFigures(markdown)
  return {
    id,
    name: "every figure of the report was observed (each one a finite number)",
    ok: missing.length === 0,
    detail: missing.length === 0 ? "all observed" : missing.slice(0, 3).join(" / ").slice(0, 400)
  }
}
