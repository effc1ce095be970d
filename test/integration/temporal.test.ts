/**
 * TemporalClient against a real Temporal server (Temporal's Java test server) with a real
 * `@temporalio/worker` running the workflows of ./workflows/ticket.ts, and real faults: the
 * server killed and restarted, the connection stalled through a fault proxy, the process paused.
 * An idle breaker closes by itself (its gRPC health-check probe) once the server is back; an error
 * this package does not recognise (UNIMPLEMENTED) counts.
 *
 * The client goes through the proxy; the worker connects to the server directly, so a proxy
 * fault cuts only the client off.
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, type CircuitBreakerError, Hedge, Registry } from "@neural-hive/resilience"
import { TemporalClient, TemporalError } from "@neural-hive/temporal"
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from "@temporalio/worker"
import type { WorkflowBundleWithSourceMap } from "@temporalio/worker"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { freePort, type ServerHandle, startTemporal } from "../../tools/rig/servers.ts"
import { eventually } from "./eventually.ts"
import { approveSignal, brokenQuery, statusQuery } from "./workflows/ticket.ts"

const FAIL_MAX = 3
const RECOVERY_MILLIS = 1500
// Generous: a query waits for the worker, and the machine may be busy with other suites.
const RPC_TIMEOUT_MILLIS = 8000
// The deadline of the stall and pause tests, where every failing call waits for it.
const SHORT_RPC_TIMEOUT_MILLIS = 1000
const PROBE_GRACE_MILLIS = 100

let server: ServerHandle
let proxy: FaultProxy
let bundle: WorkflowBundleWithSourceMap
let workerConnection: NativeConnection

beforeAll(async () => {
  // The worker's own log: warnings about failed workflows are expected here.
  Runtime.install({ logger: new DefaultLogger("ERROR") })
  server = await startTemporal()
  proxy = await FaultProxy.start({ targetPort: server.port })
  // Bundling the workflows (webpack + swc) is the slow part: once per file.
  bundle = await bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL("./workflows/ticket.ts", import.meta.url)),
    logger: new DefaultLogger("ERROR")
  })
  workerConnection = await NativeConnection.connect({ address: server.endpoint })
}, 180_000)

afterAll(async () => {
  await workerConnection?.close()
  await proxy?.close()
  await server?.stop()
})

const clientLayer = (options: Partial<TemporalClient.Options> = {}) =>
  TemporalClient.layer({
    address: proxy.address,
    rpcTimeout: RPC_TIMEOUT_MILLIS,
    maxReconnectDelay: "200 millis",
    // The fault scenarios recover through a real call; a long grace keeps the idle probe out of their way.
    breaker: {
      failMax: FAIL_MAX,
      recoveryTimeout: RECOVERY_MILLIS,
      maxOpenDuration: RECOVERY_MILLIS,
      probeGrace: "1 minute"
    },
    ...options
  })

const temporal = TemporalClient.TemporalClient

/** A real worker on a fresh task queue for the life of the scope. */
const worker = Effect.acquireRelease(
  Effect.promise(async () => {
    const taskQueue = `tickets-${randomUUID()}`
    const created = await Worker.create({
      connection: workerConnection,
      namespace: "default",
      taskQueue,
      workflowBundle: bundle
    })
    const running = created.run()
    return { taskQueue, created, running }
  }),
  ({ created, running }) =>
    Effect.promise(async () => {
      if (created.getState() === "RUNNING") created.shutdown()
      await running.catch(() => undefined)
    }).pipe(Effect.timeout("10 seconds"), Effect.ignore)
)

/** A test that kills the server brings it back even when it fails half-way, so the next tests have one. */
const reviveServer = Effect.promise(async () => {
  if (!server.running) await server.restart()
})

const startTicket = (taskQueue: string, workflowId = `ticket-${randomUUID()}`) =>
  Effect.gen(function*() {
    const client = yield* temporal
    return yield* client.startWorkflow("ticketWorkflow", { taskQueue, workflowId, args: [workflowId] })
  })

/**
 * A started workflow its worker has answered a query for: on a busy machine a cold server or worker may
 * miss the first deadlines, so this retries (bounded) before a fault scenario begins.
 */
const warmStart = (taskQueue: string) =>
  eventually(
    // A fresh workflow id per attempt: a start that timed out may still have happened.
    Effect.suspend(() => startTicket(taskQueue)).pipe(
      Effect.flatMap((handle) => Effect.as(handle.query(statusQuery), handle))
    ),
    () => true,
    30_000
  )

/** Starts workflows until the breaker opens; each failure must be a TemporalError the classifier counts. */
const failUntilOpen = (taskQueue: string, expected: ReadonlyArray<TemporalError["reason"]>) =>
  Effect.gen(function*() {
    const { breaker } = yield* temporal
    let calls = 0
    while ((yield* breaker.state) !== "Open") {
      const error = yield* Effect.flip(startTicket(taskQueue))
      assert.strictEqual(error._tag, "TemporalError", `expected a TemporalError, got ${error.message}`)
      const reason = (error as TemporalError).reason
      assert.include(expected, reason, error.message)
      assert.isTrue(TemporalClient.isFailure(error))
      calls++
      assert.isBelow(calls, 30, "the breaker never opened")
    }
    return calls
  })

/**
 * While open: workflows cannot be started, every call fails with CircuitBreakerError at once, and
 * nothing reaches the network (the breaker closed the connection when it opened).
 */
const assertFailsFastWithoutConnecting = (taskQueue: string) =>
  Effect.gen(function*() {
    const client = yield* temporal
    yield* Effect.sleep("150 millis") // let the connection close that the opening started
    const accepted = proxy.connectionsAccepted
    const started = Date.now()
    const notStarted: Array<string> = []
    for (let i = 0; i < 10; i++) {
      const workflowId = `ticket-${randomUUID()}`
      notStarted.push(workflowId)
      const rejected: Array<TemporalError | CircuitBreakerError> = [
        yield* Effect.flip(startTicket(taskQueue, workflowId)),
        yield* Effect.flip(client.getWorkflowHandle("ticket-any")),
        yield* Effect.flip(client.queryWorkflow("ticket-any", statusQuery)),
        yield* Effect.flip(client.describeWorkflow("ticket-any")),
        yield* Effect.flip(client.signalWorkflow("ticket-any", approveSignal, "ana"))
      ]
      for (const error of rejected) {
        assert.strictEqual(error._tag, "CircuitBreakerError")
        assert.strictEqual(error._tag === "CircuitBreakerError" && error.circuit, "temporal_client")
      }
    }
    assert.isBelow(Date.now() - started, 200, "rejections must not wait for the network")
    yield* Effect.sleep("300 millis")
    assert.strictEqual(proxy.connectionsAccepted, accepted, "no connection attempt while open")
    const snapshot = yield* client.breaker.snapshot
    assert.strictEqual(snapshot.state, "Open")
    assert.isAtLeast(snapshot.totals.rejected, 50)
    return notStarted
  })

/** After the open period one probe (a workflow start) closes the breaker. */
const assertRecovers = (taskQueue: string) =>
  Effect.gen(function*() {
    const { breaker } = yield* temporal
    yield* eventually(breaker.state, (s) => s === "HalfOpen", RECOVERY_MILLIS * 3)
    const before = (yield* breaker.snapshot).totals
    const handle = yield* startTicket(taskQueue)
    assert.strictEqual(yield* breaker.state, "Closed")
    const after = (yield* breaker.snapshot).totals
    assert.strictEqual(after.successes - before.successes, 1, "one probe closed the breaker")
    assert.strictEqual(after.failures, before.failures)
    return handle
  })

describe("TemporalClient on a real Temporal server with a real worker", () => {
  it.live("start, get handle, query, signal and describe go through the breaker", () =>
    Effect.gen(function*() {
      const { taskQueue } = yield* worker
      const client = yield* temporal
      const workflowId = `ticket-${randomUUID()}`
      const started = yield* startTicket(taskQueue, workflowId)
      assert.strictEqual(started.workflowId, workflowId)
      assert.isString(started.runId)

      const handle = yield* client.getWorkflowHandle(workflowId)
      assert.strictEqual(handle.runId, started.runId)
      assert.strictEqual(yield* client.queryWorkflow(workflowId, statusQuery), `waiting:${workflowId}`)
      assert.strictEqual(yield* handle.query<string>("status"), `waiting:${workflowId}`)

      const running = yield* client.describeWorkflow(workflowId)
      assert.strictEqual(running.status.name, "RUNNING")
      assert.strictEqual(running.type, "ticketWorkflow")
      assert.strictEqual(running.taskQueue, taskQueue)

      yield* client.signalWorkflow(workflowId, approveSignal, "ana")
      const completed = yield* eventually(handle.describe, (d) => d.status.name === "COMPLETED")
      assert.strictEqual(completed.runId, started.runId)
      assert.strictEqual(yield* handle.query(statusQuery), "approved by ana")

      const snapshot = yield* client.breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.name, "temporal_client")
      assert.strictEqual(snapshot.failureMode, "fail-fast")
      assert.strictEqual(snapshot.totals.failures, 0)
      assert.isAtLeast(snapshot.totals.successes, 8)
    }).pipe(Effect.provide(clientLayer())), 60_000)

  it.live(
    "policies: a start takes a slot of the adaptive limit and is never hedged; a late describe is hedged",
    () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "temporal_client", delay: "20 millis" })
        const bulkhead = yield* Bulkhead.adaptive({ name: "temporal_client", initialLimit: 20, maxLimit: 100 })
        yield* Effect.gen(function*() {
          const { taskQueue } = yield* worker
          const client = yield* temporal
          yield* warmStart(taskQueue)
          const [entry] = yield* (yield* Registry.Registry).policies
          assert.strictEqual(entry?.policies.bulkhead, bulkhead)
          const hedgedBefore = hedge.stats().hedged
          // Every chunk 150 ms late each way: far past the 20 ms hedging delay, well within the call's deadline
          // (the counts, not the times, are checked).
          yield* Effect.promise(() => proxy.delay(150))
          const started = yield* startTicket(taskQueue)
          assert.strictEqual(hedge.stats().hedged, hedgedBefore)
          const described = yield* client.describeWorkflow(started.workflowId)
          assert.strictEqual(described.status.name, "RUNNING")
          assert.strictEqual(hedge.stats().hedged, hedgedBefore + 1)
          assert.deepInclude(bulkhead.stats(), { inFlight: 0, rejected: 0 })
          assert.isAtLeast(bulkhead.stats().admitted, 3)
        }).pipe(
          Effect.ensuring(Effect.promise(() => proxy.pass())),
          Effect.provide(
            Layer.fresh(clientLayer({ policies: { hedge, bulkhead } })).pipe(Layer.provideMerge(Registry.layer))
          )
        )
      }),
    60_000
  )

  it.live("workflow-level answers reach the caller typed and never move the breaker", () =>
    Effect.gen(function*() {
      const { taskQueue } = yield* worker
      const client = yield* temporal
      const workflowId = `ticket-${randomUUID()}`
      yield* startTicket(taskQueue, workflowId)
      yield* eventually(client.queryWorkflow(workflowId, statusQuery), (s) => s.startsWith("waiting"))

      const reasons: Array<string> = []
      const expectReason = <A, R>(
        effect: Effect.Effect<A, TemporalError | CircuitBreakerError, R>,
        reason: TemporalError["reason"]
      ) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(effect)
          assert.instanceOf(error, TemporalError, error.message)
          assert.strictEqual((error as TemporalError).reason, reason, error.message)
          assert.isFalse(TemporalClient.isFailure(error))
          reasons.push(reason)
          return error as TemporalError
        })

      // "already started", FAIL_MAX * 2 times: more than enough to open a breaker that counted it
      for (let i = 0; i < FAIL_MAX * 2; i++) {
        const error = yield* expectReason(startTicket(taskQueue, workflowId), "AlreadyStarted")
        assert.strictEqual(error.workflowId, workflowId)
        assert.strictEqual(error.operation, "startWorkflow")
      }
      yield* expectReason(client.getWorkflowHandle(`missing-${randomUUID()}`), "NotFound")
      yield* expectReason(client.describeWorkflow(`missing-${randomUUID()}`), "NotFound")
      yield* expectReason(client.signalWorkflow(`missing-${randomUUID()}`, approveSignal, "ana"), "NotFound")
      yield* expectReason(client.queryWorkflow(workflowId, brokenQuery), "QueryFailed")
      yield* expectReason(client.queryWorkflow(workflowId, "no-such-query"), "QueryFailed")

      const failedId = `failing-${randomUUID()}`
      yield* client.startWorkflow("failingWorkflow", { taskQueue, workflowId: failedId, args: ["ticket rejected"] })
      const failed = yield* expectReason(
        client.use("workflowResult", (c) => c.workflow.result(failedId)),
        "WorkflowFailed"
      )
      assert.match(failed.message, /ticket rejected/)

      const snapshot = yield* client.breaker.snapshot
      assert.strictEqual(snapshot.state, "Closed")
      assert.strictEqual(snapshot.totals.failures, 0)
      assert.strictEqual(snapshot.totals.ignored, reasons.length)
      assert.strictEqual(reasons.length, FAIL_MAX * 2 + 6)
    }).pipe(Effect.provide(clientLayer())), 60_000)

  it.live(
    "a query rejected for the workflow's status is typed QueryRejected and never moves the breaker",
    () =>
      Effect.gen(function*() {
        const { taskQueue } = yield* worker
        const client = yield* temporal
        const handle = yield* startTicket(taskQueue)
        yield* client.signalWorkflow(handle.workflowId, approveSignal, "ana")
        yield* eventually(handle.describe, (d) => d.status.name === "COMPLETED")
        for (let i = 0; i < FAIL_MAX * 2; i++) {
          const error = yield* Effect.flip(client.queryWorkflow(handle.workflowId, statusQuery))
          assert.strictEqual(error._tag === "TemporalError" && error.reason, "QueryRejected", error.message)
        }
        const snapshot = yield* client.breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.totals.failures, 0)
        assert.strictEqual(snapshot.totals.ignored, FAIL_MAX * 2)
      }).pipe(
        // The SDK's client option: reject queries on workflows that are no longer running.
        Effect.provide(clientLayer({ clientOptions: { workflow: { queryRejectCondition: "NOT_OPEN" } } }))
      ),
    60_000
  )

  it.live(
    "server killed: opens after failMax, fails fast without connecting, one probe closes it",
    () =>
      Effect.gen(function*() {
        const { taskQueue } = yield* worker
        const handle = yield* warmStart(taskQueue)
        assert.strictEqual(yield* handle.query(statusQuery), `waiting:${handle.workflowId}`)

        yield* Effect.promise(() => server.kill())
        const calls = yield* failUntilOpen(taskQueue, ["Connection", "Unavailable"])
        assert.strictEqual(calls, FAIL_MAX)
        yield* assertFailsFastWithoutConnecting(taskQueue)

        yield* Effect.promise(() => server.restart())
        // The test server keeps no state: the workflow started before the crash is gone.
        const probe = yield* assertRecovers(taskQueue)
        const described = yield* eventually(probe.describe, (d) => d.status.name === "RUNNING")
        assert.strictEqual(described.workflowId, probe.workflowId)
      }).pipe(Effect.ensuring(reviveServer), Effect.provide(clientLayer())),
    90_000
  )

  it.live(
    "connection stalled: each call ends at its deadline, counts, and opens the breaker",
    () =>
      Effect.gen(function*() {
        const { taskQueue } = yield* worker
        const { breaker, describeWorkflow } = yield* temporal
        const handle = yield* warmStart(taskQueue)

        yield* Effect.promise(() => proxy.stall())
        const started = Date.now()
        const calls = yield* failUntilOpen(taskQueue, ["DeadlineExceeded"])
        const elapsed = Date.now() - started
        assert.strictEqual(calls, FAIL_MAX)
        // Each call waited its deadline, not more.
        assert.isAtLeast(elapsed, FAIL_MAX * SHORT_RPC_TIMEOUT_MILLIS - 50)
        assert.isBelow(elapsed, FAIL_MAX * (SHORT_RPC_TIMEOUT_MILLIS + 700))
        assert.match((yield* breaker.snapshot).lastError ?? "", /no answer within 1000 ms/)
        const notStarted = yield* assertFailsFastWithoutConnecting(taskQueue)

        yield* Effect.promise(() => proxy.pass())
        yield* assertRecovers(taskQueue)
        // The worker never lost the server: the workflow started before the stall still answers.
        assert.strictEqual(yield* handle.query(statusQuery), `waiting:${handle.workflowId}`)
        assert.strictEqual((yield* describeWorkflow(handle.workflowId)).status.name, "RUNNING")
        // Open circuit: the server kept its state, and none of the starts rejected while open exists.
        for (const workflowId of notStarted) {
          const error = yield* Effect.flip(describeWorkflow(workflowId))
          assert.strictEqual(error._tag === "TemporalError" && error.reason, "NotFound", error.message)
        }
      }).pipe(
        Effect.ensuring(Effect.promise(() => proxy.pass())),
        Effect.provide(clientLayer({ rpcTimeout: SHORT_RPC_TIMEOUT_MILLIS }))
      ),
    60_000
  )

  it.live(
    "server paused (SIGSTOP): deadlines open the breaker; resumed, one probe closes it",
    () =>
      Effect.gen(function*() {
        const { taskQueue } = yield* worker
        yield* warmStart(taskQueue)
        server.pause()
        const calls = yield* Effect.ensuring(
          failUntilOpen(taskQueue, ["DeadlineExceeded"]),
          Effect.sync(() => server.resume())
        )
        assert.strictEqual(calls, FAIL_MAX)
        const probe = yield* assertRecovers(taskQueue)
        assert.strictEqual(yield* probe.query(statusQuery), `waiting:${probe.workflowId}`)
      }).pipe(Effect.provide(clientLayer({ rpcTimeout: SHORT_RPC_TIMEOUT_MILLIS }))),
    60_000
  )

  it.live("starts while Temporal is unreachable, then works once it is back", () =>
    Effect.gen(function*() {
      const { taskQueue } = yield* worker
      const { breaker } = yield* temporal
      // The start check (the gRPC health check) already counted the unreachable server.
      const started = yield* breaker.snapshot
      assert.strictEqual(started.totals.failures, 1)
      assert.match(started.lastError ?? "", /TemporalError/)
      const error = yield* Effect.flip(startTicket(taskQueue))
      assert.strictEqual(error._tag === "TemporalError" && error.reason, "Connection", error.message)
      assert.strictEqual((yield* breaker.snapshot).totals.failures, 2)
      yield* Effect.promise(() => proxy.pass())
      const handle = yield* eventually(startTicket(taskQueue), () => true)
      assert.strictEqual(yield* handle.query(statusQuery), `waiting:${handle.workflowId}`)
      assert.strictEqual(yield* breaker.state, "Closed")
    }).pipe(
      Effect.ensuring(Effect.promise(() => proxy.pass())),
      // The layer is built while the proxy refuses every connection.
      Effect.provide(Layer.unwrap(Effect.as(Effect.promise(() => proxy.refuse()), Layer.fresh(clientLayer()))))
    ), 60_000)

  it.live(
    "idle recovery: server killed, breaker open, server back, no call at all: the health-check probe closes it",
    () =>
      Effect.gen(function*() {
        const { taskQueue } = yield* worker
        const { breaker } = yield* temporal
        yield* warmStart(taskQueue)
        yield* Effect.promise(() => server.kill())
        yield* failUntilOpen(taskQueue, ["Connection", "Unavailable"])
        yield* Effect.promise(() => server.restart())
        // From here on nothing calls the client: only the breaker's own probe can close it.
        const back = performance.now()
        const before = (yield* breaker.snapshot).totals
        const bound = RECOVERY_MILLIS + PROBE_GRACE_MILLIS + 1_000
        yield* eventually(breaker.state, (state) => state === "Closed", bound + 3_000)
        const closedAfter = performance.now() - back
        const after = (yield* breaker.snapshot).totals
        assert.isBelow(closedAfter, bound, `closed ${Math.round(closedAfter)} ms after the server was back`)
        assert.strictEqual(after.rejected, before.rejected, "no call was made")
        assert.isAtLeast(after.successes - before.successes, 1, "the probe succeeded")
      }).pipe(
        Effect.ensuring(reviveServer),
        Effect.provide(
          clientLayer({
            breaker: {
              failMax: FAIL_MAX,
              recoveryTimeout: RECOVERY_MILLIS,
              maxOpenDuration: RECOVERY_MILLIS,
              probeGrace: PROBE_GRACE_MILLIS
            }
          })
        )
      ),
    90_000
  )

  it.live(
    "an error this package does not recognise counts: UNIMPLEMENTED from the server",
    () =>
      Effect.gen(function*() {
        const { breaker, use } = yield* temporal
        // The test server has no visibility store: listing workflows is not implemented there.
        for (let i = 1; i <= FAIL_MAX; i++) {
          const error = yield* Effect.flip(
            use("listWorkflows", (c) => c.workflowService.listWorkflowExecutions({ namespace: "default" }))
          )
          assert.strictEqual(error._tag === "TemporalError" && error.reason, "Unknown", error.message)
          assert.isTrue(TemporalClient.isFailure(error))
        }
        assert.strictEqual(yield* breaker.state, "Open")
      }).pipe(Effect.provide(clientLayer())),
    30_000
  )

  it.live("probe: false turns off the start check", () =>
    Effect.gen(function*() {
      const { breaker } = yield* temporal
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual([snapshot.totals.successes, snapshot.totals.failures], [0, 0])
    }).pipe(Effect.provide(Layer.fresh(clientLayer({ probe: false })))))

  it.live(
    "the breaker's own options: a forced-open breaker rejects without a connection attempt",
    () =>
      Effect.gen(function*() {
        const { taskQueue } = yield* worker
        const { breaker } = yield* temporal
        yield* startTicket(taskQueue)
        yield* breaker.forceOpen
        yield* Effect.sleep("150 millis")
        const accepted = proxy.connectionsAccepted
        const error = yield* Effect.flip(startTicket(taskQueue))
        assert.strictEqual(error._tag === "CircuitBreakerError" && error.reason, "ForcedOpen")
        assert.strictEqual(proxy.connectionsAccepted, accepted)
        yield* breaker.reset
        const handle = yield* startTicket(taskQueue)
        assert.strictEqual(yield* handle.query(statusQuery), `waiting:${handle.workflowId}`)
        assert.isAbove(proxy.connectionsAccepted, accepted, "a fresh connection after the reset")
      }).pipe(Effect.provide(clientLayer())),
    60_000
  )

  it.live("a bad address fails the layer with a typed error", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => freePort())
      const error = yield* Effect.flip(
        Effect.provide(
          Effect.gen(function*() {
            return yield* temporal
          }),
          TemporalClient.layer({ address: `127.0.0.1:${port}:bad` })
        )
      )
      assert.strictEqual(error._tag, "TemporalError")
      assert.strictEqual(error._tag === "TemporalError" && error.reason, "InvalidArgument")
    }))
})
