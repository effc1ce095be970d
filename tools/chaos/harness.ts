/**
 * Chaos under load: the Orchestrator Dynamic service, booted from its layer graph (`App.make`)
 * against private real servers behind fault proxies, driven at a steady rate over HTTP while a
 * fault schedule kills, pauses, stalls, cuts and slows each server in turn; then the invariants
 * are checked from the servers themselves. `npm run chaos` (`tools/chaos/run.ts`) and the short
 * version in `npm test` (`test/chaos/chaos.test.ts`) both call `runChaos`; `findRate` is the
 * no-fault measurement the default rate comes from.
 *
 * The phases, one module each: rig.ts (servers and proxies), service.ts (the service),
 * load.ts (the load and the /health sampler), faults.ts (the schedule), readback.ts and
 * invariants.ts (what the servers hold, checked), report.ts (summary and markdown).
 *
 * The service runs in this process (its heap is measured); a SIGKILL of the service itself is
 * the crash scenario's (crash.ts), which runs the service in its own process (process.ts).
 *
 * Everything is bounded: every wait has a deadline, every server, proxy, timer and the service
 * itself are stopped in `finally`, and everything listens on 127.0.0.1.
 */
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { Effect } from "effect"
import * as os from "node:os"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { sleep, until } from "../rig/time.ts"
import { startFaults } from "./faults.ts"
import {
  circuitReports,
  invariantsOf,
  leftoversOf,
  memoryLimit,
  parseMetrics,
  retriesOf,
  type Series,
  ticketsOf
} from "./invariants.ts"
import { countOf, type Load, makeLoad, type Sampler, startSampler, warmUp } from "./load.ts"
import {
  type BacklogReport,
  type ChaosOptions,
  type ChaosReport,
  DRAIN_BOUND_MS,
  HEALTH_EVERY_MS,
  latencyBound,
  mb,
  prng,
  quantile,
  type RateFinding,
  type RateStep,
  SETTINGS_YAML,
  within
} from "./model.ts"
import { duplicatesOf, readKafka, readMongo, readWorkflows } from "./readback.ts"
import { observedInvariant, summary, toMarkdown, writeReport } from "./report.ts"
import { type Rig, startRig, stopRig } from "./rig.ts"
import { captureLogs, type LogCapture, type Service, startService } from "./service.ts"

export type { ChaosOptions, ChaosReport, Invariant, RateFinding } from "./model.ts"
export { latencyBound, SETTINGS_YAML } from "./model.ts"
export { summary } from "./report.ts"

/** `gc()`: the flag given to node, or turned on now (the test runs in a vitest worker without it). */
const collector = (): () => void => {
  const existing = (globalThis as { gc?: () => void }).gc
  if (typeof existing === "function") return existing
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
}

const heapAfterGc = async (gc: () => void): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(100)
  }
  gc()
  return process.memoryUsage().heapUsed
}

const sorted = (xs: ReadonlyArray<number>) => xs.toSorted((a, b) => a - b)

/** Unhandled rejections and uncaught exceptions, recorded until `stop`. */
const watchProcess = () => {
  const unhandled: Array<string> = []
  const uncaught: Array<string> = []
  const onUnhandled = (reason: unknown) => {
    unhandled.push(reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason))
  }
  const onUncaught = (error: Error) => {
    uncaught.push(`${error.name}: ${error.message}`)
  }
  process.on("unhandledRejection", onUnhandled)
  process.on("uncaughtException", onUncaught)
  return {
    unhandled,
    uncaught,
    stop: () => {
      process.off("unhandledRejection", onUnhandled)
      process.off("uncaughtException", onUncaught)
    }
  }
}

const loadSettings = () => Effect.runPromise(OrchestratorConfig.parse(SETTINGS_YAML, { source: "chaos settings" }))

/** Boots the rig and the service into `parts` (so `finally` can stop whatever started). */
const boot = async (
  parts: { rig: Partial<Rig>; service: Service | undefined },
  settings: OrchestratorConfig.Settings,
  logs: LogCapture,
  log: (line: string) => void,
  delivery: "at-least-once" | "exactly-once" = "at-least-once"
): Promise<{ rig: Rig; service: Service }> => {
  const bootStarted = performance.now()
  const rig = await startRig(parts.rig)
  log(`chaos: servers up in ${((performance.now() - bootStarted) / 1000).toFixed(1)} s`)
  parts.service = await startService(rig, settings, logs, delivery)
  return { rig, service: parts.service }
}

/** The outbox's pending count from /health, or undefined when it does not answer. */
const pendingNow = async (service: Service): Promise<number | undefined> => {
  try {
    const body = JSON.parse((await service.get("/health")).text) as { outbox?: { pending?: unknown } }
    return typeof body.outbox?.pending === "number" ? body.outbox.pending : undefined
  } catch {
    return undefined
  }
}

/** Metrics and log lines at one moment: a transition between the scrape and the count would show as a disagreement. */
const scrapeSteady = async (service: Service, logs: LogCapture) => {
  let metrics: Array<Series> = []
  let transitions = logs.transitions.slice()
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = logs.transitions.length
    metrics = parseMetrics((await service.get("/metrics")).text)
    transitions = logs.transitions.slice()
    if (transitions.length === before) break
  }
  return { metrics, transitions }
}

const progressLine = (load: Load, sampler: Sampler, t: number): string => {
  const { inFlight, sent } = load.counts()
  const s = sampler.sampled
  const states = Object.entries(s.latestStates).map(([c, state]) => `${c.split("_")[0]}=${state}`).join(" ")
  return `chaos: t=${(t / 1000).toFixed(0).padStart(3)} s sent ${sent} accepted ${
    countOf(load.outcomes, "accepted")
  } rejected ${countOf(load.outcomes, "rejected")} failed ${countOf(load.outcomes, "failed")} violations ${
    countOf(load.outcomes, "violation")
  } in-flight ${inFlight} pending ${s.latestPending ?? "?"} | ${states}`
}

/**
 * Runs the whole scenario and returns the report; `report.ok` is false when an invariant failed.
 * Throws only when the rig itself cannot run (a server that does not start, the service that does
 * not boot): never a silent skip.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((line: string) => console.log(line))
  const seed = (options.seed ?? Date.now()) >>> 0
  const random = prng(seed)
  const { durationMs, rate } = options
  const maxInFlight = options.maxInFlight ?? 64
  if (!(durationMs >= 10_000) || !(rate > 0 && rate <= 500)) {
    throw new Error(`runChaos: durationMs >= 10000 and 0 < rate <= 500 expected, got ${durationMs}, ${rate}`)
  }
  const startedAt = new Date()
  const loadAtStart = os.loadavg()
  const settings = await loadSettings()
  const bound = latencyBound(settings)
  const gc = collector()
  const watch = watchProcess()
  const parts: { rig: Partial<Rig>; service: Service | undefined } = { rig: {}, service: undefined }
  const cleanups: Array<() => void | Promise<void>> = []

  try {
    // --- boot --------------------------------------------------------------------------------
    log(`chaos: seed ${seed}, ${rate} plans/s for ${durationMs / 1000} s; starting Redis, Kafka, Temporal, MongoDB`)
    const logs = captureLogs()
    const { rig, service } = await boot(parts, settings, logs, log, options.delivery ?? "at-least-once")
    const load = makeLoad({
      service,
      random,
      idPrefix: `c${seed.toString(36)}`,
      maxInFlight,
      clientTimeoutMs: bound.ms + 15_000,
      retryShare: options.retryShare ?? 0.1
    })
    cleanups.push(load.stop)
    await warmUp(service, load)
    const warmupCount = load.outcomes.length

    // --- load, sampler, faults -----------------------------------------------------------------
    load.start(rate)
    const t0 = load.startedAt()
    const now = () => performance.now() - t0
    const sampler = startSampler(service, now)
    cleanups.push(sampler.stop)
    const progress = setInterval(() => log(progressLine(load, sampler, now())), 5_000)
    cleanups.push(() => clearInterval(progress))

    // Baseline memory before the first fault (at 10%).
    await sleep(Math.max(0, 0.08 * durationMs - now()))
    const baseline = await heapAfterGc(gc)
    log(`chaos: heap baseline ${mb(baseline)} MB after gc`)

    const faults = startFaults({ rig, settings, durationMs, t0, random, log })
    cleanups.push(faults.cancel)
    await sleep(Math.max(0, durationMs - now()))
    // A restart may still be running: the faults end when every lift is done.
    const faultsDone = await within(faults.done.then(() => true), 180_000, "fault lifts").catch(() => false)
    const faultsEndMs = Math.max(0, ...faults.records.map((f) => f.liftDoneAtMs ?? now()))
    // Quiet tail: the load goes on until every breaker is CLOSED (a half-open breaker needs a call to close).
    const closed = await until(sampler.everyClosed, 60_000, HEALTH_EVERY_MS)
    const allClosedAtMs = closed ? sampler.sampled.allClosedSince : undefined
    load.stop()
    const loadMs = now()
    log(
      `chaos: load stopped at ${(loadMs / 1000).toFixed(1)} s (faults over at ${(faultsEndMs / 1000).toFixed(1)} s, ${
        closed ? "every breaker closed" : "NOT every breaker closed"
      }); waiting for ${load.counts().inFlight} in-flight plans`
    )
    await load.settle(bound.ms + 20_000)

    // --- the backlog drains before the service goes -------------------------------------------
    const finalPending = (await pendingNow(service)) ?? -1
    const drainStarted = performance.now()
    const drained = await until(async () => (await pendingNow(service)) === 0, DRAIN_BOUND_MS, HEALTH_EVERY_MS)
    const finalDrainMs = drained ? performance.now() - drainStarted : undefined
    clearInterval(progress)
    await within(sampler.stop(), 15_000, "health sampler").catch(() => undefined)

    // --- what the service says ---------------------------------------------------------------
    const finalHealth = await service.get("/health")
    const finalBreakers = (JSON.parse(finalHealth.text) as { breakers: ReadonlyArray<{ name: string; state: string }> })
      .breakers
    const { metrics, transitions } = await scrapeSteady(service, logs)
    const finalHeap = await heapAfterGc(gc)
    // The service goes away before the servers are read (its clients disconnect cleanly).
    await service.close()

    // --- what the servers hold ----------------------------------------------------------------
    const outcomes = load.outcomes
    const notAccepted = outcomes.filter((o) => o.kind !== "accepted")
    const { counts: kafka, differing: kafkaDiffering } = await readKafka(
      rig.kafkaProxy.address,
      90_000,
      "read_committed"
    )
    const readUncommitted = duplicatesOf(await readKafka(rig.kafkaProxy.address, 90_000, "read_uncommitted"))
    const mongo = await readMongo(`mongodb://127.0.0.1:${rig.mongodb.port}/`)
    // The plans not accepted, and the accepted plans a retry could have undone.
    const retriedAccepted = outcomes.filter((o) => o.kind === "accepted" && o.retried !== undefined)
    const workflows = await readWorkflows(
      rig.temporal.endpoint,
      [...notAccepted, ...retriedAccepted].map((o) => `plan-${o.id}`),
      120_000
    )

    // --- the verdict --------------------------------------------------------------------------
    const kafkaLifts = faults.records.filter((f) => f.server === "kafka" && f.liftDoneAtMs !== undefined)
    const backlog: BacklogReport = {
      maxPending: sampler.sampled.maxPending,
      maxPendingAtMs: sampler.sampled.maxPendingAtMs,
      drains: kafkaLifts.map((f) => {
        // The relay reads its backlog from MongoDB: a MongoDB outage still under way when Kafka returns delays the start.
        const from = Math.max(
          f.liftDoneAtMs!,
          ...faults.records.filter((m) =>
            m.server === "mongodb" && (m.injectedAtMs ?? Infinity) <= f.liftDoneAtMs! &&
            (m.liftDoneAtMs ?? 0) > f.liftDoneAtMs!
          ).map((m) => m.liftDoneAtMs!)
        )
        // Drained once every ticket pending at `from` is gone: nothing pending, or only tickets written since.
        const empty = sampler.sampled.backlog.find((b) =>
          b.at >= from && (b.pending === 0 || b.oldestMs + HEALTH_EVERY_MS < b.at - from)
        )?.at
        return { liftDoneAtMs: from, drainedAfterMs: empty === undefined ? undefined : empty - from }
      }),
      finalPending,
      finalDrainMs,
      boundMs: DRAIN_BOUND_MS,
      pendingInMongo: mongo.pending
    }
    const tickets = ticketsOf(outcomes, load.sent, kafka, mongo)
    const leftovers = leftoversOf(notAccepted, kafka, mongo, workflows)
    const circuits = circuitReports(metrics, transitions, finalBreakers)
    const slowest = outcomes.reduce<typeof outcomes[number] | undefined>(
      (s, o) => (s === undefined || o.latencyMs > s.latencyMs ? o : s),
      undefined
    )
    const memory = { baseline, final: finalHeap, limit: memoryLimit(baseline) }
    const invariants = invariantsOf({
      outcomes,
      unanswered: load.counts().sent - outcomes.length,
      tickets,
      mongo,
      kafkaKeys: kafka.size,
      kafkaDiffering,
      delivery: options.delivery ?? "at-least-once",
      leftovers,
      backlog,
      latency: { maxMs: slowest?.latencyMs ?? 0, slowest, bound },
      process: watch,
      logs,
      closed,
      finalHealthStatus: finalHealth.status,
      allClosedAtMs,
      faultsEndMs,
      circuits,
      memory,
      sampled: sampler.sampled,
      faults: { records: faults.records, done: faultsDone },
      retries: retriesOf(outcomes, workflows)
    })

    // --- the report ---------------------------------------------------------------------------
    const latencies = sorted(outcomes.map((o) => o.latencyMs))
    const rejected = outcomes.filter((o) => o.kind === "rejected")
    const rejectedLatencies = sorted(rejected.map((o) => o.latencyMs))
    const loadOutcomes = outcomes.slice(warmupCount)
    const windows = new Map<number, number>()
    for (const o of loadOutcomes) {
      windows.set(Math.floor(o.sentAtMs / 5_000), (windows.get(Math.floor(o.sentAtMs / 5_000)) ?? 0) + 1)
    }
    const fullWindows = [...windows].filter(([w]) => (w + 1) * 5_000 <= loadMs).map(([, n]) => n / 5)
    const stoppedBy: Record<string, number> = {}
    for (const o of notAccepted.filter((o) => o.kind !== "violation")) {
      const key = `${o.kind} at ${o.why}`
      stoppedBy[key] = (stoppedBy[key] ?? 0) + 1
    }
    const totalSeconds = loadMs / 1000
    const report: Omit<ChaosReport, "markdown"> = {
      ok: invariants.every((i) => i.ok),
      delivery: options.delivery ?? "at-least-once",
      seed,
      startedAt: startedAt.toISOString(),
      durationMs,
      rate,
      rateFinding: options.rateFinding,
      loadMs,
      settingsYaml: SETTINGS_YAML,
      latencyBoundMs: bound.ms,
      latencyBoundFormula: bound.formula,
      requests: {
        sent: load.counts().sent,
        accepted: tickets.accepted.length,
        queued: outcomes.filter((o) => o.queued).length,
        rejected: rejected.length,
        failed: countOf(outcomes, "failed"),
        violations: countOf(outcomes, "violation"),
        notSent: load.counts().notSent,
        retried: outcomes.filter((o) => o.retried !== undefined).length,
        retriedAccepted: retriedAccepted.length
      },
      perSecond: {
        total: loadOutcomes.length / totalSeconds,
        accepted: loadOutcomes.filter((o) => o.kind === "accepted").length / totalSeconds,
        minWindow: fullWindows.length === 0 ? 0 : Math.min(...fullWindows)
      },
      latency: {
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
        max: slowest?.latencyMs ?? 0,
        rejectedP50: quantile(rejectedLatencies, 0.5),
        rejectedP99: quantile(rejectedLatencies, 0.99)
      },
      stoppedBy,
      faults: faults.records,
      circuits,
      overlap: {
        maxNotClosed: sampler.sampled.maxNotClosed,
        maxNotClosedFailFast: sampler.sampled.maxNotClosedFailFast,
        maxOpenFailFast: sampler.sampled.maxOpenFailFast,
        firstAtMs: sampler.sampled.firstOverlapAt,
        circuits: sampler.sampled.overlapCircuits,
        msWithTwoOrMoreFailFast: sampler.sampled.overlapMs
      },
      allClosedAtMs,
      tickets: {
        lost: tickets.lostIds.length,
        lostIds: tickets.lostIds,
        duplicatedInMongo: tickets.duplicatedInMongo.length,
        duplicatedInKafka: tickets.duplicatedInKafka.length,
        extraKafkaMessages: tickets.extraKafkaMessages,
        readUncommitted,
        inKafka: kafka.size,
        inMongo: mongo.counts.size
      },
      leftovers,
      backlog,
      memory: { baselineMB: mb(baseline), finalMB: mb(finalHeap), limitMB: mb(memory.limit) },
      logs: { lines: logs.lines, errorLines: logs.errorLines, defects: logs.defects.length },
      invariants
    }
    const context = {
      command: options.command ?? "npm run chaos",
      loadAtStart,
      healthErrors: sampler.sampled.healthErrors,
      errorSamples: logs.errorSamples,
      maxInFlight
    }
    // (m): the report itself, once rendered, shows only figures that were observed.
    const observed = observedInvariant("m", toMarkdown(report, context))
    const checked = { ...report, ok: report.ok && observed.ok, invariants: [...report.invariants, observed] }
    const markdown = toMarkdown(checked, context)
    const full: ChaosReport = { ...checked, markdown }
    log(summary(full))
    if (options.writeReport !== undefined && options.writeReport !== false) {
      log(`chaos: wrote ${writeReport(markdown, options.writeReport)}`)
    }
    return full
  } finally {
    for (const cleanup of cleanups) await Promise.resolve(cleanup()).catch(() => undefined)
    await parts.service?.close()
    await stopRig(parts.rig)
    watch.stop()
  }
}

/**
 * The highest plan rate the rig sustains with no faults: `stepMs` at each rate of `rates` in turn
 * (one rig, one service); a rate is held when the answers kept up (95% of the target per second),
 * every plan was accepted, none was dropped at the in-flight cap, and the p99 stayed under `p99LimitMs`.
 * Stops at the first rate not held.
 */
export async function findRate(options: {
  readonly rates: ReadonlyArray<number>
  readonly stepMs?: number | undefined
  readonly p99LimitMs?: number | undefined
  readonly log?: ((line: string) => void) | undefined
}): Promise<RateFinding> {
  const log = options.log ?? ((line: string) => console.log(line))
  const stepMs = options.stepMs ?? 15_000
  const p99LimitMs = options.p99LimitMs ?? 1_000
  const settings = await loadSettings()
  const parts: { rig: Partial<Rig>; service: Service | undefined } = { rig: {}, service: undefined }
  const at = new Date().toISOString()
  try {
    log(`chaos: finding the rate (no faults), ${stepMs / 1000} s at each of ${options.rates.join(", ")} plans/s`)
    const { service } = await boot(parts, settings, captureLogs(), log)
    const steps: Array<RateStep> = []
    for (const rate of options.rates) {
      const load = makeLoad({
        service,
        random: prng(rate),
        idPrefix: `r${rate}-${Date.now().toString(36)}`,
        maxInFlight: 64,
        clientTimeoutMs: 30_000
      })
      if (steps.length === 0) await warmUp(service, load)
      const before = load.outcomes.length
      load.start(rate)
      await sleep(stepMs)
      load.stop()
      const elapsed = performance.now() - load.startedAt()
      await load.settle(30_000)
      const outcomes = load.outcomes.slice(before)
      const answeredInTime = outcomes.filter((o) => o.sentAtMs + o.latencyMs <= elapsed).length
      const p99Ms = quantile(outcomes.map((o) => o.latencyMs).toSorted((a, b) => a - b), 0.99)
      const accepted = outcomes.filter((o) => o.kind === "accepted").length
      const answeredPerSecond = answeredInTime / (elapsed / 1000)
      const held = answeredPerSecond >= 0.95 * rate && accepted === outcomes.length && load.counts().notSent === 0 &&
        p99Ms <= p99LimitMs
      const step: RateStep = {
        rate,
        answeredPerSecond,
        accepted,
        sent: outcomes.length,
        notSent: load.counts().notSent,
        p99Ms,
        held
      }
      steps.push(step)
      log(
        `chaos: ${rate} plans/s: ${
          answeredPerSecond.toFixed(1)
        } answered/s, ${accepted}/${outcomes.length} accepted, ${step.notSent} not sent, p99 ${Math.round(p99Ms)} ms: ${
          held ? "held" : "NOT held"
        }`
      )
      if (!held) break
      // The outbox catches up between steps, so each starts from an empty backlog.
      await until(async () => (await pendingNow(service)) === 0, 30_000, HEALTH_EVERY_MS)
    }
    const sustained = Math.max(0, ...steps.filter((s) => s.held).map((s) => s.rate))
    return { at, sustained, p99LimitMs, stepMs, steps, loadAverage: os.loadavg() }
  } finally {
    await parts.service?.close()
    await stopRig(parts.rig)
  }
}
