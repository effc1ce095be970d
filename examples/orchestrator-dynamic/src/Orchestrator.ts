/**
 * The Orchestrator Dynamic service: it takes a plan, caches a lookup in Redis
 * (fail-open), starts its Temporal workflow (fail-fast), stores the execution
 * ticket in MongoDB with its "to publish" mark in the same write (fail-fast),
 * and leaves the publication to Kafka to the outbox relay. Each step says what
 * happened, so a caller sees which breaker stopped a plan and when to try again.
 *
 * - A Kafka outage refuses nothing: the ticket is queued (202) and published
 *   when Kafka is back (at least once, keyed by the ticket id).
 * - A plan that cannot be completed leaves nothing: the steps that cannot be
 *   deferred (Temporal, MongoDB) are checked before any side effect (503 at
 *   once when one's breaker is OPEN), and a workflow started for a plan whose
 *   ticket could not be stored is terminated (the compensation).
 * - Retrying a plan with the same id is safe at every step: the workflow id is
 *   the plan id (AlreadyStarted is success), the ticket id is the plan id
 *   (DuplicateKey is success when the stored plan has the same hash, 409
 *   otherwise), the message key is the ticket id.
 * - Nothing accepted is ever undone: each attempt has its own id, stamped on the
 *   ticket it inserts and on the workflow it starts (memo), and its compensation
 *   deletes only its own pending ticket and terminates only a run it started.
 */
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { RedisCache } from "@neural-hive/redis"
import type { CircuitBreaker, CircuitBreakerError } from "@neural-hive/resilience"
import { TemporalClient } from "@neural-hive/temporal"
import { Clock, Context, Data, Duration, Effect, Layer, Option } from "effect"
import { hash, randomUUID } from "node:crypto"

export interface Plan {
  readonly id: string
  readonly steps: ReadonlyArray<string>
}

export interface Ticket {
  readonly ticketId: string
  readonly planId: string
  readonly steps: ReadonlyArray<string>
  readonly createdAt: string
  /** The hash of the plan's canonical body (`hashOf`): a retry with the same id compares it. */
  readonly planHash: string
}

/**
 * SHA-256 of the canonical body `{ id, steps }` (keys in that order, nothing else), as `sha256:<hex>`. One-shot
 * `hash`: half the CPU of a `createHash` object for a body this small, the same digest.
 */
export const hashOf = (plan: Plan): string =>
  `sha256:${hash("sha256", JSON.stringify({ id: plan.id, steps: plan.steps }))}`

/** What happened at one step. */
export type StepReport =
  | { readonly status: "ok"; readonly detail?: string }
  | { readonly status: "queued"; readonly detail: string }
  | { readonly status: "skipped"; readonly detail: string }
  | { readonly status: "rejected"; readonly circuit: string; readonly retryAfterSeconds: number | null }
  /** `error` is the error's class and `reason` its kind, never its message: the details go to the log. */
  | { readonly status: "failed"; readonly error: string; readonly reason: string; readonly circuit?: string }
  /** Another plan (other steps) is stored under this id (409): both hashes, the stored one as proof. */
  | {
    readonly status: "conflict"
    readonly detail: string
    readonly planHash: string
    readonly storedPlanHash: string
  }

export interface PlanReport {
  readonly planId: string
  readonly ticketId: string
  readonly accepted: boolean
  readonly steps: {
    readonly cache: StepReport
    readonly workflow: StepReport
    readonly persistence: StepReport
    readonly ticket: StepReport
  }
}

/** A plan that is not well formed: 400, nothing is called. */
export class InvalidPlan extends Data.TaggedError("InvalidPlan")<{ readonly message: string }> {}

export interface Settings {
  readonly ticketsTopic: string
  readonly taskQueue: string
  readonly ticketsCollection: string
  readonly cacheSeconds: number
}

export const defaultSettings: Settings = {
  ticketsTopic: "execution-tickets",
  taskQueue: "orchestrator-dynamic",
  ticketsCollection: "tickets",
  cacheSeconds: 300
}

const PLAN_ID = /^[A-Za-z0-9_.:-]{1,128}$/

/** Checks an untrusted body; the reason names what was wrong. */
export const decodePlan = (body: unknown): Effect.Effect<Plan, InvalidPlan> => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return Effect.fail(new InvalidPlan({ message: "the body must be a JSON object { id, steps }" }))
  }
  const { id, steps } = body as { readonly id?: unknown; readonly steps?: unknown }
  if (typeof id !== "string" || !PLAN_ID.test(id)) {
    return Effect.fail(new InvalidPlan({ message: "id must be 1-128 characters of letters, digits, _ . : -" }))
  }
  if (
    !Array.isArray(steps) || steps.length === 0 || steps.length > 100 ||
    !steps.every((s) => typeof s === "string" && s.length > 0 && s.length <= 200)
  ) {
    return Effect.fail(new InvalidPlan({ message: "steps must be 1-100 non-empty strings of at most 200 characters" }))
  }
  return Effect.succeed({ id, steps })
}

const rejected = (error: CircuitBreakerError): StepReport => ({
  status: "rejected",
  circuit: error.circuit,
  retryAfterSeconds: Duration.isFinite(error.retryAfter) ? Math.ceil(Duration.toSeconds(error.retryAfter)) : null
})

interface StepError {
  readonly _tag: string
  readonly reason: string
  readonly message: string
  readonly circuit?: string
}

const failed = (error: StepError): StepReport => ({
  status: "failed",
  error: error._tag,
  reason: error.reason,
  ...(error.circuit === undefined ? {} : { circuit: error.circuit })
})

/** A failed step: the caller gets its class and reason; the message (host names, addresses) goes to the log only. */
const logFailed = (step: string, planId: string, error: StepError): Effect.Effect<StepReport> =>
  Effect.as(
    Effect.logWarning("plan_step_failed").pipe(
      Effect.annotateLogs({ plan_id: planId, step, error: error._tag, reason: error.reason, message: error.message })
    ),
    failed(error)
  )

/**
 * The breaker's error means it refused the call (it did not run): `rejected` (503). A call that ran
 * past its timeout is the client's own Timeout error, a dependency failure reported as `failed` (502).
 */
const fromBreaker = (error: CircuitBreakerError): Effect.Effect<StepReport> => Effect.succeed(rejected(error))

/** The start's step, and the run this attempt started (none when it found the workflow already started). */
interface Started {
  readonly step: StepReport
  readonly runId: string | undefined
}

const isOk = (step: StepReport) => step.status === "ok" || step.status === "skipped" || step.status === "queued"

/** A fail-fast breaker that refuses calls now (OPEN, forced open): the plan is refused before any side effect. */
const refusing = (breaker: CircuitBreaker.CircuitBreaker): StepReport | undefined => {
  // The state alone on every plan (no allocation); the full snapshot only when the plan is refused.
  if (breaker.view.state() !== "Open") return undefined
  const snapshot = breaker.view.snapshot()
  return {
    status: "rejected",
    circuit: snapshot.name,
    retryAfterSeconds: Number.isFinite(snapshot.retryAfterMillis) ? Math.ceil(snapshot.retryAfterMillis / 1000) : null
  }
}

/** How a plan ended, as its log line says: `plan_accepted`, `plan_queued`, `plan_refused`, `plan_conflict` or `plan_failed`. */
export type Outcome = "accepted" | "queued" | "refused" | "conflict" | "failed"

/**
 * The outcome of a report, the step that stopped it and why (a bounded class, never a raw message).
 * `queued`: accepted while Kafka's breaker is not closed, so the ticket waits in the outbox.
 */
export const outcomeOf = (report: PlanReport, kafkaWaiting = false): {
  readonly outcome: Outcome
  readonly failedStep: string | null
  readonly reasonClass: string | null
  readonly circuit: string | null
} => {
  if (report.accepted) {
    return { outcome: kafkaWaiting ? "queued" : "accepted", failedStep: null, reasonClass: null, circuit: null }
  }
  for (const [step, result] of Object.entries(report.steps)) {
    if (result.status === "rejected") {
      return { outcome: "refused", failedStep: step, reasonClass: "circuit_open", circuit: result.circuit }
    }
    if (result.status === "conflict") {
      return { outcome: "conflict", failedStep: step, reasonClass: "plan_differs", circuit: null }
    }
    if (result.status === "failed") {
      return { outcome: "failed", failedStep: step, reasonClass: result.reason, circuit: result.circuit ?? null }
    }
  }
  return { outcome: "failed", failedStep: null, reasonClass: "unknown", circuit: null }
}

/** One line per plan, whichever step ended it: INFO when accepted or queued, WARNING otherwise. */
const logOutcome = (report: PlanReport, kafkaWaiting: boolean) => {
  const { circuit, failedStep, outcome, reasonClass } = outcomeOf(report, kafkaWaiting)
  const log = outcome === "accepted" || outcome === "queued" ? Effect.logInfo : Effect.logWarning
  return log(`plan_${outcome}`).pipe(Effect.annotateLogs({
    logger: "orchestrator",
    plan_id: report.planId,
    ticket_id: report.ticketId,
    ...(failedStep === null ? {} : { failed_step: failedStep, reason_class: reasonClass }),
    ...(circuit === null ? {} : { circuit })
  }))
}

/** What every phase of one attempt of a plan shares: the plan, this attempt's id, and the clients. */
interface Attempt {
  readonly plan: Plan
  readonly ticketId: string
  readonly workflowId: string
  /** This attempt's own id: what it creates carries it, and its compensation undoes nothing else. */
  readonly attempt: string
  readonly planHash: string
  readonly settings: Settings
  readonly cache: RedisCache.RedisCache["Service"]
  readonly temporal: TemporalClient.TemporalClient["Service"]
  readonly store: MongoStore.MongoStore["Service"]
  readonly relay: Outbox.OutboxRelay["Service"]
}

const notRun: StepReport = { status: "skipped", detail: "an earlier step failed" }

/**
 * 0. The steps that cannot be deferred are checked before any side effect: nothing is written for a plan
 *    whose Temporal or MongoDB breaker refuses calls now. The refused report, or `undefined`.
 */
const refusedBeforeAnySideEffect = (a: Attempt): PlanReport | undefined => {
  const refusedBy = refusing(a.temporal.breaker) ?? refusing(a.store.breaker)
  if (refusedBy === undefined) return undefined
  const notTried: StepReport = { status: "skipped", detail: "refused before any side effect" }
  const by = (name: string) => refusedBy.status === "rejected" && refusedBy.circuit === name ? refusedBy : notTried
  return {
    planId: a.plan.id,
    ticketId: a.ticketId,
    accepted: false,
    steps: {
      cache: notTried,
      workflow: by(a.temporal.breaker.name),
      persistence: by(a.store.breaker.name),
      ticket: notTried
    }
  }
}

/**
 * 1. Redis (fail-open): a cached ticket saves rebuilding it; a cache that is down is a miss. A cached ticket
 *    of another plan under this id (a refused one, other steps) is a miss, overwritten.
 */
const ticketOf = (a: Attempt) =>
  Effect.gen(function*() {
    const cacheKey = `plan:${a.plan.id}`
    const cached = Option.filter(
      yield* a.cache.get(cacheKey),
      (value) => (JSON.parse(value) as Partial<Ticket>).planHash === a.planHash
    )
    if (Option.isSome(cached)) {
      return { ticket: JSON.parse(cached.value) as Ticket, cacheStep: { status: "ok", detail: "hit" } as StepReport }
    }
    const ticket: Ticket = {
      ticketId: a.ticketId,
      planId: a.plan.id,
      steps: a.plan.steps,
      createdAt: new Date(yield* Clock.currentTimeMillis).toISOString(),
      planHash: a.planHash
    }
    const stored = yield* a.cache.setex(cacheKey, a.settings.cacheSeconds, JSON.stringify(ticket))
    const cacheStep: StepReport = stored
      ? { status: "ok", detail: "miss" }
      : { status: "skipped", detail: "cache unavailable, ticket built without it" }
    return { ticket, cacheStep }
  })

/**
 * 2. Temporal (fail-fast): start the plan's workflow; already started means a retried plan. The memo names
 *    this attempt, so a start whose answer was lost can still be told apart from another's.
 */
const startWorkflow = (a: Attempt, ticket: Ticket): Effect.Effect<Started> =>
  a.temporal.startWorkflow("orchestratePlan", {
    workflowId: a.workflowId,
    taskQueue: a.settings.taskQueue,
    args: [ticket],
    memo: { attempt: a.attempt }
  }).pipe(
    Effect.map((handle): Started => ({ step: { status: "ok", detail: "started" }, runId: handle.runId })),
    Effect.catchTag("TemporalError", (e) =>
      e.reason === "AlreadyStarted"
        ? Effect.succeed<Started>({ step: { status: "ok", detail: "already started" }, runId: undefined })
        : Effect.map(logFailed("workflow", a.plan.id, e), (step): Started => ({ step, runId: undefined }))),
    Effect.catchTag(
      "CircuitBreakerError",
      (e) => Effect.map(fromBreaker(e), (step): Started => ({ step, runId: undefined }))
    )
  )

/**
 * Compensation terminates only a run this attempt started (its run id, or its memo when the start's answer
 * was lost): a run found already started belongs to an earlier attempt and is never touched. Best effort; a
 * workflow that never started (not found) is as good as terminated.
 */
const terminateMine = (a: Attempt, why: string, runId: string | undefined) =>
  Effect.gen(function*() {
    const mine = runId ?? (yield* a.temporal.describeWorkflow(a.workflowId).pipe(
      Effect.map((d) => d.memo?.["attempt"] === a.attempt ? d.runId : undefined),
      Effect.catchTag("TemporalError", (e) => e.reason === "NotFound" ? Effect.succeed(undefined) : Effect.fail(e))
    ))
    if (mine === undefined) return "not mine" as const
    const handle = yield* a.temporal.getWorkflowHandle(a.workflowId, mine)
    yield* handle.terminate(why)
    return "terminated" as const
  }).pipe(
    Effect.catchTag(
      "TemporalError",
      (e) => e.reason === "NotFound" ? Effect.succeed("terminated" as const) : Effect.fail(e)
    ),
    Effect.catch((e) =>
      Effect.as(
        Effect.logError("plan_compensation_failed").pipe(
          Effect.annotateLogs({ plan_id: a.plan.id, workflow_id: a.workflowId, error: e._tag })
        ),
        "failed" as const
      )
    )
  )

/**
 * The plan stored under this id by another attempt, if any: the same plan (its hash) is a retry of an
 * accepted plan, answered as the first attempt was; another plan under the same id is a conflict.
 */
const storedPlan = (a: Attempt, whenNone: StepReport) =>
  a.store.findOne(a.settings.ticketsCollection, { _id: a.ticketId } as never).pipe(
    Effect.map((found): StepReport => {
      if (Option.isNone(found)) return whenNone
      const stored = found.value as unknown as Partial<Ticket>
      const storedPlanHash = stored.planHash ?? hashOf({ id: a.plan.id, steps: stored.steps ?? [] })
      return storedPlanHash === a.planHash
        ? { status: "ok", detail: "already stored" }
        : {
          status: "conflict",
          detail: `plan ${a.plan.id} is already stored with other steps`,
          planHash: a.planHash,
          storedPlanHash
        }
    })
  )

/**
 * 3. MongoDB (fail-fast): the ticket and its outbox mark in ONE write, marked with this attempt; a duplicate
 *    key means another attempt stored it (and its mark): compared by the plan's hash.
 */
const persist = (a: Attempt, ticket: Ticket): Effect.Effect<StepReport> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const document = Outbox.pending({ _id: a.ticketId, ...ticket, attempt: a.attempt }, now)
    return a.store.insertOne(a.settings.ticketsCollection, document as never).pipe(
      // 4. Kafka: the relay publishes the stored ticket (keyed by its id) without reading it back.
      Effect.andThen(a.relay.notifyWritten(document)),
      Effect.as<StepReport>({ status: "ok", detail: "stored" }),
      Effect.catchTag("MongoStoreError", (e) =>
        e.reason === "DuplicateKey"
          ? storedPlan(a, { status: "ok", detail: "already stored" }).pipe(
            Effect.catchTag("MongoStoreError", (read) => logFailed("persistence", a.plan.id, read)),
            Effect.catchTag("CircuitBreakerError", fromBreaker)
          )
          : takeBackMine(a, e)),
      Effect.catchTag("CircuitBreakerError", fromBreaker)
    )
  })

/**
 * An insert that failed with an unknown outcome may have stored the ticket: this attempt takes back its own
 * ticket only (its attempt id, still pending and not claimed by an exactly-once relay about to commit it),
 * then looks for another attempt's.
 */
const takeBackMine = (a: Attempt, error: StepError) =>
  Effect.gen(function*() {
    const failure = yield* logFailed("persistence", a.plan.id, error)
    const deleted = yield* Effect.result(a.store.deleteOne(
      a.settings.ticketsCollection,
      { _id: a.ticketId, attempt: a.attempt, ...Outbox.unclaimed } as never
    ))
    if (deleted._tag === "Failure") return failure
    return yield* storedPlan(a, failure).pipe(Effect.orElseSucceed(() => failure))
  })

/** The ticket was not stored: the workflow step once this attempt's own run is compensated (see `terminateMine`). */
const compensated = (a: Attempt, persistence: StepReport, started: Started, startedByMe: boolean) =>
  Effect.gen(function*() {
    const conflict = persistence.status === "conflict"
    const outcome = startedByMe
      ? yield* terminateMine(
        a,
        conflict ? "plan refused: another plan is stored under its id" : "plan refused: its ticket could not be stored",
        started.runId
      )
      : "not mine"
    const detail = outcome === "terminated"
      ? (conflict ? "terminated: another plan is stored under this id" : "terminated: the ticket was not stored")
      : outcome === "failed"
      ? "termination failed"
      : "kept: started by an earlier attempt"
    return { status: "skipped", detail } satisfies StepReport
  })

export class Orchestrator extends Context.Service<Orchestrator, {
  readonly submit: (plan: Plan) => Effect.Effect<PlanReport>
}>()("@neural-hive/example-orchestrator-dynamic/Orchestrator") {
  static readonly layer = (settings: Settings = defaultSettings) =>
    Layer.effect(
      Orchestrator,
      Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        const temporal = yield* TemporalClient.TemporalClient
        const store = yield* MongoStore.MongoStore
        const relay = yield* Outbox.OutboxRelay
        // Only read, for the plan's log line: a ticket accepted while Kafka's breaker is not closed is queued.
        const kafka = yield* Effect.serviceOption(KafkaProducer.KafkaProducer)
        const kafkaWaiting = () => kafka._tag === "Some" && kafka.value.breaker.view.state() !== "Closed"

        const submit = Effect.fn("Orchestrator.submit")(
          function*(plan: Plan) {
            const a: Attempt = {
              plan,
              ticketId: `ticket-${plan.id}`,
              workflowId: `plan-${plan.id}`,
              attempt: randomUUID(),
              planHash: hashOf(plan),
              settings,
              cache,
              temporal,
              store,
              relay
            }
            yield* Effect.annotateCurrentSpan({ "plan.id": plan.id })
            const refused = refusedBeforeAnySideEffect(a)
            if (refused !== undefined) return refused
            const { cacheStep, ticket } = yield* ticketOf(a)
            const report = (workflow: StepReport, persistence: StepReport, published: StepReport): PlanReport => ({
              planId: plan.id,
              ticketId: a.ticketId,
              accepted: isOk(workflow) && isOk(persistence) && isOk(published),
              steps: { cache: cacheStep, workflow, persistence, ticket: published }
            })

            const started = yield* startWorkflow(a, ticket)
            const workflow = started.step
            if (!isOk(workflow)) {
              // A start that failed with an unknown outcome (a deadline, a cut connection) may have started it.
              if (workflow.status === "failed") {
                yield* terminateMine(a, "plan refused: its workflow start did not answer", undefined)
              }
              return report(workflow, notRun, notRun)
            }
            const persistence = yield* persist(a, ticket)
            if (!isOk(persistence)) {
              // This attempt's own run only; a run found already started is left to its owner.
              return report(
                yield* compensated(a, persistence, started, workflow.detail === "started"),
                persistence,
                notRun
              )
            }
            // 4. Kafka: the outbox relay publishes the ticket (keyed by its id) as soon as kafka_producer takes it
            //    (a ticket an earlier attempt stored was handed over by that attempt; a read finds it otherwise).
            if (persistence.detail !== "stored") yield* relay.notify
            return report(workflow, persistence, { status: "queued", detail: "published by the outbox relay" })
          },
          Effect.tap((report) => logOutcome(report, kafkaWaiting()))
        )

        return Orchestrator.of({ submit })
      })
    )
}
