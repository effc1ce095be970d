/**
 * What trips `temporal_client`, in the corners the classification table leaves: a connection failure
 * told by a socket code or by the message of a cause that is not gRPC, and the message an SDK error
 * gets from its cause. Written for behaviour a mutation run showed unpinned (docs/testing.md,
 * "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { TemporalClient } from "@neural-hive/temporal"
import { ServiceError } from "@temporalio/client"

const toError = (cause: unknown) => TemporalClient.toTemporalError("startWorkflow", cause)

describe("TemporalClient classification: outside the table", () => {
  it("a system error code means no connection, whatever the message says; a Node ERR_ code does not", () => {
    const reset = toError(Object.assign(new Error("socket hang up"), { code: "ECONNABORTED" }))
    assert.strictEqual(reset.reason, "Connection")
    assert.isTrue(TemporalClient.isFailure(reset))
    assert.strictEqual(toError(Object.assign(new Error("bad"), { code: "ERR_INVALID_URL" })).reason, "Unknown")
  })

  it("an SDK error whose cause is not gRPC is told by the cause's message", () => {
    const refused = new ServiceError("Failed to connect", { cause: new Error("connect ECONNREFUSED 127.0.0.1:7233") })
    const error = toError(refused)
    assert.strictEqual(error.reason, "Connection")
    assert.isUndefined(error.grpcCode)
    assert.strictEqual(error.message, "Failed to connect: connect ECONNREFUSED 127.0.0.1:7233")
    const plain = toError(new Error("dial failed", { cause: new Error("Connection dropped") }))
    assert.deepStrictEqual([plain.reason, plain.grpcCode], ["Connection", undefined])
  })

  it("the message adds the cause's only when it says something new", () => {
    assert.strictEqual(
      toError(new ServiceError("Failed to start", { cause: new Error("") })).message,
      "Failed to start"
    )
    assert.strictEqual(
      toError(new ServiceError("Failed: deadline", { cause: new Error("deadline") })).message,
      "Failed: deadline"
    )
  })

  it("a thrown value that is not an Error is Unknown, whatever its text", () => {
    const error = toError("connect ECONNREFUSED 127.0.0.1:7233")
    assert.strictEqual(error.reason, "Unknown")
    assert.strictEqual(error.message, "connect ECONNREFUSED 127.0.0.1:7233")
    assert.isTrue(TemporalClient.isFailure(error))
  })
})
