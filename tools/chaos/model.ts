/**
 * What a chaos run is given and what it reports, the settings it runs with, and the
 * small pure helpers every phase shares (no I/O here).
 */
import type * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import * as Duration from "effect/Duration"
import type { ServerName } from "../rig/servers.ts"

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
  /** The no-fault rate measurement the default rate came from, shown in the report. */
  readonly rateFinding?: RateFinding | undefined
  /** The share of plans the client sends twice with the same id (default 0.1; see `LoadOptions.retryShare`). */
  readonly retryShare?: number | undefined
  /** The outbox relay's delivery (`Outbox.Options.delivery`). Default at-least-once. */
  readonly delivery?: "at-least-once" | "exactly-once" | undefined
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

/** One step of the no-fault rate search. */
export interface RateStep {
  readonly rate: number
  readonly answeredPerSecond: number
  readonly accepted: number
  readonly sent: number
  readonly notSent: number
  readonly p99Ms: number
  readonly held: boolean
}

export interface RateFinding {
  readonly at: string
  /** The highest rate held with every plan accepted and p99 under the limit. */
  readonly sustained: number
  readonly p99LimitMs: number
  readonly stepMs: number
  readonly steps: ReadonlyArray<RateStep>
  readonly loadAverage: ReadonlyArray<number>
}

/** How the outbox's backlog behaved: sampled from `/health`, drained at the end. */
export interface BacklogReport {
  readonly maxPending: number
  readonly maxPendingAtMs: number | undefined
  /**
   * Per Kafka lift: ms from the moment Kafka and MongoDB were both back (`liftDoneAtMs`) to the first
   * sample where every ticket pending then was published (undefined: never).
   */
  readonly drains: ReadonlyArray<{ readonly liftDoneAtMs: number; readonly drainedAfterMs: number | undefined }>
  /** The wait before shutdown: pending at its start and how long until 0 (undefined: not within the bound). */
  readonly finalPending: number
  readonly finalDrainMs: number | undefined
  readonly boundMs: number
  /** Documents still marked pending in MongoDB after the run, read from the server. */
  readonly pendingInMongo: number
}

export interface ChaosReport {
  readonly ok: boolean
  readonly delivery: "at-least-once" | "exactly-once"
  readonly seed: number
  readonly startedAt: string
  readonly durationMs: number
  readonly rate: number
  readonly rateFinding: RateFinding | undefined
  /** Load start to load stop (the quiet tail until every breaker closed included), ms. */
  readonly loadMs: number
  readonly settingsYaml: string
  readonly latencyBoundMs: number
  readonly latencyBoundFormula: string
  readonly requests: {
    readonly sent: number
    readonly accepted: number
    /** Accepted with the ticket `queued` for the relay (every accepted plan, under the outbox). */
    readonly queued: number
    readonly rejected: number
    readonly failed: number
    readonly violations: number
    /** Ticks not sent because `maxInFlight` requests were still running. */
    readonly notSent: number
    /** Plans the client sent twice (`ChaosOptions.retryShare`), and how many of those were accepted. */
    readonly retried: number
    readonly retriedAccepted: number
  }
  readonly perSecond: { readonly total: number; readonly accepted: number; readonly minWindow: number }
  readonly latency: {
    readonly p50: number
    readonly p99: number
    readonly max: number
    readonly rejectedP50: number
    readonly rejectedP99: number
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
    /** Accepted plans whose ticket is in MongoDB more than once (must be 0). */
    readonly duplicatedInMongo: number
    /**
     * Accepted plans whose key a `read_committed` reader sees in Kafka more than once (at-least-once:
     * reported, not failed; exactly-once: must be 0).
     */
    readonly duplicatedInKafka: number
    readonly extraKafkaMessages: number
    /** The same for a `read_uncommitted` reader (it also sees what aborted transactions wrote). */
    readonly readUncommitted: { readonly duplicatedKeys: number; readonly extraMessages: number }
    readonly inKafka: number
    readonly inMongo: number
  }
  /** What plans that were not accepted left behind (invariant c). */
  readonly leftovers: {
    readonly checked: number
    readonly ticketsInMongo: number
    readonly messagesInKafka: number
    readonly runningWorkflows: number
    readonly terminatedWorkflows: number
    readonly notFoundWorkflows: number
    readonly otherWorkflows: number
    /** Plans refused with nothing written (503, compensation done) that left something: must be 0. */
    readonly leftByClean: number
    /** Plans whose outcome was unknown (502, or a failed compensation) that left something: reported. */
    readonly leftByUnknown: number
    readonly unknown: number
    readonly samples: ReadonlyArray<string>
    readonly unknownSamples: ReadonlyArray<string>
  }
  readonly backlog: BacklogReport
  readonly memory: { readonly baselineMB: number; readonly finalMB: number; readonly limitMB: number }
  readonly logs: { readonly lines: number; readonly errorLines: number; readonly defects: number }
  readonly invariants: ReadonlyArray<Invariant>
  readonly markdown: string
}

/**
 * The Orchestrator Dynamic format with short periods, so every outage shows full open, half-open, closed cycles;
 * Kafka's call timeout is a parameter (the crash scenario raises it: see `CRASH_SETTINGS_YAML`).
 */
export const settingsYaml = (kafkaCallTimeoutSeconds: number): string =>
  `circuitBreaker:
  kafka:    { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: ${kafkaCallTimeoutSeconds} }
  temporal: { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: 2.5 }
  redis:    { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: 1.5 }
  mongodb:  { failMax: 5, recoveryTimeoutSeconds: 1, timeoutSeconds: 2, callTimeoutSeconds: 2.5 }
`

/** The schedule's settings. */
export const SETTINGS_YAML = settingsYaml(2.5)

/** Added to the sum of the call timeouts: event-loop lag and HTTP on a loaded 2-core machine. */
export const LATENCY_MARGIN_MS = 3_000
export const TOPIC = "execution-tickets"
export const DATABASE = "orchestrator"
export const TICKETS = "tickets"
export const CIRCUITS = ["kafka_producer", "temporal_client", "redis_client", "mongodb_client"] as const
export const FAIL_FAST = new Set<string>(["kafka_producer", "temporal_client", "mongodb_client"])
export const HEALTH_EVERY_MS = 250
export const MEMORY_SLACK_MB = 30
export const MEMORY_SLACK_RATIO = 0.5
/** The backlog must be empty this long after Kafka's lift (breaker probe after <= 2 s, then batches). */
export const DRAIN_BOUND_MS = 30_000

/** `promise`, or a rejection naming `what` after `ms`. */
export const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** mulberry32: a small seeded PRNG, so a run's plans and jitter can be repeated. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const millis = (seconds: number): number => Math.round(seconds * 1000)

export const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

export const mb = (bytes: number): number => Math.round((bytes / (1024 * 1024)) * 10) / 10

export const seconds = (ms: number | undefined): string => (ms === undefined ? "–" : `${(ms / 1000).toFixed(1)} s`)

export const round = (n: number, digits = 1) => (Math.round(n * 10 ** digits) / 10 ** digits).toFixed(digits)

/** The longest a call of the dependency waits for a slot of its concurrency limit (0 without one). */
const queued = (s: OrchestratorConfig.Settings[OrchestratorConfig.Dependency]) => {
  const limit = s.adaptiveLimit ?? s.bulkhead
  return limit === undefined ? 0 : Math.round(Duration.toMillis(limit.queueTimeout))
}

/**
 * The longest a plan may take: every call it can make (Redis get and setex, Temporal start, MongoDB insert,
 * and the Temporal terminate of the compensation) at its call timeout, after the longest wait for a slot of
 * its concurrency limit (`queueTimeout`, when it has one), plus a margin. Kafka is the relay's. Redis's
 * hedge runs its attempts side by side, within the same call timeout.
 */
export const latencyBound = (settings: OrchestratorConfig.Settings): { ms: number; formula: string } => {
  const r = Math.round(Duration.toMillis(settings.redis.callTimeout)) + queued(settings.redis)
  const t = Math.round(Duration.toMillis(settings.temporal.callTimeout)) + queued(settings.temporal)
  const m = Math.round(Duration.toMillis(settings.mongodb.callTimeout)) + queued(settings.mongodb)
  const total = 2 * r + 2 * t + m + LATENCY_MARGIN_MS
  return {
    ms: total,
    formula:
      `2 × redis ${r} ms (get, setex) + 2 × temporal ${t} ms (start, terminate) + mongodb ${m} ms (each its call timeout and its longest wait for a slot) + ${LATENCY_MARGIN_MS} ms margin = ${total} ms`
  }
}
