/**
 * In-memory implementations of the four dependency services, for the embedded
 * demo: no server needed, every call still goes through its real breaker with
 * the seed's configuration, and a fault switch makes a dependency fail so a
 * newcomer can watch a breaker trip and recover in /health, /metrics and the logs.
 *
 * Faults: `up` (works), `down` (fails at once with a connection error, which
 * counts), `slow` (hangs until the breaker's call timeout, which counts).
 */
import { isBrokerFailure, KafkaError, KafkaProducer } from "@neural-hive/kafka"
import { MongoStore, MongoStoreError } from "@neural-hive/mongodb"
import { RedisCache, RedisError } from "@neural-hive/redis"
import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
import { TemporalClient, TemporalError } from "@neural-hive/temporal"
import type { WorkflowExecutionDescription } from "@temporalio/client"
import { Clock, Context, Effect, Layer, Option } from "effect"
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

const breakerFor = (
  settings: OrchestratorConfig.Settings,
  dependency: OrchestratorConfig.Dependency,
  isFailure: (error: unknown) => boolean
) => CircuitBreaker.make({ ...OrchestratorConfig.toBreakerOptions(dependency, settings[dependency]), isFailure })

const unsupported = (what: string) => `${what} is not available in embedded mode; configure a real server`

// -----------------------------------------------------------------------------
// Kafka: topics as arrays
// -----------------------------------------------------------------------------

export const kafka = (settings: OrchestratorConfig.Settings) =>
  Layer.effect(
    KafkaProducer.KafkaProducer,
    Effect.gen(function*() {
      const faults = yield* Faults
      const breaker = yield* breakerFor(settings, "kafka", isBrokerFailure)
      const topics = new Map<string, Array<unknown>>()
      const down = () =>
        new KafkaError({
          reason: "Connection",
          message: "connect ECONNREFUSED (embedded fault)",
          brokerFailure: true,
          retriable: true,
          retries: 0
        })
      const append = (topic: string, messages: ReadonlyArray<{ readonly value?: unknown }>) => {
        const log = topics.get(topic) ?? []
        topics.set(topic, log)
        const baseOffset = log.length
        for (const message of messages) log.push(message.value)
        return { topicName: topic, partition: 0, errorCode: 0, baseOffset: String(baseOffset) }
      }
      return KafkaProducer.KafkaProducer.of({
        send: (record) =>
          faulty(faults, "kafka", down, Effect.sync(() => [append(record.topic, record.messages)])).pipe(
            withBreaker(breaker)
          ),
        sendBatch: (batch) =>
          faulty(
            faults,
            "kafka",
            down,
            Effect.sync(() => (batch.topicMessages ?? []).map((t) => append(t.topic, t.messages)))
          ).pipe(withBreaker(breaker)),
        breaker
      })
    })
  )

// -----------------------------------------------------------------------------
// Temporal: workflows as records
// -----------------------------------------------------------------------------

export const temporal = (settings: OrchestratorConfig.Settings) =>
  Layer.effect(
    TemporalClient.TemporalClient,
    Effect.gen(function*() {
      const faults = yield* Faults
      const breaker = yield* breakerFor(settings, "temporal", TemporalClient.isServerFailure)
      interface Run {
        readonly runId: string
        readonly type: string
        readonly taskQueue: string
        readonly startedAt: Date
        status: "RUNNING" | "TERMINATED"
        readonly signals: Array<string>
      }
      const workflows = new Map<string, Run>()
      let runs = 0
      const down = (operation: string) => () =>
        new TemporalError({ reason: "Unavailable", operation, message: "14 UNAVAILABLE: (embedded fault)" })
      const call = <A>(operation: string, effect: Effect.Effect<A, TemporalError>) =>
        faulty(faults, "temporal", down(operation), effect).pipe(withBreaker(breaker))
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
          })
        )
      const handle = (workflowId: string, runId: string): TemporalClient.WorkflowHandle => ({
        workflowId,
        runId,
        describe: describe(workflowId),
        query: () => query(workflowId),
        signal: (definition, ..._args) =>
          signal(workflowId, typeof definition === "string" ? definition : definition.name),
        terminate: () =>
          call(
            "terminateWorkflow",
            Effect.map(lookup("terminateWorkflow", workflowId), (run) => {
              run.status = "TERMINATED"
            })
          )
      })

      return TemporalClient.TemporalClient.of({
        startWorkflow: (workflow, options) =>
          call(
            "startWorkflow",
            Effect.gen(function*() {
              const workflowId = options.workflowId
              if (workflows.has(workflowId)) {
                return yield* new TemporalError({
                  reason: "AlreadyStarted",
                  operation: "startWorkflow",
                  workflowId,
                  message: `workflow ${workflowId} already started`
                })
              }
              const runId = `embedded-run-${++runs}`
              workflows.set(workflowId, {
                runId,
                type: typeof workflow === "string" ? workflow : workflow.name,
                taskQueue: options.taskQueue,
                startedAt: new Date(yield* Clock.currentTimeMillis),
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
// Redis: a map with expiry by the Clock
// -----------------------------------------------------------------------------

export const redis = (settings: OrchestratorConfig.Settings) =>
  Layer.effect(
    RedisCache.RedisCache,
    Effect.gen(function*() {
      const faults = yield* Faults
      const breaker = yield* breakerFor(settings, "redis", RedisCache.isServerFailure)
      const entries = new Map<string, { readonly value: string; readonly expiresAt: number }>()
      const down = (command: string) => () =>
        new RedisError({ reason: "Connection", command, message: "connect ECONNREFUSED (embedded fault)" })
      const use = <A>(command: string, effect: Effect.Effect<A, RedisError>) =>
        faulty(faults, "redis", down(command), effect).pipe(withBreaker(breaker))
      // Fail-open, as the real service: any failure or rejection is a miss.
      const open = <A>(effect: Effect.Effect<A, unknown>, fallback: A) => Effect.orElseSucceed(effect, () => fallback)
      return RedisCache.RedisCache.of({
        get: (key) =>
          open(
            use(
              "GET",
              Effect.map(Clock.currentTimeMillis, (now) => {
                const entry = entries.get(key)
                return entry !== undefined && entry.expiresAt > now ? Option.some(entry.value) : Option.none()
              })
            ),
            Option.none()
          ),
        setex: (key, seconds, value) =>
          open(
            use(
              "SETEX",
              Effect.map(Clock.currentTimeMillis, (now) => {
                entries.set(key, { value, expiresAt: now + seconds * 1000 })
                return true
              })
            ),
            false
          ),
        ping: open(use("PING", Effect.succeed(true)), false),
        use: (command) =>
          use(command, Effect.fail(new RedisError({ reason: "Reply", command, message: unsupported(command) }))),
        breaker
      })
    })
  )

// -----------------------------------------------------------------------------
// MongoDB: collections of documents, matched by equality
// -----------------------------------------------------------------------------

type Doc = Record<string, unknown>

const matches = (doc: Doc, filter: Doc): boolean =>
  Object.entries(filter).every(([key, value]) => JSON.stringify(doc[key]) === JSON.stringify(value))

export const mongodb = (settings: OrchestratorConfig.Settings) =>
  Layer.effect(
    MongoStore.MongoStore,
    Effect.gen(function*() {
      const faults = yield* Faults
      const breaker = yield* breakerFor(settings, "mongodb", MongoStore.isServerFailure)
      const collections = new Map<string, Array<Doc>>()
      let ids = 0
      const collectionOf = (name: string) => {
        const docs = collections.get(name) ?? []
        collections.set(name, docs)
        return docs
      }
      const down = (operation: string) => () =>
        new MongoStoreError({ reason: "Network", operation, message: "connect ECONNREFUSED (embedded fault)" })
      const call = <A>(operation: string, effect: Effect.Effect<A, MongoStoreError>) =>
        faulty(faults, "mongodb", down(operation), effect).pipe(withBreaker(breaker))
      const store = MongoStore.MongoStore.of({
        insertOne: (collection, document) =>
          call(
            "insertOne",
            Effect.suspend(() => {
              const docs = collectionOf(collection)
              const doc = { _id: `embedded-${++ids}`, ...(document as Doc) }
              if (docs.some((d) => JSON.stringify(d._id) === JSON.stringify(doc._id))) {
                return Effect.fail(
                  new MongoStoreError({
                    reason: "DuplicateKey",
                    operation: "insertOne",
                    collection,
                    code: 11000,
                    message: `E11000 duplicate key error collection: ${collection}`
                  })
                )
              }
              docs.push(doc)
              return Effect.succeed({ acknowledged: true, insertedId: doc._id } as never)
            })
          ),
        findOne: (collection, filter) =>
          call(
            "findOne",
            Effect.sync(() =>
              Option.fromNullishOr(collectionOf(collection).find((d) => matches(d, filter as Doc)) as never)
            )
          ),
        updateOne: (collection, filter, update) =>
          call(
            "updateOne",
            Effect.sync(() => {
              const doc = collectionOf(collection).find((d) => matches(d, filter as Doc))
              const set = (update as { readonly $set?: Doc }).$set
              if (doc !== undefined && set !== undefined) Object.assign(doc, set)
              const n = doc === undefined ? 0 : 1
              return {
                acknowledged: true,
                matchedCount: n,
                modifiedCount: n,
                upsertedCount: 0,
                upsertedId: null
              } as never
            })
          ),
        deleteOne: (collection, filter) =>
          call(
            "deleteOne",
            Effect.sync(() => {
              const docs = collectionOf(collection)
              const index = docs.findIndex((d) => matches(d, filter as Doc))
              if (index >= 0) docs.splice(index, 1)
              return { acknowledged: true, deletedCount: index >= 0 ? 1 : 0 }
            })
          ),
        find: (collection, filter, options) =>
          call(
            "find",
            Effect.sync(() =>
              collectionOf(collection).filter((d) => matches(d, filter as Doc)).slice(0, options.limit) as never
            )
          ),
        use: (operation) =>
          call(
            operation,
            Effect.fail(new MongoStoreError({ reason: "Unknown", operation, message: unsupported(operation) }))
          ),
        breaker
      })
      return store
    })
  )

/** The four in-memory services, each behind its breaker. */
export const layer = (settings: OrchestratorConfig.Settings) =>
  Layer.mergeAll(kafka(settings), temporal(settings), redis(settings), mongodb(settings))
