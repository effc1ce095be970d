/**
 * The verdict: what the servers hold, what the service's /metrics and log lines say and what the
 * callers were told, checked against each other. Pure: every input is read before this runs.
 */
import type { Outcome } from "./load.ts"
import type { Sampled } from "./load.ts"
import {
  type BacklogReport,
  type CircuitReport,
  CIRCUITS,
  type FaultRecord,
  type Invariant,
  mb,
  MEMORY_SLACK_MB,
  MEMORY_SLACK_RATIO,
  seconds
} from "./model.ts"
import type { MongoTickets } from "./readback.ts"
import type { LogCapture } from "./service.ts"

export interface Series {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export const parseMetrics = (text: string): Array<Series> => {
  const out: Array<Series> = []
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)\{([^}]*)\}\s+(\S+)/.exec(line)
    if (match === null) continue
    const labels: Record<string, string> = {}
    for (const label of match[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[label[1]!] = label[2]!
    out.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return out
}

const sumOf = (series: ReadonlyArray<Series>, name: string, labels: Readonly<Record<string, string>>): number =>
  series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)

/** Per circuit: the metrics at the end next to the transition lines logged. */
export const circuitReports = (
  metrics: ReadonlyArray<Series>,
  transitions: LogCapture["transitions"],
  finalBreakers: ReadonlyArray<{ name: string; state: string }>
): Array<CircuitReport> =>
  CIRCUITS.map((circuit) => {
    const lines = (message: string) => transitions.filter((t) => t.circuit === circuit && t.message === message).length
    return {
      circuit,
      trips: sumOf(metrics, "circuit_breaker_trips_total", { circuit }),
      openLines: lines("circuit_breaker_open"),
      halfOpenTransitions: sumOf(metrics, "circuit_breaker_transitions_total", { circuit, to: "half_open" }),
      halfOpenLines: lines("circuit_breaker_half_open"),
      closedTransitions: sumOf(metrics, "circuit_breaker_transitions_total", { circuit, to: "closed" }),
      resetLines: lines("circuit_breaker_reset"),
      rejected: sumOf(metrics, "circuit_breaker_calls_total", { circuit, result: "rejected" }),
      failures: sumOf(metrics, "circuit_breaker_failures_total", { circuit }),
      finalState: finalBreakers.find((b) => b.name === circuit)?.state ?? "missing"
    }
  })

/** (a) every accepted plan's ticket in Kafka (at least once) and in MongoDB exactly once. */
export const ticketsOf = (
  outcomes: ReadonlyArray<Outcome>,
  sent: ReadonlySet<string>,
  kafka: ReadonlyMap<string, number>,
  mongo: MongoTickets
) => {
  const accepted = outcomes.filter((o) => o.kind === "accepted")
  const lostIds: Array<string> = []
  const duplicatedInMongo: Array<string> = []
  const duplicatedInKafka: Array<string> = []
  let extraKafkaMessages = 0
  for (const o of accepted) {
    const k = kafka.get(`ticket-${o.id}`) ?? 0
    const m = mongo.counts.get(o.id) ?? 0
    if (k === 0 || m === 0) lostIds.push(`${o.id} (kafka ${k}, mongodb ${m})`)
    if (m > 1) duplicatedInMongo.push(`${o.id} (mongodb ${m})`)
    if (k > 1) {
      duplicatedInKafka.push(`${o.id} (kafka ${k})`)
      extraKafkaMessages += k - 1
    }
  }
  const strangers = [...kafka.keys()].filter((key) => !sent.has(key.replace(/^ticket-/, ""))).length +
    [...mongo.counts.keys()].filter((plan) => !sent.has(plan)).length
  return { accepted, lostIds, duplicatedInMongo, duplicatedInKafka, extraKafkaMessages, strangers }
}

/**
 * A plan whose outcome the service could not know: a 502 (the call failed, e.g. a timeout or a cut
 * connection, and may have had its effect anyway) or a compensation the service reported as failed.
 * What such a plan leaves is reported apart: the service promises nothing for it today. So is a retry
 * that found an earlier attempt's workflow: it is never terminated by another attempt (docs/outbox.md).
 */
export const outcomeUnknown = (o: Outcome): boolean =>
  o.kind === "failed" || o.steps.includes("termination failed") || o.steps.includes("kept: started by an earlier") ||
  o.retried?.attempts.some((a) => a.kind === "aborted" || a.kind === "failed") === true

/**
 * (m) the plans the client sent twice (`retryShare`): no retry undid an accepted plan. An accepted plan's
 * workflow is never TERMINATED and its ticket is never gone ((a) checks the ticket); every attempt that
 * was answered was answered 202, 503 or 502 with a typed report.
 */
export const retriesOf = (outcomes: ReadonlyArray<Outcome>, workflows: ReadonlyMap<string, string>) => {
  const retried = outcomes.filter((o) => o.retried !== undefined)
  const accepted = retried.filter((o) => o.kind === "accepted")
  const terminated = accepted.filter((o) => workflows.get(`plan-${o.id}`) === "TERMINATED")
  const unchecked = accepted.filter((o) => !workflows.has(`plan-${o.id}`))
  const attempts = retried.flatMap((o) => o.retried!.attempts)
  return {
    plans: retried.length,
    concurrent: retried.filter((o) => o.retried!.how === "concurrent").length,
    afterTimeout: retried.filter((o) => o.retried!.how === "after-timeout").length,
    accepted: accepted.length,
    mixed: retried.filter((o) => new Set(o.retried!.attempts.map((a) => a.kind)).size > 1).length,
    terminated: terminated.map((o) => `${o.id} (${o.retried!.attempts.map((a) => a.status).join("/")})`),
    unchecked: unchecked.length,
    attemptViolations: attempts.filter((a) => a.kind === "violation").length,
    aborted: attempts.filter((a) => a.kind === "aborted").length
  }
}

/** (c) what each plan that was not accepted left: its ticket, its message, its workflow's status. */
export const leftoversOf = (
  notAccepted: ReadonlyArray<Outcome>,
  kafka: ReadonlyMap<string, number>,
  mongo: MongoTickets,
  workflows: ReadonlyMap<string, string>
) => {
  const samples: Array<string> = []
  const unknownSamples: Array<string> = []
  let leftByClean = 0
  let leftByUnknown = 0
  let ticketsInMongo = 0
  let messagesInKafka = 0
  let runningWorkflows = 0
  let terminatedWorkflows = 0
  let notFoundWorkflows = 0
  let otherWorkflows = 0
  for (const o of notAccepted) {
    const m = mongo.counts.get(o.id) ?? 0
    const k = kafka.get(`ticket-${o.id}`) ?? 0
    const status = workflows.get(`plan-${o.id}`) ?? "NOT_CHECKED"
    if (m > 0) ticketsInMongo++
    if (k > 0) messagesInKafka++
    if (status === "RUNNING") runningWorkflows++
    else if (status === "TERMINATED") terminatedWorkflows++
    else if (status === "NOT_FOUND") notFoundWorkflows++
    else otherWorkflows++
    const left = m > 0 || k > 0 || status === "RUNNING" || status === "NOT_CHECKED"
    const unknown = outcomeUnknown(o)
    if (left && unknown) leftByUnknown++
    if (left && !unknown) leftByClean++
    const into = unknown ? unknownSamples : samples
    if (left && into.length < 5) {
      into.push(`${o.id} ${o.kind} [${o.steps}]: mongodb ${m}, kafka ${k}, workflow ${status}`)
    }
  }
  return {
    checked: notAccepted.length,
    ticketsInMongo,
    messagesInKafka,
    runningWorkflows,
    terminatedWorkflows,
    notFoundWorkflows,
    otherWorkflows,
    leftByClean,
    leftByUnknown,
    unknown: notAccepted.filter(outcomeUnknown).length,
    samples,
    unknownSamples
  }
}

export interface VerdictInputs {
  readonly outcomes: ReadonlyArray<Outcome>
  readonly unanswered: number
  readonly tickets: ReturnType<typeof ticketsOf>
  readonly mongo: MongoTickets
  readonly kafkaKeys: number
  /** Kafka keys whose messages do not all carry the same bytes. */
  readonly kafkaDiffering: ReadonlyArray<string>
  /** The outbox's delivery: with exactly-once, a key a `read_committed` reader sees twice fails (a). */
  readonly delivery?: "at-least-once" | "exactly-once" | undefined
  readonly leftovers: ReturnType<typeof leftoversOf>
  readonly backlog: BacklogReport
  readonly latency: {
    readonly maxMs: number
    readonly slowest: Outcome | undefined
    readonly bound: { ms: number; formula: string }
  }
  readonly process: { readonly unhandled: ReadonlyArray<string>; readonly uncaught: ReadonlyArray<string> }
  readonly logs: LogCapture
  readonly closed: boolean
  readonly finalHealthStatus: number
  readonly allClosedAtMs: number | undefined
  readonly faultsEndMs: number
  readonly circuits: ReadonlyArray<CircuitReport>
  readonly memory: { readonly baseline: number; readonly final: number; readonly limit: number }
  readonly sampled: Sampled
  readonly faults: { readonly records: ReadonlyArray<FaultRecord>; readonly done: boolean }
  readonly retries: ReturnType<typeof retriesOf>
}

export const memoryLimit = (baseline: number): number =>
  baseline + Math.max(MEMORY_SLACK_MB * 1024 * 1024, MEMORY_SLACK_RATIO * baseline)

const list = (items: ReadonlyArray<string>, n = 5) => (items.length > 0 ? ` (${items.slice(0, n).join(", ")})` : "")

export const invariantsOf = (i: VerdictInputs): Array<Invariant> => {
  const { backlog, leftovers, outcomes, sampled, tickets } = i
  const rejected = outcomes.filter((o) => o.kind === "rejected")
  const failed = outcomes.filter((o) => o.kind === "failed")
  const violations = outcomes.filter((o) => o.kind === "violation")
  const byKafka = [...rejected, ...failed].filter((o) =>
    o.circuit === "kafka_producer" || o.why?.startsWith("ticket:") === true
  )
  const drains = backlog.drains.map((d) => d.drainedAfterMs)
  const slowestDrain = Math.max(0, ...drains.map((d) => d ?? Number.POSITIVE_INFINITY))
  const faultErrors = i.faults.records.filter((f) => f.error !== undefined || f.liftDoneAtMs === undefined)
  const { slowest } = i.latency
  return [
    {
      id: "a",
      name:
        "every accepted plan's ticket is in Kafka (0 lost; a key sent twice carries the same bytes) and in MongoDB exactly once",
      ok: tickets.lostIds.length === 0 && tickets.duplicatedInMongo.length === 0 && i.mongo.badIds === 0 &&
        tickets.strangers === 0 && i.kafkaDiffering.length === 0 &&
        (i.delivery !== "exactly-once" || tickets.duplicatedInKafka.length === 0),
      detail:
        `${tickets.accepted.length} accepted; lost ${tickets.lostIds.length}${
          list(tickets.lostIds)
        }; duplicated in MongoDB ${tickets.duplicatedInMongo.length}${list(tickets.duplicatedInMongo)}; ` +
        `duplicated in Kafka ${tickets.duplicatedInKafka.length} keys, ${tickets.extraKafkaMessages} extra messages${
          list(tickets.duplicatedInKafka, 3)
        } (${
          i.delivery === "exactly-once"
            ? "exactly-once, read_committed: must be 0"
            : "at-least-once: reported, not failed"
        }), ${i.kafkaDiffering.length} with different bytes${
          list(i.kafkaDiffering, 3)
        }; Kafka holds ${i.kafkaKeys} keys, MongoDB ${i.mongo.counts.size} tickets (${i.mongo.badIds} with a wrong _id, ${tickets.strangers} not sent by this run)`
    },
    {
      id: "b",
      name: "no plan refused or failed because of Kafka",
      ok: byKafka.length === 0,
      detail: `${byKafka.length} plans answered 503/502 at the ticket step or naming kafka_producer${
        list(byKafka.map((o) => `${o.id} ${o.kind} at ${o.why}`), 3)
      }; ${outcomes.filter((o) => o.queued).length} accepted with the ticket queued`
    },
    {
      id: "c",
      name: "every plan refused (503) left nothing: no ticket in MongoDB or Kafka, no RUNNING workflow in Temporal",
      ok: leftovers.leftByClean === 0 && leftovers.otherWorkflows === 0,
      detail:
        `${leftovers.checked} plans not accepted: ${leftovers.ticketsInMongo} tickets in MongoDB, ${leftovers.messagesInKafka} in Kafka; workflows ${leftovers.notFoundWorkflows} not found, ${leftovers.terminatedWorkflows} terminated, ${leftovers.runningWorkflows} RUNNING, ${leftovers.otherWorkflows} other; ` +
        `left something: ${leftovers.leftByClean} plans refused with nothing written${list(leftovers.samples, 3)}, ` +
        `and ${leftovers.leftByUnknown} of the ${leftovers.unknown} plans whose outcome was unknown (a 502, or a failed compensation; reported, not failed: the service does not clean those up)${
          list(leftovers.unknownSamples, 3)
        }`
    },
    {
      id: "d",
      name: `the outbox drained within ${seconds(backlog.boundMs)} after Kafka returned`,
      ok: drains.length > 0 && slowestDrain <= backlog.boundMs && backlog.finalDrainMs !== undefined &&
        backlog.pendingInMongo === 0,
      detail: `after each Kafka lift: ${
        backlog.drains.map((d) => `${seconds(d.liftDoneAtMs)} → empty ${seconds(d.drainedAfterMs)} later`).join(", ")
      }; at most ${backlog.maxPending} pending (at ${
        seconds(backlog.maxPendingAtMs)
      }); before shutdown ${backlog.finalPending} pending, empty after ${
        seconds(backlog.finalDrainMs)
      }; ${backlog.pendingInMongo} still marked pending in MongoDB`
    },
    {
      id: "e",
      name: "every plan was answered 202, or 502/503 with a typed step report",
      ok: violations.length === 0 && i.unanswered === 0 && i.retries.attemptViolations === 0,
      detail: `${rejected.length} refused (503), ${failed.length} failed (502), ${violations.length} violations${
        violations.length > 0 ? `: ${violations.slice(0, 3).map((v) => `${v.id} ${v.violation}`).join(" | ")}` : ""
      }${
        i.unanswered > 0 ? `, ${i.unanswered} never settled` : ""
      }; ${i.retries.attemptViolations} violations among the retried plans' attempts`
    },
    {
      id: "f",
      name: "no call outlived its timeout",
      ok: i.latency.maxMs <= i.latency.bound.ms,
      detail: `slowest ${Math.round(i.latency.maxMs)} ms${
        slowest === undefined
          ? ""
          : ` (${slowest.id}, ${slowest.kind}${slowest.why === undefined ? "" : ` at ${slowest.why}`})`
      }; bound ${i.latency.bound.formula}`
    },
    {
      id: "g",
      name: "no unhandled rejection, uncaught exception or logged defect",
      ok: i.process.unhandled.length === 0 && i.process.uncaught.length === 0 && i.logs.defects.length === 0,
      detail: `unhandled rejections ${i.process.unhandled.length}${
        list(i.process.unhandled, 3)
      }, uncaught exceptions ${i.process.uncaught.length}${
        list(i.process.uncaught, 3)
      }, log lines with a defect ${i.logs.defects.length}${
        i.logs.defects.length > 0 ? ` (${i.logs.defects[0]})` : ""
      } (of ${i.logs.lines} lines, ${i.logs.errorLines} at ERROR/FATAL)`
    },
    {
      id: "h",
      name: "every breaker is CLOSED after the faults end",
      ok: i.closed && i.finalHealthStatus === 200 && i.circuits.every((c) => c.finalState === "closed"),
      detail: `${
        i.circuits.map((c) => `${c.circuit} ${c.finalState}`).join(", ")
      }; /health ${i.finalHealthStatus}; every breaker CLOSED ${
        i.allClosedAtMs === undefined ? "never" : `from ${seconds(i.allClosedAtMs)} on`
      } (last fault lifted at ${seconds(i.faultsEndMs)})`
    },
    {
      id: "i",
      name: "metrics agree with the logged transitions",
      ok: i.circuits.every((c) =>
        c.trips === c.openLines && c.halfOpenTransitions === c.halfOpenLines && c.closedTransitions === c.resetLines
      ),
      detail: i.circuits.map((c) =>
        `${c.circuit}: trips_total ${c.trips} / open lines ${c.openLines}, transitions{to=half_open} ${c.halfOpenTransitions} / half_open lines ${c.halfOpenLines}, transitions{to=closed} ${c.closedTransitions} / reset lines ${c.resetLines}`
      ).join("; ")
    },
    {
      id: "j",
      name: "memory returns to its baseline",
      ok: i.memory.final <= i.memory.limit,
      detail: `heap after gc: baseline ${mb(i.memory.baseline)} MB, end ${mb(i.memory.final)} MB, limit ${
        mb(i.memory.limit)
      } MB (baseline + max(${MEMORY_SLACK_MB} MB, ${MEMORY_SLACK_RATIO * 100}%))`
    },
    {
      id: "k",
      name: "two fail-fast breakers were out together",
      ok: sampled.maxNotClosedFailFast >= 2,
      detail:
        `at most ${sampled.maxNotClosedFailFast} fail-fast breakers not CLOSED at once (${sampled.maxOpenFailFast} OPEN at once; ${sampled.maxNotClosed} counting Redis), first at ${
          seconds(sampled.firstOverlapAt)
        }: ${sampled.overlapCircuits.join(", ")}; ~${seconds(sampled.overlapMs)} with two or more`
    },
    {
      id: "n",
      name:
        "no retry undid an accepted plan: the client sent some plans twice (concurrently, or after giving up on the first attempt), and no accepted plan's workflow was terminated",
      ok: i.retries.terminated.length === 0 && i.retries.unchecked === 0 &&
        (i.retries.plans > 0 || i.outcomes.length < 20),
      detail:
        `${i.retries.plans} plans sent twice (${i.retries.concurrent} concurrently, ${i.retries.afterTimeout} after the client gave up on the first attempt; ${i.retries.aborted} attempts given up), ${i.retries.accepted} of them accepted, ${i.retries.mixed} with attempts answered differently; accepted workflows terminated: ${i.retries.terminated.length}${
          list(i.retries.terminated, 3)
        }${i.retries.unchecked > 0 ? `; ${i.retries.unchecked} accepted workflows not read back` : ""}`
    },
    {
      id: "l",
      name: "every fault was injected and lifted",
      ok: i.faults.done && faultErrors.length === 0,
      detail: faultErrors.length === 0
        ? `${i.faults.records.length} faults`
        : faultErrors.map((f) => `${f.server} ${f.inject}: ${f.error ?? "lift not done"}`).join("; ")
    }
  ]
}
