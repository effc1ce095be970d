/**
 * In-memory implementations of the four dependency services, for the embedded
 * demo: no server needed, every call still goes through its real breaker with
 * the service's configuration, and a fault switch makes a dependency fail so a
 * newcomer can watch a breaker trip and recover in /health, /metrics and the logs.
 *
 * Each stand-in is guarded by the integrations' own skeleton (`GuardedClient`:
 * its breaker, its `guard` path, the integration's span names and timeout error),
 * and Redis fails open through the one combinator, `failOpen`, as the real
 * `RedisCache` does.
 *
 * Faults: `up` (works), `down` (fails at once with a connection error, which
 * counts), `slow` (hangs until the breaker's call timeout, which counts).
 *
 * A demo, not a database: each dependency keeps at most `limits` (default
 * 10,000 entries or 16 MiB) and evicts the least recently used beyond that, so
 * an old plan may be forgotten; lookups by key or `_id` are O(1), and the
 * outbox's queries read only what they name (DocumentStore).
 */
import { KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore, MongoStoreError } from "@neural-hive/mongodb"
import { RedisCache, RedisError } from "@neural-hive/redis"
import { type CircuitBreakerError, CircuitBreakerOptionsError, failOpen, GuardedClient } from "@neural-hive/resilience"
import { TemporalClient, TemporalError } from "@neural-hive/temporal"
import type { WorkflowExecutionDescription } from "@temporalio/client"
import { Clock, Context, Effect, Layer, Option } from "effect"
import { BoundedStore, defaultLimits, type Limits } from "./BoundedStore.ts"
import * as DocumentStore from "./DocumentStore.ts"
import * as OrchestratorConfig from "./OrchestratorConfig.ts"

// -----------------------------------------------------------------------------
// the fault switch
// -----------------------------------------------------------------------------

export type FaultMode = "up" | "down" | "slow"

export const faultModes: ReadonlyArray<FaultMode> = ["up", "down", "slow"]

export class Faults extends Context.Service<Faults, {
  readonly get: (dependency: OrchestratorConfig.Dependency) => FaultMode
  readonly set: (dependency: OrchestratorConfig.Dependency, mode: FaultMode) => Effect.Effect<void>
  readonly all: () => Readonly<Record<OrchestratorConfig.Dependency, FaultMode>>
}>()("@neural-hive/example-orchestrator-dynamic/Faults") {
  static readonly layer = (initial: Partial<Record<OrchestratorConfig.Dependency, FaultMode>> = {}) =>
    Layer.sync(Faults, () => {
      const modes: Record<OrchestratorConfig.Dependency, FaultMode> = {
        kafka: "up",
        temporal: "up",
        redis: "up",
        mongodb: "up",
        ...initial
      }
      return Faults.of({
        get: (dependency) => modes[dependency],
        set: (dependency, mode) =>
          Effect.andThen(
            Effect.sync(() => {
              modes[dependency] = mode
            }),
            Effect.logWarning("embedded_fault").pipe(Effect.annotateLogs({ dependency, mode }))
          ),
        all: () => ({ ...modes })
      })
    })
}

/** Runs `effect` unless the dependency is faulty: `down` fails at once, `slow` never answers. */
const faulty = <A, E>(
  faults: Faults["Service"],
  dependency: OrchestratorConfig.Dependency,
  unavailable: () => E,
  effect: Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    switch (faults.get(dependency)) {
      case "up":
        return effect
      case "down":
        return Effect.fail(unavailable())
      case "slow":
        return Effect.andThen(Effect.never, effect)
    }
  })

/**
 * A stand-in behind the integration skeleton: the service's breaker (its configuration, the integration's
 * classifier, a probe that fails while the fault is on so an idle breaker recovers by itself) and `call`,
 * which runs an in-memory operation through the fault switch and `GuardedClient`'s `guard`: a call past the
 * breaker's callTimeout is the integration's own timeout error, in the integration's span.
 */
const standIn = <E>(
  settings: OrchestratorConfig.Settings,
  dependency: OrchestratorConfig.Dependency,
  faults: Faults["Service"],
  integration: {
    readonly isFailure: (error: unknown) => boolean
    /** The integration's error of a connection refused by the fault switch. */
    readonly down: (operation: string) => E
    /** The integration's timeout error, with the breaker's message. */
    readonly timedOut: (operation: string, message: string) => E
    readonly span: GuardedClient.Options<void, E>["span"]
  }
) =>
  Effect.map(
    Effect.flatMap(OrchestratorConfig.policiesOf(dependency, settings[dependency]), (policies) =>
      GuardedClient.make<void, E>({
        // The same policies as the real client's (an adaptive limit, retries, hedged reads), and the same calls.
        policies,
        breaker: {
          ...OrchestratorConfig.toBreakerOptions(dependency, settings[dependency]),
          isFailure: integration.isFailure,
          probe: faulty(faults, dependency, () =>
            new Error(`connect ECONNREFUSED (embedded fault: ${dependency})`), Effect.void)
        },
        // Nothing to dial: the store lives in the layer.
        connect: () =>
          undefined,
        close: () =>
          Promise.resolve(),
        onError: (operation) =>
          integration.down(operation),
        onTimeout: (operation, _, backstop) =>
          integration.timedOut(operation, backstop?.message ?? `${operation}: no answer (embedded)`),
        span: integration.span,
        // The breaker's own probe above; no start check (the fault switch starts as configured).
        probe: false
      })),
    (guarded) => ({
      breaker: guarded.breaker,
      call: <A>(operation: string, effect: Effect.Effect<A, E>, detail?: string) =>
        guarded.guard(
          operation,
          faulty(faults, dependency, () =>
            integration.down(operation), effect),
          detail,
          READS.has(operation) ? { idempotent: true } : WRITES.has(operation) ? {} : { retry: false }
        )
    })
  )

// As the real clients: reads are hedged and retried, Kafka's sends retried, every other write neither.
const READS = new Set(["GET", "PING", "findOne", "find", "countDocuments", "describeWorkflow", "queryWorkflow"])
const WRITES = new Set(["send", "SETEX"])

const unsupported = (what: string) => `${what} is not available in embedded mode; configure a real server`

// -----------------------------------------------------------------------------
// Kafka: every topic's messages in one bounded store
// -----------------------------------------------------------------------------

export const kafka = (settings: OrchestratorConfig.Settings, limits: Limits = defaultLimits) =>
  Layer.effect(
    KafkaProducer.KafkaProducer,
    Effect.gen(function*() {
      const faults = yield* Faults
      const { breaker, call } = yield* standIn(settings, "kafka", faults, {
        isFailure: KafkaProducer.isFailure,
        down: () =>
          new KafkaError({
            reason: "Connection",
            message: "connect ECONNREFUSED (embedded fault)",
            brokerFailure: true,
            retriable: true,
            retries: 0
          }),
        timedOut: (_, message) =>
          new KafkaError({ reason: "Timeout", message, brokerFailure: true, retriable: true, retries: 0 }),
        span: {
          prefix: "KafkaProducer",
          kind: "producer",
          attributes: (topics) => ({ "messaging.system": "kafka", "messaging.batch.topics": topics })
        }
      })
      // Every topic's messages in one bounded store, keyed by topic and offset; offsets keep growing.
      const log = new BoundedStore<string, unknown>(limits)
      const nextOffsets = new BoundedStore<string, number>({ capacity: 1_000, maxBytes: Infinity })
      const append = (topic: string, batch: ReadonlyArray<{ readonly value?: unknown }>) => {
        const baseOffset = nextOffsets.get(topic) ?? 0
        let offset = baseOffset
        for (const message of batch) log.set(`${topic}\u0000${offset++}`, message.value)
        nextOffsets.set(topic, offset)
        return { topicName: topic, partition: 0, errorCode: 0, baseOffset: String(baseOffset) }
      }
      return KafkaProducer.KafkaProducer.of({
        send: (record) => call("send", Effect.sync(() => [append(record.topic, record.messages)]), record.topic),
        sendBatch: (batch) =>
          call(
            "send",
            Effect.sync(() => (batch.topicMessages ?? []).map((t) => append(t.topic, t.messages))),
            (batch.topicMessages ?? []).map((t) => t.topic).join(",")
          ),
        transactional: (transactionalId) =>
          Effect.fail(
            new CircuitBreakerOptionsError({
              circuit: "kafka_producer",
              option: "transactionalId",
              value: transactionalId,
              expected:
                "a real Kafka cluster: the embedded stand-in has no transactions (OUTBOX_DELIVERY=at-least-once)"
            })
          ),
        breaker
      })
    })
  )

// -----------------------------------------------------------------------------
// Temporal: workflows as records, bounded
// -----------------------------------------------------------------------------

/** A workflow run as the embedded Temporal keeps it. */
interface Run {
  readonly runId: string
  readonly type: string
  readonly taskQueue: string
  readonly startedAt: Date
  readonly memo: Record<string, unknown> | undefined
  status: "RUNNING" | "TERMINATED"
  readonly signals: Array<string>
}

type Guard = <A>(
  operation: string,
  effect: Effect.Effect<A, TemporalError>,
  detail?: string
) => Effect.Effect<A, TemporalError | CircuitBreakerError>

/** The in-memory workflows (bounded by `limits`): lookups, describe, query, signal and handles, each through `call`. */
const workflowRecords = (limits: Limits, call: Guard) => {
  const workflows = new BoundedStore<string, Run>(limits)
  let runs = 0
  const lookup = (operation: string, workflowId: string) =>
    Effect.suspend(() => {
      const run = workflows.get(workflowId)
      return run === undefined
        ? Effect.fail(
          new TemporalError({
            reason: "NotFound",
            operation,
            workflowId,
            message: `workflow ${workflowId} not found`
          })
        )
        : Effect.succeed(run)
    })
  const describe = (workflowId: string) =>
    call(
      "describeWorkflow",
      Effect.map(lookup("describeWorkflow", workflowId), (run) =>
        ({
          workflowId,
          runId: run.runId,
          type: run.type,
          taskQueue: run.taskQueue,
          startTime: run.startedAt,
          memo: run.memo,
          status: { name: run.status }
        }) as unknown as WorkflowExecutionDescription)
    )
  // No workflow code runs in memory, so there is nothing to answer a query.
  const query = (workflowId: string) =>
    call(
      "queryWorkflow",
      Effect.flatMap(lookup("queryWorkflow", workflowId), () =>
        Effect.fail(
          new TemporalError({
            reason: "QueryFailed",
            operation: "queryWorkflow",
            workflowId,
            message: unsupported("a query")
          })
        ))
    )
  const signal = (workflowId: string, name: string) =>
    call(
      "signalWorkflow",
      Effect.map(lookup("signalWorkflow", workflowId), (run) => {
        run.signals.push(name)
        // A run keeps its last 100 signal names: a signal loop must not grow it.
        if (run.signals.length > 100) run.signals.shift()
      })
    )
  const handle = (workflowId: string, runId: string): TemporalClient.WorkflowHandle => ({
    workflowId,
    runId,
    describe: describe(workflowId),
    query: () => query(workflowId),
    signal: (definition, ..._args) => signal(workflowId, typeof definition === "string" ? definition : definition.name),
    terminate: () =>
      call(
        "terminateWorkflow",
        Effect.map(lookup("terminateWorkflow", workflowId), (run) => {
          run.status = "TERMINATED"
        })
      )
  })

  return { workflows, lookup, describe, query, signal, handle, nextRunId: () => `embedded-run-${++runs}` }
}

export const temporal = (settings: OrchestratorConfig.Settings, limits: Limits = defaultLimits) =>
  Layer.effect(
    TemporalClient.TemporalClient,
    Effect.gen(function*() {
      const faults = yield* Faults
      const { breaker, call } = yield* standIn(settings, "temporal", faults, {
        isFailure: TemporalClient.isFailure,
        down: (operation) =>
          new TemporalError({ reason: "Unavailable", operation, message: "14 UNAVAILABLE: (embedded fault)" }),
        timedOut: (operation, message) => new TemporalError({ reason: "DeadlineExceeded", operation, message }),
        span: {
          prefix: "TemporalClient",
          attributes: (workflowId) => workflowId === undefined ? {} : { "temporal.workflow_id": workflowId }
        }
      })
      const { describe, handle, lookup, nextRunId, query, signal, workflows } = workflowRecords(limits, call)
      return TemporalClient.TemporalClient.of({
        startWorkflow: (workflow, options) =>
          call(
            "startWorkflow",
            Effect.gen(function*() {
              const workflowId = options.workflowId
              // As Temporal's default id reuse policy: a closed (terminated) run may be started again.
              if (workflows.get(workflowId)?.status === "RUNNING") {
                return yield* new TemporalError({
                  reason: "AlreadyStarted",
                  operation: "startWorkflow",
                  workflowId,
                  message: `workflow ${workflowId} already started`
                })
              }
              const runId = nextRunId()
              workflows.set(workflowId, {
                runId,
                type: typeof workflow === "string" ? workflow : workflow.name,
                taskQueue: options.taskQueue,
                startedAt: new Date(yield* Clock.currentTimeMillis),
                memo: options.memo,
                status: "RUNNING",
                signals: []
              })
              return handle(workflowId, runId)
            })
          ),
        getWorkflowHandle: (workflowId) =>
          call(
            "getWorkflowHandle",
            Effect.map(lookup("getWorkflowHandle", workflowId), (run) => handle(workflowId, run.runId))
          ),
        describeWorkflow: describe,
        queryWorkflow: (workflowId, _query, ..._args) => query(workflowId),
        signalWorkflow: (workflowId, definition, ..._args) =>
          signal(workflowId, typeof definition === "string" ? definition : definition.name),
        use: (operation) =>
          call(
            operation,
            Effect.fail(new TemporalError({ reason: "Unknown", operation, message: unsupported(operation) }))
          ),
        breaker
      })
    })
  )

// -----------------------------------------------------------------------------
// Redis: a bounded map with expiry by the Clock
// -----------------------------------------------------------------------------

export const redis = (settings: OrchestratorConfig.Settings, limits: Limits = defaultLimits) =>
  Layer.effect(
    RedisCache.RedisCache,
    Effect.gen(function*() {
      const faults = yield* Faults
      const { breaker, call: use } = yield* standIn(settings, "redis", faults, {
        isFailure: RedisCache.isFailure,
        down: (command) =>
          new RedisError({ reason: "Connection", command, message: "connect ECONNREFUSED (embedded fault)" }),
        timedOut: (command, message) => new RedisError({ reason: "Timeout", command, message }),
        span: { prefix: "RedisCache", attributes: () => ({ "db.system": "redis" }) }
      })
      const entries = new BoundedStore<string, { readonly value: string; readonly expiresAt: number }>(
        limits,
        (entry) => 2 * entry.value.length + 64
      )
      // Fail-open, as the real service: any failure or rejection is a miss, logged `redis GET failed open`.
      const open = <A>(command: string, effect: Effect.Effect<A, unknown>, fallback: () => A) =>
        effect.pipe(failOpen(`redis ${command}`, fallback), Effect.annotateLogs("circuit", breaker.name))
      return RedisCache.RedisCache.of({
        get: (key) =>
          open(
            "GET",
            use(
              "GET",
              Effect.map(Clock.currentTimeMillis, (now) => {
                const entry = entries.get(key)
                if (entry !== undefined && entry.expiresAt <= now) entries.delete(key)
                return entry !== undefined && entry.expiresAt > now ? Option.some(entry.value) : Option.none()
              })
            ),
            Option.none
          ),
        setex: (key, seconds, value) =>
          open(
            "SETEX",
            use(
              "SETEX",
              Effect.map(Clock.currentTimeMillis, (now) => {
                entries.set(key, { value, expiresAt: now + seconds * 1000 })
                return true
              })
            ),
            () => false
          ),
        ping: open("PING", use("PING", Effect.succeed(true)), () => false),
        use: (command) =>
          use(command, Effect.fail(new RedisError({ reason: "Reply", command, message: unsupported(command) }))),
        breaker
      })
    })
  )

// -----------------------------------------------------------------------------
// MongoDB: the documents of DocumentStore
// -----------------------------------------------------------------------------

type Doc = Record<string, unknown>

export const mongodb = (settings: OrchestratorConfig.Settings, limits: Limits = defaultLimits) =>
  Layer.effect(
    MongoStore.MongoStore,
    Effect.gen(function*() {
      const faults = yield* Faults
      const { breaker, call } = yield* standIn(settings, "mongodb", faults, {
        isFailure: MongoStore.isFailure,
        down: (operation) =>
          new MongoStoreError({ reason: "Network", operation, message: "connect ECONNREFUSED (embedded fault)" }),
        timedOut: (operation, message) => new MongoStoreError({ reason: "Timeout", operation, message }),
        span: {
          prefix: "MongoStore",
          attributes: (collection) =>
            collection === undefined
              ? { "db.system": "mongodb" }
              : { "db.system": "mongodb", "db.collection.name": collection }
        }
      })
      const docs = DocumentStore.make(limits)
      return MongoStore.MongoStore.of({
        insertOne: (collection, document) => call("insertOne", docs.insertOne(collection, document as Doc)),
        findOne: (collection, filter) => call("findOne", docs.findOne(collection, filter as Doc)),
        updateOne: (collection, filter, update) => call("updateOne", docs.updateOne(collection, filter as Doc, update)),
        updateMany: (collection, filter, update) =>
          call("updateMany", docs.updateMany(collection, filter as Doc, update)),
        countDocuments: (collection, filter) => call("countDocuments", docs.countDocuments(collection, filter as Doc)),
        deleteOne: (collection, filter) => call("deleteOne", docs.deleteOne(collection, filter as Doc)),
        find: (collection, filter, options) => call("find", docs.find(collection, filter as Doc, options.limit)),
        use: (operation) =>
          call(
            operation,
            Effect.fail(new MongoStoreError({ reason: "Unknown", operation, message: unsupported(operation) }))
          ),
        breaker
      })
    })
  )

/** The four in-memory services, each behind its breaker, each store within `limits`. */
export const layer = (settings: OrchestratorConfig.Settings, limits: Limits = defaultLimits) =>
  Layer.mergeAll(
    kafka(settings, limits),
    temporal(settings, limits),
    redis(settings, limits),
    mongodb(settings, limits)
  )
