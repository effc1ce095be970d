/**
 * The crash scenario: the service process itself SIGKILLed mid-run and started again (issue 14's
 * invariant (e)). The service is the example's real entry point in its own process
 * (`process.ts`), against private real servers behind fault proxies (`rig.ts`), under a steady
 * load of plans. The schedule, as fractions of `durationMs` from the start of the load:
 *
 * - 0.15: Kafka refuses connections (open ones cut); plans are accepted with their tickets queued in the outbox.
 * - 0.35: SIGKILL #1, with a backlog in MongoDB and plans in flight; started again at once (Kafka still out).
 * - 0.55: Kafka comes back slow (+300 ms each way), so the relay's sends take a while; as soon as MongoDB
 *         shows the relay's first publication, SIGKILL #2, mid-drain; started again, and Kafka at full speed.
 * - 1.00: the load stops. Every plan that got no HTTP answer (cut off by a kill, or sent while the
 *         service was down) is sent again with the same id and body, as a client would.
 *
 * Then the backlog must drain, and the servers are read back: every accepted plan's ticket in
 * MongoDB exactly once and in Kafka, duplicates only as the same key with the same bytes (what a
 * consumer deduplicating by key collapses), refused plans leaving nothing, and one workflow per plan.
 */
import { MongoClient } from "mongodb"
import * as os from "node:os"
import { sleep, until } from "../rig/time.ts"
import { leftoversOf, ticketsOf } from "./invariants.ts"
import { countOf, makeLoad, type Outcome, startSampler, warmUp } from "./load.ts"
import { DATABASE, DRAIN_BOUND_MS, type Invariant, prng, seconds, settingsYaml, TICKETS, within } from "./model.ts"
import { type ServiceProcess, serviceProcess } from "./process.ts"
import { duplicatesOf, readKafka, readMongo, readWorkflows } from "./readback.ts"
import { CRASH_HEADING, observedInvariant } from "./report.ts"
import { type Rig, startRig, stopRig } from "./rig.ts"

export interface CrashOptions {
  readonly durationMs: number
  readonly rate: number
  readonly seed?: number | undefined
  readonly log?: ((line: string) => void) | undefined
  readonly maxInFlight?: number | undefined
  /** The outbox relay's delivery (`OUTBOX_DELIVERY` of the service process). Default at-least-once. */
  readonly delivery?: "at-least-once" | "exactly-once" | undefined
}

export interface KillRecord {
  readonly atMs: number
  readonly when: string
  /** Tickets marked pending in MongoDB just before the kill. */
  readonly pendingAtKill: number
  readonly kafka: "refusing" | "slow"
  /** From the kill to `/live` answering again. */
  readonly downMs: number
}

export interface CrashReport {
  readonly ok: boolean
  readonly delivery: "at-least-once" | "exactly-once"
  readonly seed: number
  readonly rate: number
  readonly durationMs: number
  readonly kills: ReadonlyArray<KillRecord>
  readonly requests: {
    readonly sent: number
    readonly accepted: number
    readonly queued: number
    readonly rejected: number
    readonly failed: number
    /** Plans whose first request got no HTTP answer, sent again with the same id. */
    readonly cutOff: number
    readonly retriesAccepted: number
    readonly retryAttempts: number
  }
  readonly tickets: {
    readonly lost: number
    readonly duplicatedInMongo: number
    readonly duplicatedInKafka: number
    readonly extraKafkaMessages: number
    readonly differingInKafka: number
    /** Kafka duplicates (keys, extra messages) as a `read_uncommitted` reader sees them; the others are `read_committed`'s. */
    readonly readUncommitted: { readonly duplicatedKeys: number; readonly extraMessages: number }
  }
  readonly backlog: {
    readonly maxPending: number
    /** Pending once the load and the retries were over, and how long until none was. */
    readonly afterLoad: number
    readonly drainedAfterMs: number | undefined
    readonly left: number
  }
  readonly logs: { readonly lines: number; readonly errorLines: number; readonly stray: ReadonlyArray<string> }
  readonly invariants: ReadonlyArray<Invariant>
  readonly loadAverage: ReadonlyArray<number>
}

/** Retries of a cut-off plan: the client tries again until it gets an HTTP answer, a second apart. */
const RETRY_ATTEMPTS = 10
/** Kafka's extra latency each way during the drain that SIGKILL #2 interrupts. */
const SLOW_KAFKA_MS = 300
/**
 * The schedule's settings with Kafka's `callTimeout` at 5 s instead of 2.5 s, in both delivery modes. On the
 * slow link (a 600 ms round trip) a step of an exactly-once transaction needs 3 to 6 round trips when its
 * producer is new (AddPartitionsToTxn, the topic's metadata, Produce; FindCoordinator and a connection for the
 * offsets): at 2.5 s every new producer's first send timed out, was aborted and made a new producer again, so
 * nothing was published until Kafka was fast again (docs/outbox.md, "Sizing the call timeout").
 */
export const CRASH_SETTINGS_YAML = settingsYaml(5)

export async function runCrash(options: CrashOptions): Promise<CrashReport> {
  const log = options.log ?? ((line: string) => console.log(line))
  const seed = (options.seed ?? Date.now()) >>> 0
  const { durationMs, rate } = options
  const delivery = options.delivery ?? "at-least-once"
  if (!(durationMs >= 20_000) || !(rate > 0 && rate <= 500)) {
    throw new Error(`runCrash: durationMs >= 20000 and 0 < rate <= 500 expected, got ${durationMs}, ${rate}`)
  }
  const rigParts: Partial<Rig> = {}
  let service: ServiceProcess | undefined
  let mongo: MongoClient | undefined
  const stops: Array<() => unknown> = []
  try {
    log(`crash: seed ${seed}, ${rate} plans/s for ${durationMs / 1000} s; starting Redis, Kafka, Temporal, MongoDB`)
    const rig = await startRig(rigParts)
    service = await serviceProcess(rig, { delivery, settings: CRASH_SETTINGS_YAML })
    const bootMs = await service.start(120_000)
    log(`crash: service process up on port ${service.port} in ${seconds(bootMs)}`)
    mongo = new MongoClient(`mongodb://127.0.0.1:${rig.mongodb.port}/`, {
      serverSelectionTimeoutMS: 10_000,
      directConnection: true
    })
    const tickets = mongo.db(DATABASE).collection(TICKETS)
    const pendingInMongo = () => within(tickets.countDocuments({ "outbox.state": "pending" }), 10_000, "pending count")

    const load = makeLoad({
      service,
      random: prng(seed),
      idPrefix: `k${seed.toString(36)}`,
      maxInFlight: options.maxInFlight ?? 64,
      clientTimeoutMs: 30_000
    })
    stops.push(load.stop)
    await warmUp(service, load)
    load.start(rate)
    const t0 = load.startedAt()
    const now = () => performance.now() - t0
    const sampler = startSampler(service, now)
    stops.push(sampler.stop)
    const at = (fraction: number) => sleep(Math.max(0, fraction * durationMs - now()))
    const kills: Array<KillRecord> = []
    const killAndRestart = async (when: string, kafka: KillRecord["kafka"]) => {
      const pendingAtKill = await pendingInMongo()
      const killedAt = now()
      await service!.kill()
      await service!.start(120_000)
      const downMs = now() - killedAt
      kills.push({ atMs: killedAt, when, pendingAtKill, kafka, downMs })
      log(`crash: SIGKILL at ${seconds(killedAt)} (${when}, ${pendingAtKill} pending); back in ${seconds(downMs)}`)
    }

    await at(0.15)
    await rig.kafkaProxy.refuse()
    rig.kafkaProxy.cut()
    log(`crash: Kafka refusing at ${seconds(now())}`)
    await at(0.35)
    await killAndRestart("Kafka out, a backlog in the outbox", "refusing")

    await at(0.55)
    const pendingAtLift = await pendingInMongo()
    await rig.kafkaProxy.delay(SLOW_KAFKA_MS)
    const liftedAt = now()
    log(`crash: Kafka back (slow, +${SLOW_KAFKA_MS} ms each way) at ${seconds(liftedAt)}, ${pendingAtLift} pending`)
    // The relay's first publication (its HALF_OPEN trial) shows as one pending ticket fewer; the drain follows.
    let before = pendingAtLift
    const drainSeen = await until(
      async () => {
        const pending = await pendingInMongo()
        const published = pending < before
        before = pending
        return published
      },
      Math.max(10_000, 0.3 * durationMs),
      20
    )
    const firstPublicationMs = drainSeen ? now() - liftedAt : undefined
    log(
      `crash: first publication ${
        firstPublicationMs === undefined ? "never seen" : `${seconds(firstPublicationMs)} after Kafka's return`
      }`
    )
    await killAndRestart(
      `mid-drain, Kafka slow${
        firstPublicationMs === undefined
          ? ""
          : `, first publication ${seconds(firstPublicationMs)} after Kafka's return`
      }`,
      "slow"
    )
    await rig.kafkaProxy.pass()

    await at(1)
    load.stop()
    await load.settle(40_000)
    await sampler.stop()

    // --- cut-off plans, sent again ----------------------------------------------------------------
    const finals = new Map<string, Outcome>()
    for (const o of load.outcomes) finals.set(o.id, o)
    const cutOff = load.outcomes.filter((o) => o.status === 0)
    let retryAttempts = 0
    for (const o of cutOff) {
      let outcome = o
      for (let attempt = 0; attempt < RETRY_ATTEMPTS && outcome.status === 0; attempt++) {
        if (attempt > 0) await sleep(1_000)
        retryAttempts++
        outcome = await load.retry(o.id)
      }
      finals.set(o.id, outcome)
    }
    const outcomes = [...finals.values()]
    log(`crash: load over; ${cutOff.length} plans cut off by the kills, sent again (${retryAttempts} requests)`)

    // --- the backlog drains (no plan arrives any more) ------------------------------------------------
    const pendingAfterLoad = await pendingInMongo()
    const drainStarted = now()
    const drained = await until(async () => (await pendingInMongo()) === 0, DRAIN_BOUND_MS, 100)
    const drainedAfterMs = drained ? now() - drainStarted : undefined
    const left = await pendingInMongo()
    await service.close()

    // --- what the servers hold ----------------------------------------------------------------------
    const kafka = await readKafka(rig.kafkaProxy.address, 90_000, "read_committed")
    const uncommitted = duplicatesOf(await readKafka(rig.kafkaProxy.address, 90_000, "read_uncommitted"))
    const stored = await readMongo(`mongodb://127.0.0.1:${rig.mongodb.port}/`)
    const workflows = await readWorkflows(rig.temporal.endpoint, outcomes.map((o) => `plan-${o.id}`), 180_000)

    const ticketCheck = ticketsOf(outcomes, load.sent, kafka.counts, stored)
    const notAccepted = outcomes.filter((o) => o.kind !== "accepted")
    const leftovers = leftoversOf(notAccepted, kafka.counts, stored, workflows)
    const acceptedWithoutWorkflow = ticketCheck.accepted.filter((o) => {
      const status = workflows.get(`plan-${o.id}`)
      return status !== "RUNNING" && status !== "COMPLETED"
    }).map((o) => `${o.id} (${workflows.get(`plan-${o.id}`)})`)
    const unanswered = outcomes.filter((o) => o.kind === "violation")
    const [first, second] = kills

    const invariants: Array<Invariant> = [
      {
        id: "e1",
        name: "the service was SIGKILLed twice (a backlog queued; then mid-drain) and came back each time",
        ok: kills.length === 2 && first!.pendingAtKill > 0 && second!.pendingAtKill > 0 && drainSeen &&
          service.unexpectedExits.length === 0 && service.lives() === 3,
        detail: `${
          kills.map((k) => `${seconds(k.atMs)}: ${k.when}, ${k.pendingAtKill} pending, back in ${seconds(k.downMs)}`)
            .join("; ")
        }; ${
          drainSeen ? "the drain had begun at the second kill" : "NO publication seen before the second kill"
        }; exits not asked for: ${service.unexpectedExits.length === 0 ? "none" : service.unexpectedExits.join(", ")}`
      },
      {
        id: "e2",
        name: "every plan got an HTTP answer (the cut-off ones sent again with the same id)",
        ok: unanswered.length === 0,
        detail: `${cutOff.length} cut off, ${
          cutOff.length - unanswered.length
        } answered on a retry; still ${unanswered.length} without a valid answer${
          unanswered.length > 0 ? ` (${unanswered[0]!.violation})` : ""
        }`
      },
      {
        id: "e3",
        name: "nothing lost: every accepted plan's ticket is in MongoDB once and in Kafka, with its workflow",
        ok: ticketCheck.lostIds.length === 0 && acceptedWithoutWorkflow.length === 0 && ticketCheck.accepted.length > 0,
        detail: `${ticketCheck.accepted.length} accepted; lost ${ticketCheck.lostIds.length}${
          ticketCheck.lostIds.slice(0, 3).map((id) => ` ${id}`).join("")
        }; accepted without a RUNNING/COMPLETED workflow ${acceptedWithoutWorkflow.length}${
          acceptedWithoutWorkflow.slice(0, 3).map((id) => ` ${id}`).join("")
        }`
      },
      {
        id: "e4",
        name: delivery === "exactly-once"
          ? "nothing duplicated: one ticket per plan, each once to a read_committed Kafka reader"
          : "nothing duplicated beyond what the key collapses: one ticket per plan, Kafka duplicates byte-identical",
        ok: ticketCheck.duplicatedInMongo.length === 0 && stored.badIds === 0 && kafka.differing.length === 0 &&
          ticketCheck.strangers === 0 && (delivery === "at-least-once" || ticketCheck.duplicatedInKafka.length === 0),
        detail:
          `MongoDB duplicates ${ticketCheck.duplicatedInMongo.length}, bad ids ${stored.badIds}; Kafka (read_committed): ${ticketCheck.duplicatedInKafka.length} keys sent more than once (${ticketCheck.extraKafkaMessages} extra messages), ${kafka.differing.length} of them with different bytes; ${ticketCheck.strangers} unknown keys; read_uncommitted: ${uncommitted.duplicatedKeys} keys more than once (${uncommitted.extraMessages} extra)`
      },
      {
        id: "e5",
        name: "refused plans left nothing (no ticket, no message, no RUNNING workflow)",
        ok: leftovers.leftByClean === 0,
        detail:
          `${leftovers.checked} not accepted (${leftovers.unknown} with an unknown outcome); left something: ${leftovers.leftByClean}${
            leftovers.samples.length > 0 ? ` (${leftovers.samples.join("; ")})` : ""
          }`
      },
      {
        id: "e6",
        name: `the restarted service published the backlog the killed one left, within ${DRAIN_BOUND_MS / 1000} s`,
        ok: drained && left === 0 && stored.pending === 0,
        detail: `${pendingAfterLoad} pending once the load was over, drained ${
          drainedAfterMs === undefined ? "never" : `in ${seconds(drainedAfterMs)}`
        }; pending at the end ${left} (MongoDB read-back: ${stored.pending})`
      }
    ]
    const report: CrashReport = {
      ok: invariants.every((i) => i.ok),
      delivery,
      seed,
      rate,
      durationMs,
      kills,
      requests: {
        sent: load.counts().sent,
        accepted: ticketCheck.accepted.length,
        queued: outcomes.filter((o) => o.queued).length,
        rejected: countOf(outcomes, "rejected"),
        failed: countOf(outcomes, "failed"),
        cutOff: cutOff.length,
        retriesAccepted: cutOff.filter((o) => finals.get(o.id)?.kind === "accepted").length,
        retryAttempts
      },
      tickets: {
        lost: ticketCheck.lostIds.length,
        duplicatedInMongo: ticketCheck.duplicatedInMongo.length,
        duplicatedInKafka: ticketCheck.duplicatedInKafka.length,
        extraKafkaMessages: ticketCheck.extraKafkaMessages,
        differingInKafka: kafka.differing.length,
        readUncommitted: uncommitted
      },
      backlog: {
        maxPending: Math.max(sampler.sampled.maxPending, ...kills.map((k) => k.pendingAtKill)),
        afterLoad: pendingAfterLoad,
        drainedAfterMs,
        left
      },
      logs: { lines: service.logs.lines, errorLines: service.logs.errorLines, stray: service.logs.stray.slice(0, 5) },
      invariants,
      loadAverage: os.loadavg()
    }
    // (e7): the crash section, once rendered, shows only figures that were observed.
    const observed = observedInvariant("e7", crashMarkdown(report, "npm run chaos"))
    const checked: CrashReport = { ...report, ok: report.ok && observed.ok, invariants: [...invariants, observed] }
    log(crashSummary(checked))
    return checked
  } finally {
    for (const stop of stops) await Promise.resolve(stop()).catch(() => undefined)
    await service?.close().catch(() => undefined)
    await mongo?.close().catch(() => undefined)
    await stopRig(rigParts)
  }
}

export const crashSummary = (r: CrashReport): string =>
  [
    `crash: ${
      r.ok ? "PASS" : "FAIL"
    }: ${r.requests.sent} plans at ${r.rate}/s, ${r.requests.accepted} accepted (${r.requests.queued} queued), ${r.requests.rejected} refused, ${r.requests.failed} failed; ${r.requests.cutOff} cut off by ${r.kills.length} SIGKILLs, ${r.requests.retriesAccepted} accepted on a retry`,
    ...r.invariants.map((i) => `  (${i.id}) ${i.ok ? "ok  " : "FAIL"} ${i.name}: ${i.detail}`)
  ].join("\n")

/** The crash scenario's section of docs/reliability.md. */
export const crashMarkdown = (r: CrashReport, command: string): string => {
  const rows = r.invariants.map((i) =>
    `| (${i.id}) | ${i.name} | ${i.ok ? "pass" : "**FAIL**"} | ${i.detail.replaceAll("|", "\\|")} |`
  )
  const kills = r.kills.map((k) =>
    `| ${seconds(k.atMs)} | ${k.when} | ${k.pendingAtKill} | ${k.kafka} | ${seconds(k.downMs)} |`
  )
  return `${CRASH_HEADING}

\`${command}\` (seed ${r.seed}), ${r.rate} plans/s for ${r.durationMs / 1000} s, load average at the end ${
    r.loadAverage.map((l) => l.toFixed(1)).join(" ")
  }.
The service is the example's own entry point in its own process, configured by environment variables, against private Redis, Kafka, Temporal and MongoDB behind fault proxies. Kafka refuses
connections from 15 % of the run; at 35 % the process is SIGKILLed with a backlog in the outbox and
started again at once; at 55 % Kafka comes back slow (+${SLOW_KAFKA_MS} ms each way) and the process is
SIGKILLed again as soon as the relay's first publication shows in MongoDB, mid-drain, then started
again with Kafka at full speed. A plan whose request got no HTTP answer (cut off by a kill, or sent
while the process was down) is sent again with the same id and body, as a client would.

| killed at | when | pending in MongoDB | Kafka | back after |
|---|---|---|---|---|
${kills.join("\n")}

${r.requests.sent} plans: ${r.requests.accepted} accepted (${r.requests.queued} with the ticket queued), ${r.requests.rejected} refused, ${r.requests.failed} failed;
${r.requests.cutOff} cut off by the kills and sent again (${r.requests.retryAttempts} requests), ${r.requests.retriesAccepted} of them accepted.
Outbox delivery: ${r.delivery}. Kafka, as a \`read_committed\` reader sees it: ${r.tickets.duplicatedInKafka} keys more than once (${r.tickets.extraKafkaMessages} extra messages), ${r.tickets.differingInKafka} with different bytes; as a \`read_uncommitted\` reader: ${r.tickets.readUncommitted.duplicatedKeys} keys more than once (${r.tickets.readUncommitted.extraMessages} extra messages).
Backlog: up to ${r.backlog.maxPending} pending; ${r.backlog.afterLoad} once the load was over, drained ${
    r.backlog.drainedAfterMs === undefined ? "never" : `in ${seconds(r.backlog.drainedAfterMs)}`
  }.

| | invariant | result | measured |
|---|---|---|---|
${rows.join("\n")}

${
    r.delivery === "exactly-once"
      ? `With \`OUTBOX_DELIVERY=exactly-once\` the relay publishes in Kafka transactions with a progress record: a
batch committed by a process killed before it marked it published is marked from the progress record
after the restart, never sent again, and an aborted one is invisible to \`read_committed\` readers. So (e4)
fails on any duplicate a \`read_committed\` reader sees; what aborted transactions left shows to a
\`read_uncommitted\` reader only.`
      : `A ticket published by a process killed before it marked it published is sent again after the
restart, under the same key with the same bytes: that is the at-least-once the outbox promises, and
what (e4) allows. Anything else duplicated, or any ticket lost, fails the run.`
  }
`
}
