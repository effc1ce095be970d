/**
 * The load: POST /plans at a fixed rate (open loop, a bounded number in flight), each answer
 * classified as the caller sees it; and the health sampler, which reads `/health` every
 * `HEALTH_EVERY_MS` for the breakers' states and the outbox's backlog.
 */
import { sleep, until } from "../rig/time.ts"
import { CIRCUITS, FAIL_FAST, HEALTH_EVERY_MS } from "./model.ts"
import type { Service } from "./service.ts"

export type Kind = "accepted" | "rejected" | "failed" | "violation"

export interface Outcome {
  readonly id: string
  readonly sentAtMs: number
  readonly status: number
  readonly latencyMs: number
  readonly kind: Kind
  /** For rejected/failed: `step:circuit` or `step:reason`. */
  readonly why: string | undefined
  /** The failed step named a circuit (e.g. `kafka_producer`), if any. */
  readonly circuit: string | undefined
  readonly violation: string | undefined
  /** Accepted with the ticket queued for the outbox relay. */
  readonly queued: boolean
  /** For plans not accepted: each step's status and detail or reason, e.g. `workflow=skipped(terminated: ...)`. */
  readonly steps: string
  /**
   * A plan the client sent more than once (`LoadOptions.retryShare`): how, and every attempt's answer
   * (`aborted`: the client gave up on it, so its outcome is unknown to the client). The plan's own fields
   * combine them: accepted when any attempt was, otherwise the last answered attempt's.
   */
  readonly retried?: {
    readonly how: "concurrent" | "after-timeout"
    readonly attempts: ReadonlyArray<{ readonly status: number; readonly kind: Kind | "aborted" }>
  } | undefined
}

type Step = {
  readonly status?: unknown
  readonly reason?: unknown
  readonly error?: unknown
  readonly circuit?: unknown
}

type Verdict = Pick<Outcome, "kind" | "why" | "circuit" | "violation" | "queued" | "steps">

/** What the caller was told: 202 accepted (ticket queued or published), 503 refused by a breaker, 502 failed with a typed reason; anything else is a violation. */
export const classify = (status: number, text: string): Verdict => {
  let body: { accepted?: unknown; steps?: Record<string, Step> } | undefined
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  const steps = body?.steps !== undefined && typeof body.steps === "object" && body.steps !== null
    ? Object.entries(body.steps)
    : []
  const stepsText = steps.map(([name, s]) =>
    `${name}=${String(s.status)}(${String(s.reason ?? (s as { detail?: unknown }).detail ?? s.circuit ?? "")})`
  ).join(" ")
  const none = { why: undefined, circuit: undefined, violation: undefined, queued: false, steps: stepsText }
  const bad = (violation: string): Verdict => ({ ...none, kind: "violation", violation })
  if (status === 202) {
    const statusOf = (name: string) => body?.steps?.[name]?.status
    const ok = (name: string) => statusOf(name) === "ok" || statusOf(name) === "skipped"
    const queued = statusOf("ticket") === "queued"
    return body?.accepted === true && ok("workflow") && ok("persistence") && (queued || ok("ticket"))
      ? { ...none, kind: "accepted", queued }
      : bad(`202 without workflow and persistence ok and the ticket queued: ${text.slice(0, 300)}`)
  }
  if (status === 503) {
    const rejected = steps.find(([, s]) => s.status === "rejected" && typeof s.circuit === "string")
    return rejected === undefined
      ? bad(`503 without a rejected step naming its circuit: ${text.slice(0, 300)}`)
      : {
        ...none,
        kind: "rejected",
        why: `${rejected[0]}:${String(rejected[1].circuit)}`,
        circuit: String(rejected[1].circuit)
      }
  }
  if (status === 502) {
    const failed = steps.find(([, s]) =>
      s.status === "failed" && typeof s.reason === "string" && s.reason !== "" && typeof s.error === "string"
    )
    return failed === undefined
      ? bad(`502 without a failed step with a typed reason: ${text.slice(0, 300)}`)
      : {
        ...none,
        kind: "failed",
        why: `${failed[0]}:${String(failed[1].reason)}`,
        circuit: typeof failed[1].circuit === "string" ? failed[1].circuit : undefined
      }
  }
  return bad(`HTTP ${status}: ${text.slice(0, 300)}`)
}

const STEP_NAMES = ["plan", "validate", "schedule", "execute", "report", "archive"]

export const countOf = (outcomes: ReadonlyArray<Outcome>, kind: Kind): number =>
  outcomes.reduce((n, o) => (o.kind === kind ? n + 1 : n), 0)

export interface Load {
  readonly outcomes: Array<Outcome>
  /** Every plan id sent. */
  readonly sent: Set<string>
  readonly counts: () => { readonly sent: number; readonly inFlight: number; readonly notSent: number }
  /** Sends one plan now (warm-up); resolves with its answer. */
  readonly one: () => Promise<void>
  /** Sends a plan already sent again, same id and body (what a client does when it got no answer); not recorded. */
  readonly retry: (id: string) => Promise<Outcome>
  /** Starts the fixed-rate loop; times in outcomes count from here. */
  readonly start: (rate: number) => void
  /** Stops the loop (the plans in flight go on). */
  readonly stop: () => void
  /** Resolves once every plan sent has its answer, or after `ms`. */
  readonly settle: (ms: number) => Promise<void>
  readonly startedAt: () => number
}

export interface LoadOptions {
  readonly service: Service
  readonly random: () => number
  readonly idPrefix: string
  readonly maxInFlight: number
  /** The caller gives up on an answer after this long (a violation). */
  readonly clientTimeoutMs: number
  /**
   * The share of plans the client sends twice with the same id and body (default 0): half of them
   * concurrently (the second 0-150 ms after the first), half after giving up on the first attempt (the
   * client aborts it after 50-400 ms, as a client with a short timeout does, and sends it again).
   */
  readonly retryShare?: number | undefined
}

/** One plan's attempts combined: accepted if any attempt was; otherwise the last attempt that was answered. */
export const combineAttempts = (
  how: "concurrent" | "after-timeout",
  attempts: ReadonlyArray<Outcome & { readonly aborted?: boolean }>
): Outcome => {
  const answered = attempts.filter((a) => a.aborted !== true)
  const chosen = answered.find((a) => a.kind === "accepted") ?? answered.at(-1) ?? attempts.at(-1)!
  return {
    ...chosen,
    sentAtMs: Math.min(...attempts.map((a) => a.sentAtMs)),
    latencyMs: Math.max(...attempts.map((a) => a.sentAtMs + a.latencyMs)) -
      Math.min(...attempts.map((a) => a.sentAtMs)),
    retried: {
      how,
      attempts: attempts.map((a) => ({ status: a.status, kind: a.aborted === true ? "aborted" : a.kind }))
    }
  }
}

export const makeLoad = (options: LoadOptions): Load => {
  const outcomes: Array<Outcome> = []
  const sent = new Set<string>()
  const inFlightDone = new Set<Promise<void>>()
  let sequence = 0
  let inFlight = 0
  let notSent = 0
  let t0 = performance.now()
  let running = false
  let timer: NodeJS.Timeout | undefined

  const bodies = new Map<string, string>()

  /**
   * One POST of `body`; a request that got no HTTP answer (refused, reset, timed out) is a `violation` with
   * status 0, unless the client gave up on purpose (`giveUpMs`): then it is marked `aborted`.
   */
  const post = async (
    id: string,
    body: string,
    sentAtMs: number,
    giveUpMs?: number
  ): Promise<Outcome & { readonly aborted?: boolean }> => {
    const started = performance.now()
    const giveUp = giveUpMs === undefined ? undefined : AbortSignal.timeout(giveUpMs)
    try {
      const response = await fetch(`${options.service.base}/plans`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: giveUp === undefined
          ? AbortSignal.timeout(options.clientTimeoutMs)
          : AbortSignal.any([giveUp, AbortSignal.timeout(options.clientTimeoutMs)])
      })
      const text = await response.text()
      return {
        id,
        sentAtMs,
        status: response.status,
        latencyMs: performance.now() - started,
        ...classify(response.status, text)
      }
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : ""
      const aborted = giveUp?.aborted === true
      return {
        ...(aborted ? { aborted } : {}),
        id,
        sentAtMs,
        status: 0,
        latencyMs: performance.now() - started,
        kind: "violation",
        why: undefined,
        circuit: undefined,
        queued: false,
        steps: "",
        violation: `no HTTP answer: ${error instanceof Error ? error.message : String(error)}${cause}`
      }
    }
  }

  const at = () => performance.now() - t0

  const submit = (): Promise<void> => {
    const id = `${options.idPrefix}-${String(++sequence).padStart(6, "0")}`
    const steps = STEP_NAMES.slice(0, 1 + Math.floor(options.random() * STEP_NAMES.length))
    const body = JSON.stringify({ id, steps })
    sent.add(id)
    bodies.set(id, body)
    inFlight++
    const retrying = options.retryShare !== undefined && options.random() < options.retryShare
    const how = options.random() < 0.5 ? "concurrent" : "after-timeout"
    const attempts = !retrying
      ? post(id, body, at()).then((outcome) => outcome)
      : how === "concurrent"
      ? Promise.all([
        post(id, body, at()),
        sleep(Math.floor(options.random() * 150)).then(() => post(id, body, at()))
      ]).then((both) => combineAttempts(how, both))
      : post(id, body, at(), 50 + Math.floor(options.random() * 350)).then(async (first) =>
        // Answered in time: the client has no reason to send it again.
        first.aborted === true ? combineAttempts(how, [first, await post(id, body, at())]) : first
      )
    const request = attempts.then((outcome) => {
      outcomes.push(outcome)
    }).finally(() => {
      inFlight--
      inFlightDone.delete(request)
    })
    inFlightDone.add(request)
    return request
  }

  const start = (rate: number) => {
    const interval = 1000 / rate
    let ticks = 0
    t0 = performance.now()
    running = true
    const loop = (): void => {
      if (!running) return
      const now = performance.now() - t0
      // Open loop: one plan per tick; a late timer catches up (at most 20 at once), never queues.
      let burst = 0
      while (ticks * interval <= now && burst < 20) {
        ticks++
        burst++
        if (inFlight >= options.maxInFlight) notSent++
        else void submit()
      }
      if (ticks * interval <= now) ticks = Math.ceil(now / interval) // too far behind: drop the backlog
      timer = setTimeout(loop, Math.max(0, ticks * interval - (performance.now() - t0)))
    }
    loop()
  }

  return {
    outcomes,
    sent,
    counts: () => ({ sent: sequence, inFlight, notSent }),
    one: submit,
    retry: (id) => {
      const body = bodies.get(id)
      if (body === undefined) throw new Error(`chaos: retry of a plan never sent: ${id}`)
      return post(id, body, performance.now() - t0)
    },
    start,
    stop: () => {
      running = false
      clearTimeout(timer)
    },
    settle: (ms) => until(() => inFlight === 0, ms, 100).then(() => undefined),
    startedAt: () => t0
  }
}

/** Waits until /health answers 200 and three plans were accepted; throws otherwise. */
export const warmUp = async (service: Service, load: Load): Promise<void> => {
  const healthy = await until(
    async () => (await service.get("/health").catch(() => ({ status: 0 }))).status === 200,
    60_000
  )
  if (!healthy) throw new Error("chaos: /health never answered 200 after boot")
  const warm = await until(
    async () => {
      await load.one()
      return countOf(load.outcomes, "accepted") >= 3
    },
    90_000,
    200
  )
  if (!warm) throw new Error(`chaos: no plan accepted during warm-up: ${JSON.stringify(load.outcomes.slice(-3))}`)
}

interface HealthBody {
  readonly breakers: ReadonlyArray<{ name: string; state: string }>
  readonly outbox?: { readonly pending?: unknown; readonly oldestPendingSeconds?: unknown }
}

/** What the sampler saw; read at any time. */
export interface Sampled {
  latestStates: Record<string, string>
  /** The outbox's pending count in the last answer (undefined before one). */
  latestPending: number | undefined
  maxPending: number
  maxPendingAtMs: number | undefined
  /** Every backlog sample: time (ms from the load's start), pending, age of the oldest pending ticket (ms). */
  readonly backlog: Array<{ readonly at: number; readonly pending: number; readonly oldestMs: number }>
  maxNotClosed: number
  maxNotClosedFailFast: number
  maxOpenFailFast: number
  firstOverlapAt: number | undefined
  overlapCircuits: Array<string>
  overlapMs: number
  healthErrors: number
  /** Start of the current stretch of samples with every breaker CLOSED. */
  allClosedSince: number | undefined
}

export interface Sampler {
  readonly sampled: Sampled
  readonly everyClosed: () => boolean
  readonly stop: () => Promise<void>
}

/** Reads /health every HEALTH_EVERY_MS until stopped; `now` gives the time from the load's start. */
export const startSampler = (service: Service, now: () => number): Sampler => {
  const s: Sampled = {
    latestStates: {},
    latestPending: undefined,
    maxPending: 0,
    maxPendingAtMs: undefined,
    backlog: [],
    maxNotClosed: 0,
    maxNotClosedFailFast: 0,
    maxOpenFailFast: 0,
    firstOverlapAt: undefined,
    overlapCircuits: [],
    overlapMs: 0,
    healthErrors: 0,
    allClosedSince: undefined
  }
  const control = { running: true }
  let lastSampleAt: number | undefined
  let lastSampleOverlap = false
  const sample = (at: number, health: HealthBody) => {
    const states: Record<string, string> = {}
    for (const b of health.breakers) states[b.name] = b.state
    s.latestStates = states
    const pending = health.outbox?.pending
    if (typeof pending === "number") {
      s.latestPending = pending
      if (pending > s.maxPending) {
        s.maxPending = pending
        s.maxPendingAtMs = at
      }
      const oldest = health.outbox?.oldestPendingSeconds
      s.backlog.push({ at, pending, oldestMs: typeof oldest === "number" ? oldest * 1000 : 0 })
    }
    if (!CIRCUITS.every((c) => states[c] === "closed")) s.allClosedSince = undefined
    else s.allClosedSince ??= at
    const notClosed = health.breakers.filter((b) => b.state !== "closed")
    const notClosedFailFast = notClosed.filter((b) => FAIL_FAST.has(b.name))
    const openFailFast = notClosedFailFast.filter((b) => b.state === "open")
    s.maxNotClosed = Math.max(s.maxNotClosed, notClosed.length)
    s.maxOpenFailFast = Math.max(s.maxOpenFailFast, openFailFast.length)
    if (notClosedFailFast.length > s.maxNotClosedFailFast) {
      s.maxNotClosedFailFast = notClosedFailFast.length
      if (s.maxNotClosedFailFast >= 2) {
        s.firstOverlapAt ??= at
        s.overlapCircuits = notClosedFailFast.map((b) => `${b.name} ${b.state}`)
      }
    }
    const overlap = notClosedFailFast.length >= 2
    if (lastSampleAt !== undefined && overlap && lastSampleOverlap) s.overlapMs += at - lastSampleAt
    lastSampleAt = at
    lastSampleOverlap = overlap
  }
  const loop = (async () => {
    while (control.running) {
      const at = now()
      try {
        sample(at, JSON.parse((await service.get("/health")).text) as HealthBody)
      } catch {
        s.healthErrors++
      }
      await sleep(HEALTH_EVERY_MS)
    }
  })()
  return {
    sampled: s,
    everyClosed: () =>
      CIRCUITS.every((c) => s.latestStates[c] === "closed") && Object.keys(s.latestStates).length === CIRCUITS.length,
    stop: async () => {
      control.running = false
      await loop
    }
  }
}
