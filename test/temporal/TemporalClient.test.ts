/**
 * The Temporal classification table, without a server: every error the SDK throws maps to one
 * `TemporalError` reason, and every reason counts except the workflow-level answers (the caller's).
 */
import { assert, describe, it } from "@effect/vitest"
import { Metadata, status } from "@grpc/grpc-js"
import { TemporalClient, TemporalError } from "@neural-hive/temporal"
import {
  NamespaceNotFoundError,
  QueryNotRegisteredError,
  QueryRejectedError,
  ServiceError,
  ValueError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError
} from "@temporalio/client"
import { Effect } from "effect"

/** An error shaped like the ones @grpc/grpc-js rejects calls with. */
const grpcError = (code: number, details: string) =>
  Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() })

/** As the SDK throws them: a ServiceError with the gRPC error as its cause. */
const serviceError = (code: number, details: string) =>
  new ServiceError("Failed to start Workflow", { cause: grpcError(code, details) })

const table: ReadonlyArray<readonly [string, unknown, TemporalError["reason"], boolean]> = [
  [
    "UNAVAILABLE, never connected",
    serviceError(status.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:7233"),
    "Connection",
    true
  ],
  ["UNAVAILABLE, connection dropped", serviceError(status.UNAVAILABLE, "Connection dropped"), "Connection", true],
  ["UNAVAILABLE from the server", serviceError(status.UNAVAILABLE, "Frontend is shutting down"), "Unavailable", true],
  ["DEADLINE_EXCEEDED", serviceError(status.DEADLINE_EXCEEDED, "Deadline exceeded"), "DeadlineExceeded", true],
  [
    "RESOURCE_EXHAUSTED",
    serviceError(status.RESOURCE_EXHAUSTED, "namespace rate limit exceeded"),
    "ResourceExhausted",
    true
  ],
  ["a raw gRPC error", grpcError(status.UNAVAILABLE, "Connection dropped"), "Connection", true],
  ["CANCELLED by a closed channel", serviceError(status.CANCELLED, "Channel closed"), "Connection", true],
  ["INTERNAL RST_STREAM", serviceError(status.INTERNAL, "Received RST_STREAM with code 2"), "Connection", true],
  [
    "ECONNREFUSED outside gRPC",
    Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    "Connection",
    true
  ],
  [
    "already started",
    new WorkflowExecutionAlreadyStartedError("Workflow execution already started", "w-1", "ticketWorkflow"),
    "AlreadyStarted",
    false
  ],
  ["ALREADY_EXISTS", serviceError(status.ALREADY_EXISTS, "exists"), "AlreadyStarted", false],
  ["workflow not found", new WorkflowNotFoundError("not found", "w-1", undefined), "NotFound", false],
  ["namespace not found", new NamespaceNotFoundError("nope"), "NotFound", false],
  ["NOT_FOUND", serviceError(status.NOT_FOUND, "not found"), "NotFound", false],
  ["query rejected", new QueryRejectedError(2), "QueryRejected", false],
  ["query not registered or failed", new QueryNotRegisteredError("no handler for status", 3), "QueryFailed", false],
  [
    "workflow failed",
    new WorkflowFailedError("Workflow execution failed", undefined, "NON_RETRYABLE_FAILURE"),
    "WorkflowFailed",
    false
  ],
  ["INVALID_ARGUMENT", serviceError(status.INVALID_ARGUMENT, "bad"), "InvalidArgument", false],
  ["FAILED_PRECONDITION", serviceError(status.FAILED_PRECONDITION, "bad"), "InvalidArgument", false],
  ["a value the SDK cannot convert", new ValueError("cannot encode"), "InvalidArgument", false],
  ["a TypeError", new TypeError("bad address"), "InvalidArgument", false],
  ["PERMISSION_DENIED", serviceError(status.PERMISSION_DENIED, "no"), "Authentication", true],
  ["UNAUTHENTICATED", serviceError(status.UNAUTHENTICATED, "bad API key"), "Authentication", true],
  // When in doubt, count: what this package does not recognise trips the breaker.
  ["INTERNAL, not a transport failure", serviceError(status.INTERNAL, "boom"), "Unknown", true],
  ["UNIMPLEMENTED", serviceError(status.UNIMPLEMENTED, "unknown method"), "Unknown", true],
  ["an Error nobody listed", new Error("something new"), "Unknown", true],
  ["something else", "a string", "Unknown", true]
]

describe("TemporalClient classification", () => {
  for (const [name, cause, reason, counts] of table) {
    it(`${name} -> ${reason}${counts ? " (counts)" : ""}`, () => {
      const error = TemporalClient.toTemporalError("startWorkflow", cause, "w-1")
      assert.instanceOf(error, TemporalError)
      assert.strictEqual(error.reason, reason)
      assert.strictEqual(error.operation, "startWorkflow")
      assert.strictEqual(error.workflowId, "w-1")
      assert.strictEqual(error.cause, cause)
      assert.strictEqual(TemporalClient.isFailure(error), counts)
    })
  }

  it("keeps the gRPC code and the inner message", () => {
    const error = TemporalClient.toTemporalError(
      "startWorkflow",
      serviceError(status.UNAVAILABLE, "Connection dropped")
    )
    assert.strictEqual(error.grpcCode, status.UNAVAILABLE)
    assert.match(error.message, /Failed to start Workflow: 14 UNAVAILABLE: Connection dropped/)
  })

  it("removes passwords from messages", () => {
    const error = TemporalClient.toTemporalError("connect", new Error("cannot reach https://ops:hunter2@temporal:7233"))
    assert.notInclude(error.message, "hunter2")
    assert.include(error.message, "ops:***@")
  })

  it("isFailure counts what is not a TemporalError: when in doubt, count", () => {
    assert.isTrue(TemporalClient.isFailure(new Error("x")))
    assert.isTrue(TemporalClient.isFailure(grpcError(status.UNAVAILABLE, "Connection dropped")))
    assert.isFalse(
      TemporalClient.isFailure(new TemporalError({ reason: "NotFound", operation: "describeWorkflow", message: "" }))
    )
  })

  it("connectionOptions: no SDK retries unless asked, a capped reconnect backoff", () => {
    const plain = TemporalClient.connectionOptions({ address: "127.0.0.1:7233" })
    assert.deepStrictEqual(plain.interceptors, [])
    assert.strictEqual(plain.channelArgs?.["grpc.max_reconnect_backoff_ms"], 2000)
    const retrying = TemporalClient.connectionOptions({
      address: "127.0.0.1:7233",
      grpcAttempts: 3,
      maxReconnectDelay: "1 second"
    })
    assert.strictEqual(retrying.interceptors?.length, 1)
    assert.strictEqual(retrying.channelArgs?.["grpc.max_reconnect_backoff_ms"], 1000)
  })

  it.effect("the layer starts without a server and names its breaker temporal_client", () =>
    Effect.gen(function*() {
      const { breaker } = yield* TemporalClient.TemporalClient
      assert.strictEqual(breaker.name, "temporal_client")
      assert.strictEqual(breaker.failureMode, "fail-fast")
      assert.strictEqual(yield* breaker.state, "Closed")
    }).pipe(Effect.provide(TemporalClient.layer({ address: "127.0.0.1:1" }))))
})
