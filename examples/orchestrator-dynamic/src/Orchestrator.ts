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
 *   (DuplicateKey is success), the message key is the ticket id.
 */
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { RedisCache } from "@neural-hive/redis"
import type { CircuitBreaker, CircuitBreakerError } from "@neural-hive/resilience"
import { TemporalClient } from "@neural-hive/temporal"
import { Clock, Context, Data, Duration, Effect, Layer, Option } from "effect"

export interface Plan {
  readonly id: string
  readonly steps: ReadonlyArray<string>
}

export interface Ticket {
  readonly ticketId: string
  readonly planId: string
  readonly steps: ReadonlyArray<string>
  readonly createdAt: string
}

/** What happened at one step. */
export type StepReport =
  | { readonly status: "ok"; readonly detail?: string }
  | { readonly status: "queued"; readonly detail: string }
  | { readonly status: "skipped"; readonly detail: string }
  | { readonly status: "rejected"; readonly circuit: string; readonly retryAfterSeconds: number | null }
  /** `error` is the error's class and `reason` its kind, never its message: the details go to the log. */
  | { readonly status: "failed"; readonly error: string; readonly reason: string; readonly circuit?: string }

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

const isOk = (step: StepReport) => step.status === "ok" || step.status === "skipped" || step.status === "queued"

/** A fail-fast breaker that refuses calls now (OPEN, forced open): the plan is refused before any side effect. */
const refusing = (breaker: CircuitBreaker.CircuitBreaker): StepReport | undefined => {
  // The state alone on every plan (no allocation); the full snapshot only when the plan is refused.
  if (breaker.unsafe.state() !== "Open") return undefined
  const snapshot = breaker.unsafe.snapshot()
  return {
    status: "rejected",
    circuit: snapshot.name,
    retryAfterSeconds: Number.isFinite(snapshot.retryAfterMillis) ? Math.ceil(snapshot.retryAfterMillis / 1000) : null
  }
}

/** How a plan ended, as its log line says: `plan_accepted`, `plan_queued`, `plan_refused` or `plan_failed`. */
export type Outcome = "accepted" | "queued" | "refused" | "failed"

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
        const kafkaWaiting = () => kafka._tag === "Some" && kafka.value.breaker.unsafe.state() !== "Closed"

        const submit = Effect.fn("Orchestrator.submit")(function*(plan: Plan) {
          const ticketId = `ticket-${plan.id}`
          yield* Effect.annotateCurrentSpan({ "plan.id": plan.id })

          // 0. The steps that cannot be deferred are checked before any side effect: nothing is written
          //    for a plan whose Temporal or MongoDB breaker refuses calls now.
          const refusedBy = refusing(temporal.breaker) ?? refusing(store.breaker)
          if (refusedBy !== undefined) {
            const notTried: StepReport = { status: "skipped", detail: "refused before any side effect" }
            const refused: PlanReport = {
              planId: plan.id,
              ticketId,
              accepted: false,
              steps: {
                cache: notTried,
                workflow: refusedBy.status === "rejected" && refusedBy.circuit === temporal.breaker.name
                  ? refusedBy
                  : notTried,
                persistence: refusedBy.status === "rejected" && refusedBy.circuit === store.breaker.name
                  ? refusedBy
                  : notTried,
                ticket: notTried
              }
            }
            return refused
          }

          // 1. Redis (fail-open): a cached ticket saves rebuilding it; a cache that is down is a miss.
          const cacheKey = `plan:${plan.id}`
          const cached = yield* cache.get(cacheKey)
          const ticket: Ticket = Option.isSome(cached)
            ? JSON.parse(cached.value) as Ticket
            : {
              ticketId,
              planId: plan.id,
              steps: plan.steps,
              createdAt: new Date(yield* Clock.currentTimeMillis).toISOString()
            }
          const stored = Option.isSome(cached)
            ? true
            : yield* cache.setex(cacheKey, settings.cacheSeconds, JSON.stringify(ticket))
          const cacheStep: StepReport = Option.isSome(cached)
            ? { status: "ok", detail: "hit" }
            : stored
            ? { status: "ok", detail: "miss" }
            : { status: "skipped", detail: "cache unavailable, ticket built without it" }

          const notRun: StepReport = { status: "skipped", detail: "an earlier step failed" }
          const report = (workflow: StepReport, persistence: StepReport, published: StepReport): PlanReport => ({
            planId: plan.id,
            ticketId,
            accepted: isOk(workflow) && isOk(persistence) && isOk(published),
            steps: { cache: cacheStep, workflow, persistence, ticket: published }
          })

          const workflowId = `plan-${plan.id}`
          // 2. Temporal (fail-fast): start the plan's workflow; already started means a retried plan.
          const workflow = yield* temporal.startWorkflow("orchestratePlan", {
            workflowId,
            taskQueue: settings.taskQueue,
            args: [ticket]
          }).pipe(
            Effect.as<StepReport>({ status: "ok", detail: "started" }),
            Effect.catchTag("TemporalError", (e) =>
              e.reason === "AlreadyStarted"
                ? Effect.succeed<StepReport>({ status: "ok", detail: "already started" })
                : logFailed("workflow", plan.id, e)),
            Effect.catchTag("CircuitBreakerError", fromBreaker)
          )
          // Compensation: a refused plan's workflow must not run. Best effort, and a workflow that never
          // started (not found) is as good as terminated.
          const terminate = (why: string) =>
            temporal.getWorkflowHandle(workflowId).pipe(
              Effect.flatMap((handle) => handle.terminate(why)),
              Effect.as(true),
              Effect.catchTag("TemporalError", (e) => e.reason === "NotFound" ? Effect.succeed(true) : Effect.fail(e)),
              Effect.catch((e) =>
                Effect.as(
                  Effect.logError("plan_compensation_failed").pipe(
                    Effect.annotateLogs({ plan_id: plan.id, workflow_id: workflowId, error: e._tag })
                  ),
                  false
                )
              )
            )
          if (!isOk(workflow)) {
            // A start that failed with an unknown outcome (a deadline, a cut connection) may have started it.
            if (workflow.status === "failed") yield* terminate("plan refused: its workflow start did not answer")
            return report(workflow, notRun, notRun)
          }

          // 3. MongoDB (fail-fast): the ticket and its outbox mark in ONE write; a duplicate key means a
          //    retried plan already stored it (and its mark).
          const now = yield* Clock.currentTimeMillis
          const persistence = yield* store.insertOne(
            settings.ticketsCollection,
            Outbox.pending({ _id: ticketId, ...ticket }, now) as never
          ).pipe(
            Effect.as<StepReport>({ status: "ok", detail: "stored" }),
            Effect.catchTag("MongoStoreError", (e) =>
              e.reason === "DuplicateKey"
                ? Effect.succeed<StepReport>({ status: "ok", detail: "already stored" })
                : logFailed("persistence", plan.id, e)),
            Effect.catchTag("CircuitBreakerError", fromBreaker)
          )
          if (!isOk(persistence)) {
            // An insert that failed with an unknown outcome may have stored the ticket: take it back before
            // the relay publishes it (best effort: with MongoDB down it stays, and is published).
            if (persistence.status === "failed") {
              yield* Effect.ignore(
                store.deleteOne(settings.ticketsCollection, { _id: ticketId, "outbox.state": "pending" } as never)
              )
            }
            const compensated = yield* terminate("plan refused: its ticket could not be stored")
            return report(
              {
                status: "skipped",
                detail: compensated ? "terminated: the ticket was not stored" : "termination failed"
              },
              persistence,
              notRun
            )
          }

          // 4. Kafka: the outbox relay publishes the ticket (keyed by its id) as soon as kafka_producer takes it.
          yield* relay.notify
          const published: StepReport = { status: "queued", detail: "published by the outbox relay" }
          return report(workflow, persistence, published)
        }, Effect.tap((report) => logOutcome(report, kafkaWaiting())))

        return Orchestrator.of({ submit })
      })
    )
}
