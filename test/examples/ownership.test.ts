/**
 * Issue #24, "Nothing accepted is ever undone": a retry of a plan (same id) must never delete the ticket
 * or terminate the workflow an earlier attempt made. Each attempt's compensation undoes only what it
 * created itself (its attempt id on the ticket, its run id or memo on the workflow), and a retry answers
 * as the first attempt did (202), or 409 when the id is taken by a plan with other steps.
 *
 * First the in-memory dependencies, with a glitch switch on the MongoDB and Temporal calls (an answer
 * lost after the write landed, a write that never ran, a delete that fails): one test per compensation
 * branch. Then the real servers, MongoDB behind the fault proxy.
 */
import { assert, describe, it } from "@effect/vitest"
import * as App from "@neural-hive/example-orchestrator-dynamic/App"
import type { AppConfig } from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import * as Embedded from "@neural-hive/example-orchestrator-dynamic/Embedded"
import { respond } from "@neural-hive/example-orchestrator-dynamic/HttpApp"
import { Orchestrator, type PlanReport } from "@neural-hive/example-orchestrator-dynamic/Orchestrator"
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { MongoStore, MongoStoreError } from "@neural-hive/mongodb"
import { Outbox } from "@neural-hive/outbox"
import { TemporalClient, TemporalError } from "@neural-hive/temporal"
import { Client, Connection } from "@temporalio/client"
import { Effect, Layer, Logger, Option, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { TestConsole } from "effect/testing"
import { MongoClient } from "mongodb"
import { createHash } from "node:crypto"
import { afterAll, beforeAll, inject } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { eventually } from "../integration/eventually.ts"

/** The canonical hash, computed here so the test does not trust the code under test for it. */
const hashOf = (id: string, steps: ReadonlyArray<string>) =>
  `sha256:${createHash("sha256").update(JSON.stringify({ id, steps })).digest("hex")}`

interface Glitches {
  /** `lost`: the insert runs, then its answer is lost (Timeout); `unwritten`: it times out without running. */
  insert: "none" | "lost" | "unwritten"
  /** `fails`: the compensation's delete fails (MongoDB gone). */
  delete: "none" | "fails"
  /** `lost`: the start runs (or finds the workflow already started), then its answer is lost (DeadlineExceeded). */
  start: "none" | "lost"
}

const timeout = (operation: string) => new MongoStoreError({ reason: "Timeout", operation, message: "glitch" })

/** The embedded dependencies, with `glitches` switched by the test between two submits. */
const harness = () => {
  const glitches: Glitches = { insert: "none", delete: "none", start: "none" }
  const mongo = Layer.effect(
    MongoStore.MongoStore,
    Effect.gen(function*() {
      const inner = yield* MongoStore.MongoStore
      return MongoStore.MongoStore.of({
        ...inner,
        insertOne: (collection, document) =>
          glitches.insert === "none"
            ? inner.insertOne(collection, document)
            : glitches.insert === "lost"
            ? Effect.andThen(Effect.ignore(inner.insertOne(collection, document)), Effect.fail(timeout("insertOne")))
            : Effect.fail(timeout("insertOne")),
        deleteOne: (collection, filter) =>
          glitches.delete === "fails" ? Effect.fail(timeout("deleteOne")) : inner.deleteOne(collection, filter)
      })
    })
  )
  const temporal = Layer.effect(
    TemporalClient.TemporalClient,
    Effect.gen(function*() {
      const inner = yield* TemporalClient.TemporalClient
      return TemporalClient.TemporalClient.of({
        ...inner,
        startWorkflow: (workflow, options) =>
          glitches.start === "none" ? inner.startWorkflow(workflow, options) : Effect.andThen(
            Effect.ignore(inner.startWorkflow(workflow, options)),
            Effect.fail(
              new TemporalError({ reason: "DeadlineExceeded", operation: "startWorkflow", message: "glitch" })
            )
          )
      })
    })
  )
  const relay = Layer.succeed(Outbox.OutboxRelay)(
    { notify: Effect.void, notifyWritten: () => Effect.void } as unknown as Outbox.OutboxRelay["Service"]
  )
  const layer = Orchestrator.layer().pipe(
    Layer.provide(Layer.mergeAll(mongo, temporal, relay)),
    // The plain embedded services stay visible to the test, to read back what is stored and running.
    Layer.provideMerge(
      Embedded.layer(OrchestratorConfig.defaults).pipe(Layer.provideMerge(Embedded.Faults.layer()))
    )
  )
  return { glitches, layer }
}

const submit = (id: string, steps: ReadonlyArray<string> = ["plan", "execute"]) =>
  Effect.gen(function*() {
    return yield* (yield* Orchestrator).submit({ id, steps })
  })

const storedTicket = (id: string) =>
  Effect.gen(function*() {
    const found = yield* Effect.orDie(
      (yield* MongoStore.MongoStore).findOne("tickets", { _id: `ticket-${id}` } as never)
    )
    return Option.getOrUndefined(found) as Record<string, unknown> | undefined
  })

const workflowStatus = (id: string) =>
  Effect.gen(function*() {
    return (yield* Effect.orDie((yield* TemporalClient.TemporalClient).describeWorkflow(`plan-${id}`))).status.name
  })

const statusOf = (report: PlanReport) => respond(report).status

describe("each attempt undoes only what it made (embedded)", () => {
  it.effect("a retry whose insert answer is lost keeps the accepted plan's ticket and workflow, and answers 202", () => {
    const { glitches, layer } = harness()
    return Effect.gen(function*() {
      const first = yield* submit("p1")
      assert.strictEqual(statusOf(first), 202)
      const ticket = yield* storedTicket("p1")
      assert.isDefined(ticket)
      glitches.insert = "lost" // the retry's insert meets the stored ticket (DuplicateKey), and times out
      const retry = yield* submit("p1")
      assert.deepStrictEqual(yield* storedTicket("p1"), ticket)
      assert.strictEqual(yield* workflowStatus("p1"), "RUNNING")
      assert.strictEqual(statusOf(retry), 202, JSON.stringify(retry))
      assert.deepStrictEqual(retry.steps.workflow, { status: "ok", detail: "already started" })
      assert.deepStrictEqual(retry.steps.persistence, { status: "ok", detail: "already stored" })
    }).pipe(Effect.provide(layer))
  })

  it.effect("a retry whose insert does not run and whose delete fails (MongoDB gone) keeps them too: 502", () => {
    const { glitches, layer } = harness()
    return Effect.gen(function*() {
      assert.strictEqual(statusOf(yield* submit("p2")), 202)
      const ticket = yield* storedTicket("p2")
      glitches.insert = "unwritten"
      glitches.delete = "fails"
      const retry = yield* submit("p2")
      glitches.delete = "none"
      assert.deepStrictEqual(yield* storedTicket("p2"), ticket)
      assert.strictEqual(yield* workflowStatus("p2"), "RUNNING")
      assert.strictEqual(statusOf(retry), 502)
      assert.deepStrictEqual(retry.steps.workflow, { status: "skipped", detail: "kept: started by an earlier attempt" })
    }).pipe(Effect.provide(layer))
  })

  it.effect("an attempt whose own insert landed but whose answer was lost deletes its ticket, terminates its run", () => {
    const { glitches, layer } = harness()
    return Effect.gen(function*() {
      glitches.insert = "lost"
      const report = yield* submit("p3")
      assert.strictEqual(statusOf(report), 502)
      assert.deepStrictEqual(report.steps.workflow, {
        status: "skipped",
        detail: "terminated: the ticket was not stored"
      })
      assert.isUndefined(yield* storedTicket("p3"))
      assert.strictEqual(yield* workflowStatus("p3"), "TERMINATED")
      // The client's retry, MongoDB back: a new run, the ticket stored, 202.
      glitches.insert = "none"
      const retry = yield* submit("p3")
      assert.strictEqual(statusOf(retry), 202)
      assert.deepStrictEqual(retry.steps.workflow, { status: "ok", detail: "started" })
      assert.strictEqual(yield* workflowStatus("p3"), "RUNNING")
    }).pipe(Effect.provide(layer))
  })

  it.effect("an attempt whose own insert and delete both fail still terminates the run it started: 502", () => {
    const { glitches, layer } = harness()
    return Effect.gen(function*() {
      glitches.insert = "unwritten"
      glitches.delete = "fails"
      const report = yield* submit("p4")
      assert.strictEqual(statusOf(report), 502)
      assert.strictEqual(yield* workflowStatus("p4"), "TERMINATED")
      assert.isUndefined(yield* storedTicket("p4"))
    }).pipe(Effect.provide(layer))
  })

  it.effect("a start whose answer is lost terminates the workflow only when its memo names this attempt", () => {
    const { glitches, layer } = harness()
    return Effect.gen(function*() {
      // The start landed (this attempt's memo): terminated.
      glitches.start = "lost"
      const own = yield* submit("p5")
      assert.strictEqual(statusOf(own), 502)
      assert.strictEqual(own.steps.workflow.status, "failed")
      assert.strictEqual(yield* workflowStatus("p5"), "TERMINATED")

      // An accepted plan; the retry's start finds it already started, and its answer is lost: untouched.
      glitches.start = "none"
      assert.strictEqual(statusOf(yield* submit("p6")), 202)
      glitches.start = "lost"
      const retry = yield* submit("p6")
      assert.strictEqual(statusOf(retry), 502)
      assert.strictEqual(yield* workflowStatus("p6"), "RUNNING")
      assert.isDefined(yield* storedTicket("p6"))
    }).pipe(Effect.provide(layer))
  })

  it.effect("the same id with other steps is a 409 naming both hashes; the stored plan and its workflow stay", () => {
    const { layer } = harness()
    return Effect.gen(function*() {
      assert.strictEqual(statusOf(yield* submit("p7", ["a", "b"])), 202)
      const ticket = yield* storedTicket("p7")
      const other = yield* submit("p7", ["a", "c"])
      assert.strictEqual(statusOf(other), 409, JSON.stringify(other))
      assert.strictEqual(ticket?.["planHash"], hashOf("p7", ["a", "b"]))
      assert.deepStrictEqual(other.steps.persistence, {
        status: "conflict",
        detail: "plan p7 is already stored with other steps",
        planHash: hashOf("p7", ["a", "c"]),
        storedPlanHash: hashOf("p7", ["a", "b"])
      })
      assert.deepStrictEqual(yield* storedTicket("p7"), ticket)
      assert.strictEqual(yield* workflowStatus("p7"), "RUNNING")
      // The same steps again: 202, as the first answer.
      assert.strictEqual(statusOf(yield* submit("p7", ["a", "b"])), 202)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a plan refused once, then sent with other steps, stores the new steps (the cache is no authority)", () => {
    const { glitches, layer } = harness()
    return Effect.gen(function*() {
      glitches.insert = "unwritten"
      assert.strictEqual(statusOf(yield* submit("p8", ["old"])), 502)
      glitches.insert = "none"
      const retry = yield* submit("p8", ["new"])
      assert.strictEqual(statusOf(retry), 202, JSON.stringify(retry))
      assert.deepStrictEqual((yield* storedTicket("p8"))?.["steps"], ["new"])
    }).pipe(Effect.provide(layer))
  })
})

// -----------------------------------------------------------------------------
// The real servers: Temporal, and MongoDB behind a fault proxy; Kafka and Redis embedded (the fault switch).
// -----------------------------------------------------------------------------

/** MongoDB's calls time out at 0.5 s, so a MongoDB slowed by one second fails the retry's insert. */
const realSettings = OrchestratorConfig.parse(
  `
circuitBreaker:
  kafka:    { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
  temporal: { failMax: 10, timeoutSeconds: 1, recoveryTimeoutSeconds: 1, callTimeoutSeconds: 5 }
  redis:    { failMax: 3, timeoutSeconds: 1, recoveryTimeoutSeconds: 1 }
  mongodb:  { failMax: 10, timeoutSeconds: 1, recoveryTimeoutSeconds: 1, callTimeoutSeconds: 0.5 }
`
)

let mongoProxy: FaultProxy
beforeAll(async () => {
  mongoProxy = await FaultProxy.start({ targetPort: Number(new URL(inject("mongodbUrl")).port) })
})
afterAll(async () => {
  await mongoProxy?.close()
})

const realConfig = (): AppConfig => ({
  resilienceConfig: "(inline)",
  service: "orchestrator-dynamic",
  host: "127.0.0.1",
  port: 0,
  adminToken: undefined,
  kafkaBrokers: undefined,
  temporalAddress: inject("temporalAddress"),
  temporalNamespace: "default",
  redisUrl: undefined,
  mongodbUrl: Redacted.make(`mongodb://${mongoProxy.address}/orchestrator`),
  faults: {},
  faultSwitch: true
})

const boot = () =>
  Layer.unwrap(Effect.map(realSettings, (settings) => App.make(realConfig(), settings))).pipe(
    Layer.provide(Logger.layer([Logger.consoleJson])),
    Layer.provideMerge(TestConsole.layer)
  )

const http = (path: string, body?: unknown) =>
  Effect.gen(function*() {
    const address = (yield* HttpServer.HttpServer).address
    const url = `http://127.0.0.1:${"port" in address ? address.port : 0}${path}`
    return yield* Effect.promise(async () => {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(10_000)
      })
      return { status: response.status, body: JSON.parse(await response.text()) }
    })
  })

const postPlan = (id: string, steps: ReadonlyArray<string> = ["plan", "execute"]) => http("/plans", { id, steps })

/** The ticket as MongoDB has it, read directly (not through the proxy). */
const readTicket = (id: string) =>
  Effect.promise(async () => {
    const client = new MongoClient(inject("mongodbUrl"), { serverSelectionTimeoutMS: 5000 })
    try {
      return await client.db("orchestrator").collection("tickets").findOne({ _id: `ticket-${id}` as never })
    } finally {
      await client.close()
    }
  })

/** The workflow's status as Temporal has it. */
const readWorkflow = (id: string) =>
  Effect.promise(async () => {
    const connection = await Connection.connect({ address: inject("temporalAddress") })
    try {
      return (await new Client({ connection, namespace: "default" }).workflow.getHandle(`plan-${id}`).describe())
        .status.name
    } finally {
      await connection.close()
    }
  })

describe("each attempt undoes only what it made (real Temporal and MongoDB)", () => {
  it.live(
    "accepted while Kafka is down, retried while MongoDB is slow for one second: the ticket and workflow stay",
    () =>
      Effect.gen(function*() {
        const id = `own-slow-${Date.now()}`
        assert.strictEqual((yield* http("/faults/kafka/down")).status, 200)
        const first = yield* postPlan(id)
        assert.strictEqual(first.status, 202, JSON.stringify(first.body))
        const before = yield* readTicket(id)
        assert.strictEqual(before?.["outbox"].state, "pending")

        mongoProxy.delay(1000)
        const retry = yield* postPlan(id).pipe(Effect.ensuring(Effect.sleep("1500 millis")))
        mongoProxy.pass()
        // The delayed commands have reached MongoDB by now: the first attempt's ticket is still there, pending.
        assert.deepStrictEqual(yield* readTicket(id), before)
        assert.strictEqual(yield* readWorkflow(id), "RUNNING")
        // The retry could not know: 502 (its insert timed out), never a compensation of the first attempt.
        assert.strictEqual(retry.status, 502, JSON.stringify(retry.body))
        assert.strictEqual(retry.body.steps.persistence.status, "failed")
        assert.deepStrictEqual(retry.body.steps.workflow, {
          status: "skipped",
          detail: "kept: started by an earlier attempt"
        })
        assert.isString(before?.["attempt"])

        // MongoDB back: the retry answers as the first attempt did.
        const again = yield* eventually(postPlan(id), (r) => r.status === 202, 10_000)
        assert.deepStrictEqual(again.body.steps.persistence, { status: "ok", detail: "already stored" })
        assert.deepStrictEqual(again.body.steps.workflow, { status: "ok", detail: "already started" })
      }).pipe(Effect.ensuring(Effect.sync(() => mongoProxy.pass())), Effect.provide(boot())),
    30_000
  )

  it.live(
    "a published ticket, retried while MongoDB is down: its workflow is not terminated",
    () =>
      Effect.gen(function*() {
        const id = `own-down-${Date.now()}`
        assert.strictEqual((yield* postPlan(id)).status, 202)
        yield* eventually(readTicket(id), (t) => t?.["outbox"].state === "published", 10_000)

        mongoProxy.refuse()
        mongoProxy.cut()
        const retry = yield* postPlan(id)
        assert.strictEqual(retry.status, 502, JSON.stringify(retry.body))
        assert.strictEqual(yield* readWorkflow(id), "RUNNING")
        assert.deepStrictEqual(retry.body.steps.workflow, {
          status: "skipped",
          detail: "kept: started by an earlier attempt"
        })
        mongoProxy.pass()
        assert.strictEqual((yield* readTicket(id))?.["outbox"].state, "published")
      }).pipe(Effect.ensuring(Effect.sync(() => mongoProxy.pass())), Effect.provide(boot())),
    30_000
  )

  it.live(
    "the same id with other steps: 409 with both hashes; the stored plan and its workflow stay",
    () =>
      Effect.gen(function*() {
        const id = `own-409-${Date.now()}`
        assert.strictEqual((yield* postPlan(id, ["a", "b"])).status, 202)
        const before = yield* readTicket(id)
        const other = yield* postPlan(id, ["a", "c"])
        assert.strictEqual(other.status, 409, JSON.stringify(other.body))
        assert.strictEqual(before?.["planHash"], hashOf(id, ["a", "b"]))
        assert.strictEqual(other.body.planId, id)
        assert.strictEqual(other.body.steps.persistence.planHash, hashOf(id, ["a", "c"]))
        assert.strictEqual(other.body.steps.persistence.storedPlanHash, hashOf(id, ["a", "b"]))
        assert.deepStrictEqual((yield* readTicket(id))?.["steps"], ["a", "b"])
        assert.strictEqual(yield* readWorkflow(id), "RUNNING")
      }).pipe(Effect.provide(boot())),
    30_000
  )
})
