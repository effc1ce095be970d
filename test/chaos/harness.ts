/**
 * Chaos under load: the Orchestrator Dynamic service, booted from its layer graph
 * (`App.make`) against private real servers, driven at a steady rate over HTTP
 * while a fault schedule kills, pauses, stalls, cuts and slows each server in turn.
 * At the end the invariants are checked from the servers themselves (see
 * `runChaos`). Shared by `npm run chaos` (`chaos/run.ts`, writes
 * docs/reliability.md) and the short version in `npm test`
 * (`test/chaos/chaos.test.ts`).
 *
 * The implementation lives under `test/` so that the test project's
 * `tsc -b` checks it (a composite project cannot import files outside its
 * include); `chaos/harness.ts` re-exports it.
 *
 * Everything is bounded: every wait has a deadline, every server, proxy, timer and
 * the service itself are stopped in `finally`, and everything listens on 127.0.0.1.
 */
import * as App from "@neural-hive/example-orchestrator-dynamic/App"
import type { AppConfig } from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { Context, Effect, Exit, Layer, Logger, Redacted, Scope } from "effect"
import { HttpServer } from "effect/http"
import { Kafka, logLevel } from "kafkajs"
import { MongoClient } from "mongodb"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { FaultProxy } from "../services/proxy.ts"
import {
  freePort,
  type ServerHandle,
  type ServerName,
  startKafka,
  startMongo,
  startRedis,
  startTemporal
} from "../services/servers.ts"

// -----------------------------------------------------------------------------
// options and report
// -----------------------------------------------------------------------------

export interface ChaosOptions {
  /** How long the load runs, ms; the fault schedule is laid out in fractions of it. */
  readonly durationMs: number
  /** Plans per second, open loop (a fixed interval, whatever the answers). */
  readonly rate: number
  /** Seeds the plans' steps and a small jitter of the fault times (default: from the clock). */
  readonly seed?: number | undefined
  /** Write the markdown report there (`true`: docs/reliability.md). Default: nowhere. */
  readonly writeReport?: boolean | string | undefined
  /** Requests in flight at most; a tick that finds them all busy is not sent (counted). Default 64. */
  readonly maxInFlight?: number | undefined
  /** Progress lines; default `console.log`. */
  readonly log?: ((line: string) => void) | undefined
  /** The command line shown in the report. */
  readonly command?: string | undefined
}

export interface Invariant {
  readonly id: string
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

export interface FaultRecord {
  readonly server: ServerName
  readonly inject: string
  readonly lift: string
  /** Planned times, ms after the load started. */
  readonly plannedFromMs: number
  readonly plannedToMs: number
  injectedAtMs: number | undefined
  liftedAtMs: number | undefined
  /** When the lift finished (a restart waits until the server answers). */
  liftDoneAtMs: number | undefined
  error: string | undefined
}

export interface CircuitReport {
  readonly circuit: string
  readonly trips: number
  readonly openLines: number
  readonly halfOpenTransitions: number
  readonly halfOpenLines: number
  readonly closedTransitions: number
  readonly resetLines: number
  readonly rejected: number
  readonly failures: number
  readonly finalState: string
}

export interface ChaosReport {
  readonly ok: boolean
  readonly seed: number
  readonly startedAt: string
  readonly durationMs: number
  readonly rate: number
  /** Load start to load stop (the quiet tail until every breaker closed included), ms. */
  readonly loadMs: number
  readonly settingsYaml: string
  readonly latencyBoundMs: number
  readonly latencyBoundFormula: string
  readonly requests: {
    readonly sent: number
    readonly accepted: number
    readonly rejected: number
    readonly failed: number
    readonly violations: number
    /** Ticks not sent because `maxInFlight` requests were still running. */
    readonly notSent: number
  }
  readonly perSecond: { readonly total: number; readonly accepted: number; readonly minWindow: number }
  readonly latency: {
    readonly p50: number
    readonly p99: number
    readonly max: number
    readonly rejectedP50: number
    readonly rejectedP99: number
    /** 503s whose Redis steps were answered: the breaker's refusal alone. */
    readonly rejectedCacheAnsweredP50: number
    readonly rejectedCacheAnsweredP99: number
    readonly rejectedCacheAnswered: number
  }
  /** Non-accepted plans by the step that stopped them and why. */
  readonly stoppedBy: Readonly<Record<string, number>>
  readonly faults: ReadonlyArray<FaultRecord>
  readonly circuits: ReadonlyArray<CircuitReport>
  readonly overlap: {
    readonly maxNotClosed: number
    readonly maxNotClosedFailFast: number
    readonly maxOpenFailFast: number
    readonly firstAtMs: number | undefined
    readonly circuits: ReadonlyArray<string>
    readonly msWithTwoOrMoreFailFast: number
  }
  readonly allClosedAtMs: number | undefined
  readonly tickets: {
    readonly lost: number
    readonly lostIds: ReadonlyArray<string>
    readonly duplicated: number
    readonly inKafka: number
    readonly inMongo: number
    /** Tickets written for plans the caller was told failed (allowed: the step after failed). */
    readonly orphansInMongo: number
    readonly orphansInKafka: number
  }
  readonly memory: { readonly baselineMB: number; readonly finalMB: number; readonly limitMB: number }
  readonly logs: { readonly lines: number; readonly errorLines: number; readonly defects: number }
  readonly invariants: ReadonlyArray<Invariant>
  readonly markdown: string
}

// -----------------------------------------------------------------------------
// settings
// -----------------------------------------------------------------------------

/** The seed's file with short periods, so every outage shows full open, half-open, closed cycles. */
export const SETTINGS_YAML = `circuitBreaker:
  kafka:    { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: 2.5 }
  temporal: { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: 2.5 }
  redis:    { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: 1.5 }
  mongodb:  { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: 2.5 }
`

/** Added to the sum of the call timeouts: event-loop lag and HTTP on a loaded 2-core machine. */
const LATENCY_MARGIN_MS = 3_000
const TOPIC = "execution-tickets"
const DATABASE = "orchestrator"
const CIRCUITS = ["kafka_producer", "temporal_client", "redis_client", "mongodb_client"] as const
const FAIL_FAST = new Set<string>(["kafka_producer", "temporal_client", "mongodb_client"])
const HEALTH_EVERY_MS = 250
const MEMORY_SLACK_MB = 30
const MEMORY_SLACK_RATIO = 0.5

// -----------------------------------------------------------------------------
// small helpers
// -----------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** `promise`, or a rejection naming `what` after `ms`. */
const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Polls `check` every `everyMs` until it is true or `ms` passed; resolves whether it became true. */
const until = async (check: () => boolean | Promise<boolean>, ms: number, everyMs = 200): Promise<boolean> => {
  const deadline = performance.now() + ms
  for (;;) {
    if (await check()) return true
    if (performance.now() >= deadline) return false
    await sleep(everyMs)
  }
}

/** mulberry32: a small seeded PRNG, so a run's plans and jitter can be repeated. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const millis = (seconds: number): number => Math.round(seconds * 1000)

const countOf = (outcomes: ReadonlyArray<Outcome>, kind: Kind): number =>
  outcomes.reduce((n, o) => (o.kind === kind ? n + 1 : n), 0)

const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

const mb = (bytes: number): number => Math.round((bytes / (1024 * 1024)) * 10) / 10

const seconds = (ms: number | undefined): string => (ms === undefined ? "–" : `${(ms / 1000).toFixed(1)} s`)

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

// -----------------------------------------------------------------------------
// the service's log lines
// -----------------------------------------------------------------------------

interface LogCapture {
  readonly logger: Logger.Logger<unknown, void>
  lines: number
  errorLines: number
  readonly byMessage: Map<string, number>
  /** Transition lines: [circuit, message]. */
  readonly transitions: Array<{ readonly circuit: string; readonly message: string; readonly at: string }>
  /** Lines whose cause holds a defect (Die), at any level. */
  readonly defects: Array<string>
  /** A few ERROR/FATAL lines, for the report. */
  readonly errorSamples: Array<string>
}

/** A logger that formats each line as the service's JSON output (`Logger.formatJson`) and keeps what the checks need. */
const captureLogs = (): LogCapture => {
  const capture: LogCapture = {
    logger: undefined as never,
    lines: 0,
    errorLines: 0,
    byMessage: new Map(),
    transitions: [],
    defects: [],
    errorSamples: []
  }
  const logger = Logger.make((options) => {
    const line = Logger.formatJson.log(options)
    capture.lines++
    let parsed: { message?: unknown; level?: unknown; annotations?: Record<string, unknown> }
    try {
      parsed = JSON.parse(line)
    } catch {
      parsed = {}
    }
    const message = typeof parsed.message === "string" ? parsed.message : JSON.stringify(parsed.message)
    capture.byMessage.set(message, (capture.byMessage.get(message) ?? 0) + 1)
    if (message.startsWith("circuit_breaker_")) {
      capture.transitions.push({
        circuit: String(parsed.annotations?.["circuit"]),
        message,
        at: options.date.toISOString()
      })
    }
    const level = String(parsed.level)
    if (level === "ERROR" || level === "FATAL") {
      capture.errorLines++
      if (capture.errorSamples.length < 3) capture.errorSamples.push(line.slice(0, 400))
    }
    if (options.cause.reasons.some((reason) => reason._tag === "Die")) {
      if (capture.defects.length < 20) capture.defects.push(line.slice(0, 2000))
      else capture.defects.push("(more)")
    }
  })
  return Object.assign(capture, { logger })
}

// -----------------------------------------------------------------------------
// requests
// -----------------------------------------------------------------------------

type Kind = "accepted" | "rejected" | "failed" | "violation"

interface Outcome {
  readonly id: string
  readonly sentAtMs: number
  readonly status: number
  readonly latencyMs: number
  readonly kind: Kind
  /** For rejected/failed: `step:circuit` or `step:reason`. */
  readonly why: string | undefined
  readonly violation: string | undefined
  /** The cache step was ok (Redis answered), so the plan's time is the fail-fast steps' own. */
  readonly cacheAnswered: boolean
}

type Step = {
  readonly status?: unknown
  readonly reason?: unknown
  readonly error?: unknown
  readonly circuit?: unknown
}

/** What the caller was told: 202 accepted, 503 rejected by a breaker, 502 failed with a typed reason; anything else is a violation. */
const classify = (status: number, text: string): Pick<Outcome, "kind" | "why" | "violation" | "cacheAnswered"> => {
  let body: { accepted?: unknown; steps?: Record<string, Step> } | undefined
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  const steps = body?.steps !== undefined && typeof body.steps === "object" && body.steps !== null
    ? Object.entries(body.steps)
    : []
  const cacheAnswered = body?.steps?.["cache"]?.status === "ok"
  const bad = (violation: string) => ({ kind: "violation" as const, why: undefined, violation, cacheAnswered })
  if (status === 202) {
    const ok = (name: string) => {
      const step = body?.steps?.[name]
      return step?.status === "ok" || step?.status === "skipped"
    }
    return body?.accepted === true && ok("workflow") && ok("persistence") && ok("ticket")
      ? { kind: "accepted", why: undefined, violation: undefined, cacheAnswered }
      : bad(`202 without every step ok: ${text.slice(0, 300)}`)
  }
  if (status === 503) {
    const rejected = steps.find(([, s]) => s.status === "rejected" && typeof s.circuit === "string")
    return rejected === undefined
      ? bad(`503 without a rejected step naming its circuit: ${text.slice(0, 300)}`)
      : { kind: "rejected", why: `${rejected[0]}:${String(rejected[1].circuit)}`, violation: undefined, cacheAnswered }
  }
  if (status === 502) {
    const failed = steps.find(([, s]) =>
      s.status === "failed" && typeof s.reason === "string" && s.reason !== "" && typeof s.error === "string"
    )
    return failed === undefined
      ? bad(`502 without a failed step with a typed reason: ${text.slice(0, 300)}`)
      : { kind: "failed", why: `${failed[0]}:${String(failed[1].reason)}`, violation: undefined, cacheAnswered }
  }
  return bad(`HTTP ${status}: ${text.slice(0, 300)}`)
}

const STEP_NAMES = ["plan", "validate", "schedule", "execute", "report", "archive"]

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

interface Series {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const parseMetrics = (text: string): Array<Series> => {
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

// -----------------------------------------------------------------------------
// read-back, straight from the servers
// -----------------------------------------------------------------------------

/** Every key in the topic, counted: a fresh consumer group from the beginning, until the end offsets seen first. */
const readKafka = async (broker: string, deadlineMs: number): Promise<Map<string, number>> => {
  const kafka = new Kafka({
    clientId: "chaos-readback",
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 5 }
  })
  const admin = kafka.admin()
  await within(admin.connect(), 30_000, "kafka admin connect")
  let ends: Map<number, number>
  try {
    const offsets = await within(admin.fetchTopicOffsets(TOPIC), 30_000, "kafka fetchTopicOffsets")
    ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]))
  } finally {
    await within(admin.disconnect(), 10_000, "kafka admin disconnect").catch(() => undefined)
  }
  const counts = new Map<string, number>()
  if ([...ends.values()].every((high) => high === 0)) return counts
  const reached = new Map<number, number>()
  const consumer = kafka.consumer({ groupId: `chaos-readback-${process.pid}-${Date.now()}` })
  try {
    await within(consumer.connect(), 30_000, "kafka consumer connect")
    await within(consumer.subscribe({ topic: TOPIC, fromBeginning: true }), 30_000, "kafka subscribe")
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message, partition }) => {
        const key = message.key === null ? "(null)" : message.key.toString()
        counts.set(key, (counts.get(key) ?? 0) + 1)
        reached.set(partition, Number(message.offset) + 1)
      }
    })
    const done = await until(
      () => [...ends].every(([partition, high]) => (reached.get(partition) ?? 0) >= high),
      deadlineMs,
      100
    )
    if (!done) {
      throw new Error(
        `kafka read-back: reached ${JSON.stringify([...reached])} of ${JSON.stringify([...ends])} in ${deadlineMs} ms`
      )
    }
  } finally {
    await within(consumer.disconnect(), 15_000, "kafka consumer disconnect").catch(() => undefined)
  }
  return counts
}

/** Every ticket in `orchestrator.tickets`, counted by plan; `_id` must be `ticket-<plan>`. */
const readMongo = async (url: string): Promise<{ counts: Map<string, number>; badIds: number }> => {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000, directConnection: true })
  try {
    const docs = await within(
      client.db(DATABASE).collection("tickets").find({}, { projection: { _id: 1, planId: 1 } }).toArray(),
      60_000,
      "mongodb read-back"
    )
    const counts = new Map<string, number>()
    let badIds = 0
    for (const doc of docs) {
      const plan = String(doc["planId"])
      if (String(doc._id) !== `ticket-${plan}`) badIds++
      counts.set(plan, (counts.get(plan) ?? 0) + 1)
    }
    return { counts, badIds }
  } finally {
    await within(client.close(), 10_000, "mongodb close").catch(() => undefined)
  }
}

// -----------------------------------------------------------------------------
// the run
// -----------------------------------------------------------------------------

interface Rig {
  redis: ServerHandle
  kafka: ServerHandle
  temporal: ServerHandle
  mongodb: ServerHandle
  redisProxy: FaultProxy
  kafkaProxy: FaultProxy
  temporalProxy: FaultProxy
  mongodbProxy: FaultProxy
}

interface FaultSpec {
  readonly server: ServerName
  readonly from: number
  readonly to: number
  readonly inject: string
  readonly lift: string
  readonly injectRun: (rig: Rig) => Promise<void>
  readonly liftRun: (rig: Rig) => Promise<void>
}

/**
 * The schedule, in fractions of the load's duration. Flow order is Redis (fail-open), Temporal,
 * MongoDB, Kafka: a downstream breaker only sees calls while everything upstream works, so an
 * overlap of two fail-fast breakers comes from a downstream one tripping first (Kafka) and an
 * upstream one (MongoDB) tripping while it is still out.
 */
const schedule = (
  settings: OrchestratorConfig.Settings,
  cuts: { timer: NodeJS.Timeout | undefined }
): Array<FaultSpec> => {
  const kafkaSlowMs = Math.round(settings.kafka.callTimeoutSeconds * 1000)
  return [
    {
      server: "kafka",
      from: 0.10,
      to: 0.26,
      inject: "SIGKILL the broker (crash)",
      lift: "restart it (same port and data)",
      injectRun: (rig) => rig.kafka.kill(),
      liftRun: (rig) => rig.kafka.restart()
    },
    {
      server: "redis",
      from: 0.16,
      to: 0.34,
      inject: "stall the proxy (no bytes either way)",
      lift: "pass",
      injectRun: (rig) => rig.redisProxy.stall(),
      liftRun: (rig) => rig.redisProxy.pass()
    },
    {
      server: "mongodb",
      from: 0.22,
      to: 0.40,
      inject: "refuse new connections, cut open ones every second",
      lift: "pass",
      injectRun: async (rig) => {
        await rig.mongodbProxy.refuse()
        rig.mongodbProxy.cut()
        cuts.timer = setInterval(() => rig.mongodbProxy.cut(), 1_000)
      },
      liftRun: async (rig) => {
        clearInterval(cuts.timer)
        cuts.timer = undefined
        await rig.mongodbProxy.pass()
      }
    },
    {
      server: "temporal",
      from: 0.44,
      to: 0.56,
      inject: "SIGSTOP the server (hung)",
      lift: "SIGCONT",
      injectRun: async (rig) => rig.temporal.pause(),
      liftRun: async (rig) => rig.temporal.resume()
    },
    {
      server: "redis",
      from: 0.50,
      to: 0.58,
      inject: "SIGKILL the server",
      lift: "restart it (empty)",
      injectRun: (rig) => rig.redis.kill(),
      liftRun: (rig) => rig.redis.restart()
    },
    {
      server: "kafka",
      from: 0.60,
      to: 0.68,
      inject: `slow the proxy: +${kafkaSlowMs} ms each way`,
      lift: "pass",
      injectRun: (rig) => rig.kafkaProxy.delay(kafkaSlowMs),
      liftRun: (rig) => rig.kafkaProxy.pass()
    },
    {
      server: "temporal",
      from: 0.62,
      to: 0.66,
      inject: "cut every connection and refuse new ones",
      lift: "pass",
      injectRun: async (rig) => {
        await rig.temporalProxy.refuse()
        rig.temporalProxy.cut()
      },
      liftRun: (rig) => rig.temporalProxy.pass()
    }
  ]
}

/** The longest a plan may take: every call it makes (Redis get and setex, Temporal, MongoDB, Kafka) at its call timeout, plus a margin. */
export const latencyBound = (settings: OrchestratorConfig.Settings): { ms: number; formula: string } => {
  const r = millis(settings.redis.callTimeoutSeconds)
  const t = millis(settings.temporal.callTimeoutSeconds)
  const m = millis(settings.mongodb.callTimeoutSeconds)
  const k = millis(settings.kafka.callTimeoutSeconds)
  const total = 2 * r + t + m + k + LATENCY_MARGIN_MS
  return {
    ms: total,
    formula:
      `2 × redis ${r} ms (get, setex) + temporal ${t} ms + mongodb ${m} ms + kafka ${k} ms + ${LATENCY_MARGIN_MS} ms margin = ${total} ms`
  }
}

/**
 * Runs the whole scenario and returns the report; `report.ok` is false when an
 * invariant failed. Throws only when the rig itself cannot run (a server that does
 * not start, the service that does not boot): never a silent skip.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((line: string) => console.log(line))
  const seed = (options.seed ?? Date.now()) >>> 0
  const random = prng(seed)
  const durationMs = options.durationMs
  const rate = options.rate
  const maxInFlight = options.maxInFlight ?? 64
  if (!(durationMs >= 10_000) || !(rate > 0 && rate <= 500)) {
    throw new Error(`runChaos: durationMs >= 10000 and 0 < rate <= 500 expected, got ${durationMs}, ${rate}`)
  }
  const startedAt = new Date()
  const loadAtStart = os.loadavg()
  const settings = await Effect.runPromise(OrchestratorConfig.parse(SETTINGS_YAML, { source: "chaos settings" }))
  const bound = latencyBound(settings)
  const clientTimeoutMs = bound.ms + 15_000
  const gc = collector()

  // Process-level failures, during the whole run.
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

  const rig: Partial<Rig> = {}
  const cuts: { timer: NodeJS.Timeout | undefined } = { timer: undefined }
  const timers = new Set<NodeJS.Timeout>()
  let scope: Scope.Closeable | undefined
  /** Set once the load and the health sampler run; `finally` stops them. */
  const running = { load: false, sampler: false, loadTimer: undefined as NodeJS.Timeout | undefined }

  try {
    // --- servers and proxies ----------------------------------------------------------------
    log(`chaos: seed ${seed}, ${rate} plans/s for ${durationMs / 1000} s; starting Redis, Kafka, Temporal, MongoDB`)
    const bootStarted = performance.now()
    const kafkaProxyPort = await freePort()
    const started = await Promise.allSettled([
      startRedis({ startTimeoutMs: 60_000 }),
      startKafka({ advertisedPort: kafkaProxyPort, startTimeoutMs: 180_000 }),
      startTemporal({ startTimeoutMs: 120_000 }),
      startMongo({ startTimeoutMs: 60_000 })
    ])
    const [redis, kafka, temporal, mongodb] = started
    if (redis.status === "fulfilled") rig.redis = redis.value
    if (kafka.status === "fulfilled") rig.kafka = kafka.value
    if (temporal.status === "fulfilled") rig.temporal = temporal.value
    if (mongodb.status === "fulfilled") rig.mongodb = mongodb.value
    const failures = started.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []))
    if (failures.length > 0) throw new Error(`chaos: a server did not start:\n${failures.join("\n")}`)
    rig.redisProxy = await FaultProxy.start({ targetPort: rig.redis!.port })
    rig.kafkaProxy = await FaultProxy.start({ port: kafkaProxyPort, targetPort: rig.kafka!.port })
    rig.temporalProxy = await FaultProxy.start({ targetPort: rig.temporal!.port })
    rig.mongodbProxy = await FaultProxy.start({ targetPort: rig.mongodb!.port })
    const r = rig as Rig

    // The topic exists before the first send (auto-creation would make the first sends fail or wait).
    const admin = new Kafka({
      clientId: "chaos-admin",
      brokers: [r.kafkaProxy.address],
      logLevel: logLevel.NOTHING,
      retry: { retries: 8 }
    }).admin()
    await within(admin.connect(), 60_000, "kafka admin connect")
    try {
      await within(
        admin.createTopics({
          topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 1 }],
          waitForLeaders: true
        }),
        60_000,
        "create topic"
      )
    } finally {
      await within(admin.disconnect(), 10_000, "kafka admin disconnect").catch(() => undefined)
    }
    log(`chaos: servers up in ${((performance.now() - bootStarted) / 1000).toFixed(1)} s`)

    // --- the service ------------------------------------------------------------------------
    const logs = captureLogs()
    const config: AppConfig = {
      resilienceConfig: "(chaos settings)",
      service: "orchestrator-dynamic",
      host: "127.0.0.1",
      port: 0,
      adminToken: undefined,
      kafkaBrokers: [r.kafkaProxy.address],
      temporalAddress: r.temporalProxy.address,
      temporalNamespace: "default",
      redisUrl: Redacted.make(`redis://127.0.0.1:${r.redisProxy.port}`),
      mongodbUrl: Redacted.make(`mongodb://127.0.0.1:${r.mongodbProxy.port}/${DATABASE}`),
      faults: {}
    }
    scope = Effect.runSync(Scope.make())
    const context = await within(
      Effect.runPromise(
        Layer.buildWithScope(App.make(config, settings).pipe(Layer.provide(Logger.layer([logs.logger]))), scope)
      ),
      60_000,
      "service boot"
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    const base = `http://127.0.0.1:${"port" in address ? address.port : 0}`

    const get = async (route: string): Promise<{ status: number; text: string }> => {
      const response = await fetch(`${base}${route}`, { signal: AbortSignal.timeout(10_000) })
      return { status: response.status, text: await response.text() }
    }

    // --- the driver ---------------------------------------------------------------------------
    const outcomes: Array<Outcome> = []
    const sent = new Set<string>()
    let sequence = 0
    let inFlight = 0
    let notSent = 0
    let t0 = performance.now()
    const inFlightDone = new Set<Promise<void>>()
    const idPrefix = `c${seed.toString(36)}`

    const submit = (): void => {
      const id = `${idPrefix}-${String(++sequence).padStart(6, "0")}`
      const steps = STEP_NAMES.slice(0, 1 + Math.floor(random() * STEP_NAMES.length))
      const sentAtMs = performance.now() - t0
      sent.add(id)
      inFlight++
      const started = performance.now()
      const request = (async () => {
        let outcome: Outcome
        try {
          const response = await fetch(`${base}/plans`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ id, steps }),
            signal: AbortSignal.timeout(clientTimeoutMs)
          })
          const text = await response.text()
          outcome = {
            id,
            sentAtMs,
            status: response.status,
            latencyMs: performance.now() - started,
            ...classify(response.status, text)
          }
        } catch (error) {
          const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : ""
          outcome = {
            id,
            sentAtMs,
            status: 0,
            latencyMs: performance.now() - started,
            kind: "violation",
            why: undefined,
            cacheAnswered: false,
            violation: `no HTTP answer: ${error instanceof Error ? error.message : String(error)}${cause}`
          }
        }
        outcomes.push(outcome)
      })().finally(() => {
        inFlight--
        inFlightDone.delete(request)
      })
      inFlightDone.add(request)
    }

    // Warm-up: the service answers and a few plans go through before the clock starts.
    const healthy = await until(async () => (await get("/health").catch(() => ({ status: 0 }))).status === 200, 60_000)
    if (!healthy) throw new Error("chaos: /health never answered 200 after boot")
    const warm = await until(
      async () => {
        submit()
        await Promise.all(inFlightDone)
        return outcomes.filter((o) => o.kind === "accepted").length >= 3
      },
      90_000,
      200
    )
    if (!warm) throw new Error(`chaos: no plan accepted during warm-up: ${JSON.stringify(outcomes.slice(-3))}`)

    // --- health sampling ----------------------------------------------------------------------
    let latestStates: Record<string, string> = {}
    let maxNotClosed = 0
    let maxNotClosedFailFast = 0
    let maxOpenFailFast = 0
    let firstOverlapAt: number | undefined
    let overlapCircuits: Array<string> = []
    let overlapMs = 0
    let lastSampleAt: number | undefined
    let lastSampleOverlap = false
    let healthErrors = 0
    /** Start of the current stretch of samples with every breaker CLOSED. */
    let allClosedSince: number | undefined
    running.sampler = true
    const sampler = (async () => {
      while (running.sampler) {
        const at = performance.now() - t0
        try {
          const health = JSON.parse((await get("/health")).text) as {
            breakers: ReadonlyArray<{ name: string; state: string }>
          }
          const states: Record<string, string> = {}
          for (const b of health.breakers) states[b.name] = b.state
          latestStates = states
          const everyClosed = CIRCUITS.every((c) => states[c] === "closed")
          if (!everyClosed) allClosedSince = undefined
          else allClosedSince ??= at
          const notClosed = health.breakers.filter((b) => b.state !== "closed")
          const notClosedFailFast = notClosed.filter((b) => FAIL_FAST.has(b.name))
          const openFailFast = notClosedFailFast.filter((b) => b.state === "open")
          maxNotClosed = Math.max(maxNotClosed, notClosed.length)
          maxOpenFailFast = Math.max(maxOpenFailFast, openFailFast.length)
          if (notClosedFailFast.length > maxNotClosedFailFast) {
            maxNotClosedFailFast = notClosedFailFast.length
            if (maxNotClosedFailFast >= 2) {
              firstOverlapAt ??= at
              overlapCircuits = notClosedFailFast.map((b) => `${b.name} ${b.state}`)
            }
          }
          const overlap = notClosedFailFast.length >= 2
          if (lastSampleAt !== undefined && overlap && lastSampleOverlap) overlapMs += at - lastSampleAt
          lastSampleAt = at
          lastSampleOverlap = overlap
        } catch {
          healthErrors++
        }
        await sleep(HEALTH_EVERY_MS)
      }
    })()

    // --- the load -----------------------------------------------------------------------------
    const interval = 1000 / rate
    let ticks = 0
    t0 = performance.now()
    const warmupCount = outcomes.length
    const loop = (): void => {
      if (!running.load) return
      const now = performance.now() - t0
      // Open loop: one plan per tick; a late timer catches up (at most 20 at once), never queues.
      let burst = 0
      while (ticks * interval <= now && burst < 20) {
        ticks++
        burst++
        if (inFlight >= maxInFlight) notSent++
        else submit()
      }
      if (ticks * interval <= now) ticks = Math.ceil(now / interval) // too far behind: drop the backlog
      running.loadTimer = setTimeout(loop, Math.max(0, ticks * interval - (performance.now() - t0)))
    }
    running.load = true
    loop()

    const progress = setInterval(() => {
      const t = performance.now() - t0
      const states = CIRCUITS.map((c) => `${c.split("_")[0]}=${latestStates[c] ?? "?"}`).join(" ")
      log(
        `chaos: t=${(t / 1000).toFixed(0).padStart(3)} s sent ${sequence} accepted ${
          countOf(outcomes, "accepted")
        } rejected ${countOf(outcomes, "rejected")} failed ${countOf(outcomes, "failed")} violations ${
          countOf(outcomes, "violation")
        } in-flight ${inFlight} | ${states}`
      )
    }, 5_000)
    timers.add(progress)

    // Baseline memory, after the warm-up tenth of the run (before the first fault).
    await sleep(Math.max(0, 0.08 * durationMs - (performance.now() - t0)))
    const baseline = await heapAfterGc(gc)
    log(`chaos: heap baseline ${mb(baseline)} MB after gc`)

    // --- the faults ---------------------------------------------------------------------------
    const specs = schedule(settings, cuts)
    const records: Array<FaultRecord> = specs.map((s) => {
      const jitter = () => (random() - 0.5) * 0.01 * durationMs
      return {
        server: s.server,
        inject: s.inject,
        lift: s.lift,
        plannedFromMs: Math.round(s.from * durationMs + jitter()),
        plannedToMs: Math.round(s.to * durationMs + jitter()),
        injectedAtMs: undefined,
        liftedAtMs: undefined,
        liftDoneAtMs: undefined,
        error: undefined
      }
    })
    // One chain per server, so that a lift never overtakes its own injection (a restart that is still running).
    const chains = new Map<ServerName, Promise<void>>()
    const actions: Array<Promise<void>> = []
    const at = (ms: number, server: ServerName, run: () => Promise<void>) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer)
          const chain = (chains.get(server) ?? Promise.resolve()).then(run)
          chains.set(server, chain.catch(() => undefined))
          chain.then(resolve, resolve)
        }, Math.max(0, ms - (performance.now() - t0)))
        timers.add(timer)
      })
    specs.forEach((spec, i) => {
      const record = records[i]!
      actions.push(at(record.plannedFromMs, spec.server, async () => {
        record.injectedAtMs = performance.now() - t0
        log(`chaos: t=${(record.injectedAtMs / 1000).toFixed(1)} s ${spec.server}: ${spec.inject}`)
        await spec.injectRun(r).catch((error: unknown) => {
          record.error = `inject: ${String(error)}`
        })
      }))
      actions.push(at(record.plannedToMs, spec.server, async () => {
        record.liftedAtMs = performance.now() - t0
        log(`chaos: t=${(record.liftedAtMs / 1000).toFixed(1)} s ${spec.server}: ${spec.lift}`)
        await spec.liftRun(r).catch((error: unknown) => {
          record.error = `${record.error === undefined ? "" : `${record.error}; `}lift: ${String(error)}`
        })
        record.liftDoneAtMs = performance.now() - t0
      }))
    })

    await sleep(Math.max(0, durationMs - (performance.now() - t0)))
    // A restart may still be running: the faults end when every lift is done.
    const faultsDone = await within(Promise.all(actions).then(() => true), 180_000, "fault lifts").catch(() => false)
    const faultsEndMs = Math.max(0, ...records.map((f) => f.liftDoneAtMs ?? performance.now() - t0))
    // Quiet tail: the load goes on until every breaker is CLOSED (a half-open breaker needs a call to close).
    const allClosed = () =>
      CIRCUITS.every((c) => latestStates[c] === "closed") && Object.keys(latestStates).length === CIRCUITS.length
    const closed = await until(allClosed, 60_000, HEALTH_EVERY_MS)
    const allClosedAtMs = closed ? allClosedSince : undefined
    running.load = false
    clearTimeout(running.loadTimer)
    const loadMs = performance.now() - t0
    log(
      `chaos: load stopped at ${(loadMs / 1000).toFixed(1)} s (faults over at ${(faultsEndMs / 1000).toFixed(1)} s, ${
        closed ? "every breaker closed" : "NOT every breaker closed"
      }); waiting for ${inFlight} in-flight plans`
    )
    await within(Promise.all(inFlightDone), clientTimeoutMs + 5_000, "in-flight plans").catch(() => undefined)
    clearInterval(progress)
    timers.delete(progress)
    running.sampler = false
    await within(sampler, 15_000, "health sampler").catch(() => undefined)

    // --- invariants read from the service -----------------------------------------------------
    const finalHealth = await get("/health")
    const finalBreakers = (JSON.parse(finalHealth.text) as { breakers: ReadonlyArray<{ name: string; state: string }> })
      .breakers
    // Metrics and log lines are compared at one moment: a transition between the scrape and the count
    // (a breaker's open period ends by the clock) would otherwise show as a disagreement.
    let metrics: Array<Series> = []
    let transitionLines = logs.transitions.slice()
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = logs.transitions.length
      metrics = parseMetrics((await get("/metrics")).text)
      transitionLines = logs.transitions.slice()
      if (transitionLines.length === before) break
    }
    const finalHeap = await heapAfterGc(gc)

    // The service goes away before the servers are read (its clients disconnect cleanly).
    const closing = scope
    scope = undefined
    await within(Effect.runPromise(Scope.close(closing, Exit.void)), 30_000, "service shutdown").catch((error) => {
      log(`chaos: service shutdown: ${String(error)}`)
    })

    // --- read back from the servers -----------------------------------------------------------
    const kafkaCounts = await readKafka(r.kafkaProxy.address, 90_000)
    const mongo = await readMongo(`mongodb://127.0.0.1:${r.mongodb.port}/`)

    // --- the verdict --------------------------------------------------------------------------
    const accepted = outcomes.filter((o) => o.kind === "accepted")
    const rejected = outcomes.filter((o) => o.kind === "rejected")
    const failed = outcomes.filter((o) => o.kind === "failed")
    const violations = outcomes.filter((o) => o.kind === "violation")
    const lostIds: Array<string> = []
    const duplicatedIds: Array<string> = []
    for (const o of accepted) {
      const k = kafkaCounts.get(`ticket-${o.id}`) ?? 0
      const m = mongo.counts.get(o.id) ?? 0
      if (k === 0 || m === 0) lostIds.push(`${o.id} (kafka ${k}, mongodb ${m})`)
      if (k > 1 || m > 1) duplicatedIds.push(`${o.id} (kafka ${k}, mongodb ${m})`)
    }
    const acceptedIds = new Set(accepted.map((o) => o.id))
    const strangers = [...kafkaCounts.keys()].filter((key) => !sent.has(key.replace(/^ticket-/, ""))).length +
      [...mongo.counts.keys()].filter((plan) => !sent.has(plan)).length
    const orphansInMongo = [...mongo.counts.keys()].filter((plan) => !acceptedIds.has(plan)).length
    const orphansInKafka = [...kafkaCounts.keys()].filter((key) => !acceptedIds.has(key.replace(/^ticket-/, "")))
      .length
    const unanswered = sequence - outcomes.length

    const latencies = outcomes.map((o) => o.latencyMs).toSorted((a, b) => a - b)
    const rejectedLatencies = rejected.map((o) => o.latencyMs).toSorted((a, b) => a - b)
    const rejectedFast = rejected.filter((o) => o.cacheAnswered).map((o) => o.latencyMs).toSorted((a, b) => a - b)
    const slowest = outcomes.reduce<Outcome | undefined>(
      (s, o) => (s === undefined || o.latencyMs > s.latencyMs ? o : s),
      undefined
    )
    const maxLatency = slowest?.latencyMs ?? 0

    const loadOutcomes = outcomes.slice(warmupCount)
    const windows = new Map<number, number>()
    for (const o of loadOutcomes) {
      const w = Math.floor(o.sentAtMs / 5_000)
      windows.set(w, (windows.get(w) ?? 0) + 1)
    }
    const fullWindows = [...windows].filter(([w]) => (w + 1) * 5_000 <= loadMs).map(([, n]) => n / 5)

    const stoppedBy: Record<string, number> = {}
    for (const o of [...rejected, ...failed]) {
      const key = `${o.kind} at ${o.why}`
      stoppedBy[key] = (stoppedBy[key] ?? 0) + 1
    }

    const circuits: Array<CircuitReport> = CIRCUITS.map((circuit) => {
      const lines = (message: string) =>
        transitionLines.filter((t) => t.circuit === circuit && t.message === message).length
      const labels = { circuit }
      return {
        circuit,
        trips: sumOf(metrics, "circuit_breaker_trips_total", labels),
        openLines: lines("circuit_breaker_open"),
        halfOpenTransitions: sumOf(metrics, "circuit_breaker_transitions_total", { circuit, to: "half_open" }),
        halfOpenLines: lines("circuit_breaker_half_open"),
        closedTransitions: sumOf(metrics, "circuit_breaker_transitions_total", { circuit, to: "closed" }),
        resetLines: lines("circuit_breaker_reset"),
        rejected: sumOf(metrics, "circuit_breaker_calls_total", { circuit, result: "rejected" }),
        failures: sumOf(metrics, "circuit_breaker_failures_total", labels),
        finalState: finalBreakers.find((b) => b.name === circuit)?.state ?? "missing"
      }
    })

    const limit = baseline + Math.max(MEMORY_SLACK_MB * 1024 * 1024, MEMORY_SLACK_RATIO * baseline)
    const faultErrors = records.filter((f) => f.error !== undefined || f.liftDoneAtMs === undefined)

    const invariants: Array<Invariant> = [
      {
        id: "a",
        name: "every accepted ticket is in Kafka and in MongoDB exactly once",
        ok: lostIds.length === 0 && duplicatedIds.length === 0 && mongo.badIds === 0 && strangers === 0,
        detail: `${accepted.length} accepted; lost ${lostIds.length}${
          lostIds.length > 0 ? ` (${lostIds.slice(0, 5).join(", ")})` : ""
        }; duplicated ${duplicatedIds.length}${
          duplicatedIds.length > 0 ? ` (${duplicatedIds.slice(0, 5).join(", ")})` : ""
        }; Kafka holds ${kafkaCounts.size} keys, MongoDB ${mongo.counts.size} tickets (${mongo.badIds} with a wrong _id, ${strangers} not sent by this run)`
      },
      {
        id: "b",
        name: "every plan not accepted was answered 502/503 with a typed step report",
        ok: violations.length === 0 && unanswered === 0,
        detail: `${rejected.length} rejected (503), ${failed.length} failed (502), ${violations.length} violations${
          violations.length > 0 ? `: ${violations.slice(0, 3).map((v) => `${v.id} ${v.violation}`).join(" | ")}` : ""
        }${unanswered > 0 ? `, ${unanswered} never settled` : ""}`
      },
      {
        id: "c",
        name: "no call outlived its timeout",
        ok: maxLatency <= bound.ms,
        detail: `slowest ${Math.round(maxLatency)} ms${
          slowest === undefined
            ? ""
            : ` (${slowest.id}, ${slowest.kind}${slowest.why === undefined ? "" : ` at ${slowest.why}`})`
        }; bound ${bound.formula}`
      },
      {
        id: "d",
        name: "no unhandled rejection, uncaught exception or logged defect",
        ok: unhandled.length === 0 && uncaught.length === 0 && logs.defects.length === 0,
        detail: `unhandled rejections ${unhandled.length}${
          unhandled.length > 0 ? ` (${unhandled.slice(0, 3).join(" | ")})` : ""
        }, uncaught exceptions ${uncaught.length}${
          uncaught.length > 0 ? ` (${uncaught.slice(0, 3).join(" | ")})` : ""
        }, log lines with a defect ${logs.defects.length}${
          logs.defects.length > 0 ? ` (${logs.defects[0]})` : ""
        } (of ${logs.lines} lines, ${logs.errorLines} at ERROR/FATAL)`
      },
      {
        id: "e",
        name: "every breaker is CLOSED after the faults end",
        ok: closed && finalHealth.status === 200 && circuits.every((c) => c.finalState === "closed"),
        detail: `${
          circuits.map((c) => `${c.circuit} ${c.finalState}`).join(", ")
        }; /health ${finalHealth.status}; every breaker CLOSED ${
          allClosedAtMs === undefined ? "never" : `from ${seconds(allClosedAtMs)} on`
        } (last fault lifted at ${seconds(faultsEndMs)})`
      },
      {
        id: "f",
        name: "metrics agree with the logged transitions",
        ok: circuits.every((c) =>
          c.trips === c.openLines && c.halfOpenTransitions === c.halfOpenLines && c.closedTransitions === c.resetLines
        ),
        detail: circuits.map((c) =>
          `${c.circuit}: trips_total ${c.trips} / open lines ${c.openLines}, transitions{to=half_open} ${c.halfOpenTransitions} / half_open lines ${c.halfOpenLines}, transitions{to=closed} ${c.closedTransitions} / reset lines ${c.resetLines}`
        ).join("; ")
      },
      {
        id: "g",
        name: "memory returns to its baseline",
        ok: finalHeap <= limit,
        detail: `heap after gc: baseline ${mb(baseline)} MB, end ${mb(finalHeap)} MB, limit ${
          mb(limit)
        } MB (baseline + max(${MEMORY_SLACK_MB} MB, ${MEMORY_SLACK_RATIO * 100}%))`
      },
      {
        id: "h",
        name: "two fail-fast breakers were out together",
        ok: maxNotClosedFailFast >= 2,
        detail:
          `at most ${maxNotClosedFailFast} fail-fast breakers not CLOSED at once (${maxOpenFailFast} OPEN at once; ${maxNotClosed} counting Redis), first at ${
            seconds(firstOverlapAt)
          }: ${overlapCircuits.join(", ")}; ~${seconds(overlapMs)} with two or more`
      },
      {
        id: "i",
        name: "every fault was injected and lifted",
        ok: faultsDone && faultErrors.length === 0,
        detail: faultErrors.length === 0
          ? `${records.length} faults`
          : faultErrors.map((f) => `${f.server} ${f.inject}: ${f.error ?? "lift not done"}`).join("; ")
      }
    ]

    const totalSeconds = loadMs / 1000
    const report: Omit<ChaosReport, "markdown"> = {
      ok: invariants.every((i) => i.ok),
      seed,
      startedAt: startedAt.toISOString(),
      durationMs,
      rate,
      loadMs,
      settingsYaml: SETTINGS_YAML,
      latencyBoundMs: bound.ms,
      latencyBoundFormula: bound.formula,
      requests: {
        sent: sequence,
        accepted: accepted.length,
        rejected: rejected.length,
        failed: failed.length,
        violations: violations.length,
        notSent
      },
      perSecond: {
        total: loadOutcomes.length / totalSeconds,
        accepted: loadOutcomes.filter((o) => o.kind === "accepted").length / totalSeconds,
        minWindow: fullWindows.length === 0 ? 0 : Math.min(...fullWindows)
      },
      latency: {
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
        max: maxLatency,
        rejectedP50: quantile(rejectedLatencies, 0.5),
        rejectedP99: quantile(rejectedLatencies, 0.99),
        rejectedCacheAnsweredP50: quantile(rejectedFast, 0.5),
        rejectedCacheAnsweredP99: quantile(rejectedFast, 0.99),
        rejectedCacheAnswered: rejectedFast.length
      },
      stoppedBy,
      faults: records,
      circuits,
      overlap: {
        maxNotClosed,
        maxNotClosedFailFast,
        maxOpenFailFast,
        firstAtMs: firstOverlapAt,
        circuits: overlapCircuits,
        msWithTwoOrMoreFailFast: overlapMs
      },
      allClosedAtMs,
      tickets: {
        lost: lostIds.length,
        lostIds,
        duplicated: duplicatedIds.length,
        inKafka: kafkaCounts.size,
        inMongo: mongo.counts.size,
        orphansInMongo,
        orphansInKafka
      },
      memory: { baselineMB: mb(baseline), finalMB: mb(finalHeap), limitMB: mb(limit) },
      logs: { lines: logs.lines, errorLines: logs.errorLines, defects: logs.defects.length },
      invariants
    }
    const markdown = toMarkdown(report, {
      command: options.command ?? "npm run chaos",
      loadAtStart,
      healthErrors,
      errorSamples: logs.errorSamples,
      maxInFlight
    })
    const full: ChaosReport = { ...report, markdown }
    log(summary(full))
    if (options.writeReport !== undefined && options.writeReport !== false) {
      const file = typeof options.writeReport === "string"
        ? options.writeReport
        : path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docs/reliability.md")
      // Sections written by hand after the run's report (from "## Bad input and abuse" on) are kept.
      const previous = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
      const kept = previous.indexOf("\n## Bad input and abuse")
      fs.writeFileSync(file, kept === -1 ? markdown : `${markdown.trimEnd()}\n${previous.slice(kept)}`)
      log(`chaos: wrote ${file}`)
    }
    return full
  } finally {
    running.load = false
    running.sampler = false
    clearTimeout(running.loadTimer)
    for (const timer of timers) clearTimeout(timer)
    clearInterval(cuts.timer)
    if (scope !== undefined) {
      await within(Effect.runPromise(Scope.close(scope, Exit.void)), 30_000, "service shutdown").catch(() => undefined)
    }
    for (const proxy of [rig.redisProxy, rig.kafkaProxy, rig.temporalProxy, rig.mongodbProxy]) {
      await proxy?.close().catch(() => undefined)
    }
    await Promise.allSettled([rig.redis, rig.kafka, rig.temporal, rig.mongodb].map((server) => server?.stop()))
    process.off("unhandledRejection", onUnhandled)
    process.off("uncaughtException", onUncaught)
  }
}

// -----------------------------------------------------------------------------
// output
// -----------------------------------------------------------------------------

const round = (n: number, digits = 1) => (Math.round(n * 10 ** digits) / 10 ** digits).toFixed(digits)

/** The lines printed at the end of a run. */
export const summary = (report: ChaosReport): string => {
  const lines = [
    "",
    `chaos: ${report.ok ? "PASS" : "FAIL"} (seed ${report.seed})`,
    `  requests/s held: ${round(report.perSecond.total)} total, ${
      round(report.perSecond.accepted)
    } accepted (target ${report.rate}; slowest 5 s window ${round(report.perSecond.minWindow)}/s)`,
    `  plans: ${report.requests.sent} sent, ${report.requests.accepted} accepted, ${report.requests.rejected} rejected fast (503), ${report.requests.failed} failed (502), ${report.requests.violations} violations, ${report.requests.notSent} not sent (in-flight cap)`,
    `  faults injected: ${report.faults.length} (${report.faults.map((f) => `${f.server} ${f.inject}`).join("; ")})`,
    `  breaker trips: ${report.circuits.map((c) => `${c.circuit} ${c.trips}`).join(", ")}`,
    `  calls rejected fast by the breakers: ${report.circuits.map((c) => `${c.circuit} ${c.rejected}`).join(", ")}`,
    `  tickets lost: ${report.tickets.lost}`,
    `  latency p50 ${Math.round(report.latency.p50)} ms, p99 ${Math.round(report.latency.p99)} ms, max ${
      Math.round(report.latency.max)
    } ms (bound ${report.latencyBoundMs} ms); 503 p50 ${Math.round(report.latency.rejectedP50)} ms, p99 ${
      Math.round(report.latency.rejectedP99)
    } ms (${Math.round(report.latency.rejectedCacheAnsweredP99)} ms p99 when Redis answered)`,
    ...report.invariants.map((i) => `  [${i.ok ? "pass" : "FAIL"}] (${i.id}) ${i.name}: ${i.detail}`)
  ]
  return lines.join("\n")
}

const toMarkdown = (
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
  }`
  const faultRows = report.faults.map((f) =>
    `| ${f.server} | ${f.inject} | ${seconds(f.plannedFromMs)} | ${seconds(f.injectedAtMs)} | ${f.lift} | ${
      seconds(f.liftedAtMs)
    } | ${seconds(f.liftDoneAtMs)} |`
  )
  const circuitRows = report.circuits.map((c) =>
    `| ${c.circuit} | ${c.trips} | ${c.halfOpenTransitions} | ${c.closedTransitions} | ${c.failures} | ${c.rejected} | ${c.finalState} |`
  )
  const stopped = Object.entries(report.stoppedBy).toSorted((a, b) => b[1] - a[1]).map(([k, n]) => `| ${k} | ${n} |`)
  return `# Reliability: chaos under load

\`npm run chaos\` drives the Orchestrator Dynamic service (booted from its layer graph, \`App.make\`, on
127.0.0.1) at a steady rate against private real servers (Redis, Kafka, the Temporal test server, FerretDB
for MongoDB, each behind a fault proxy), while a fault schedule crashes, hangs, stalls, cuts and slows
each of them in turn, overlapping. Then it checks, from the servers themselves, that nothing was lost or
duplicated and that every breaker came back. The harness is \`chaos/harness.ts\` (implemented in
\`test/chaos/harness.ts\`); a 40-second version runs in \`npm test\` (\`test/chaos/chaos.test.ts\`) and
does not write this file. See docs/testing.md, "Chaos".

This file is written by the run it describes.

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
    Math.round((1 - 0.68) * 100)
  }% without faults), longer if needed until every breaker is CLOSED: ${round(report.loadMs / 1000)} s in all |
| flow of one plan | Redis GET + SETEX (fail-open) → Temporal start workflow → MongoDB insert \`orchestrator.tickets\` → Kafka send \`execution-tickets\` (fail-fast) |

Breaker settings (the seed's format, short periods so every outage shows whole cycles):

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
| plans | ${report.requests.sent} sent: ${report.requests.accepted} accepted (202), ${report.requests.rejected} rejected fast (503), ${report.requests.failed} failed with a typed error (502), ${report.requests.violations} anything else |
| not sent (in-flight cap reached) | ${report.requests.notSent} |
| faults injected | ${report.faults.length} (on all four servers; see the schedule) |
| breaker trips | ${report.circuits.map((c) => `${c.circuit} ${c.trips}`).join(", ")} |
| calls rejected fast | ${report.requests.rejected} plans answered 503; the breakers rejected ${
    report.circuits.reduce((s, c) => s + c.rejected, 0)
  } calls (${
    report.circuits.map((c) => `${c.circuit} ${c.rejected}`).join(", ")
  }; Redis rejections are fail-open cache misses) |
| 503 latency | p50 ${Math.round(report.latency.rejectedP50)} ms, p99 ${
    Math.round(report.latency.rejectedP99)
  } ms; the ${report.latency.rejectedCacheAnswered} whose Redis steps were answered (the refusal alone): p50 ${
    Math.round(report.latency.rejectedCacheAnsweredP50)
  } ms, p99 ${Math.round(report.latency.rejectedCacheAnsweredP99)} ms (the others waited for a stalled Redis first) |
| latency, every plan | p50 ${Math.round(report.latency.p50)} ms, p99 ${Math.round(report.latency.p99)} ms, max ${
    Math.round(report.latency.max)
  } ms (bound ${report.latencyBoundMs} ms) |
| **tickets lost** | **${report.tickets.lost}** (accepted but missing in Kafka or MongoDB); duplicated ${report.tickets.duplicated} |
| tickets read back | Kafka ${report.tickets.inKafka} keys, MongoDB ${report.tickets.inMongo} documents; of those, for plans reported as failed: Kafka ${report.tickets.orphansInKafka}, MongoDB ${report.tickets.orphansInMongo} |
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

A ticket "for a plan reported as failed" is allowed: a plan whose Kafka send timed out was already stored
in MongoDB (and the send itself may still land), and the caller was told it failed. What must never happen
is an accepted plan missing, or present twice.

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
- (b) 202 needs every step ok; 503 needs a step \`rejected\` naming its circuit; 502 needs a step
  \`failed\` with an error and a \`reason\`. A 500, a reset connection or any other body is a violation.
- (c) ${report.latencyBoundFormula}, measured by the caller (HTTP round trip).
- (d) \`unhandledRejection\` and \`uncaughtException\` listeners during the run; the service logs through
  a logger that formats each line as its JSON output and flags any cause holding a defect (\`Die\`).
- (e) \`/health\` at the end, after the quiet tail.
- (f) \`circuit_breaker_trips_total\` = \`circuit_breaker_open\` lines, \`circuit_breaker_transitions_total{to="half_open"}\`
  = \`circuit_breaker_half_open\` lines, \`{to="closed"}\` = \`circuit_breaker_reset\` lines, per circuit.
- (g) \`process.memoryUsage().heapUsed\` after \`gc()\`, at 8% of the run (before the first fault) and after the
  load stopped (the service still up).
- (h) \`/health\` sampled every ${HEALTH_EVERY_MS} ms.
- (i) each injection and lift ran without error (a restart counts once the server answers).

## What the runs found

Two bugs, fixed where they were (each with a test):

- **A timed-out call was reported as a breaker rejection.** The breaker's \`callTimeout\` fails a call
  with \`CircuitBreakerError { reason: "Timeout" }\`; the Orchestrator mapped every \`CircuitBreakerError\`
  to a \`rejected\` step, so a plan whose Temporal or Kafka call ran 2.5 s and timed out came back as
  503 "rejected" with \`Retry-After: 1\` (the first run's 503 p99 was 2.5 s). A timed-out call ran and may
  have had its effect: it is now a \`failed\` step with reason \`Timeout\` (502), and a 503 again means the
  breaker refused without running anything (\`examples/orchestrator-dynamic/src/Orchestrator.ts\`; test in
  \`test/examples/orchestrator.test.ts\`).
- **The fault proxy left the client connected when the server reset the connection.** A broker killed
  with unread input resets its connections (no FIN); the proxy only closed the client after forwarding a
  half-close, which never came, so kafkajs kept one connection to nothing: every send and every breaker
  probe timed out at the call timeout, and the Kafka breaker never closed again after the broker was back
  (the first full run accepted nothing after the kill). The proxy now resets the client when the server
  resets (\`test/services/proxy.ts\`; test in \`test/services/rig.test.ts\`). Without the proxy a client sees
  the reset directly, so the library was not at fault; but kafkajs does not drop a connection on a request
  timeout, so a connection that dies silently (no reset ever) keeps failing until TCP gives up. Temporal and
  MongoDB close their connection when their breaker opens; the Kafka producer does not.
${extra.healthErrors > 0 ? `\n/health did not answer ${extra.healthErrors} samples.\n` : ""}${
    extra.errorSamples.length > 0
      ? `\nFirst ERROR lines of the service's log (for the record):\n\n\`\`\`\n${
        extra.errorSamples.join("\n")
      }\n\`\`\`\n`
      : ""
  }`
}
