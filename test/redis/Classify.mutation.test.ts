/**
 * The Redis classifier on ioredis's own error objects: what counts against `redis_client` and what
 * is the caller's. Only what the classifier's table in docs/integrations.md promises is asserted,
 * so the test holds while reasons are added.
 */
import { assert, describe, it } from "@effect/vitest"
import { RedisCache } from "@neural-hive/redis"
import { ReplyError } from "ioredis"

const classify = (cause: unknown) => {
  const error = RedisCache.toRedisError("GET", cause)
  return { reason: error.reason, counts: RedisCache.isFailure(error), error }
}

describe("RedisCache classification", () => {
  const cases: ReadonlyArray<readonly [string, unknown, string | undefined, boolean]> = [
    [
      "WRONGTYPE reply",
      new ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value"),
      "Reply",
      false
    ],
    ["LOADING reply", new ReplyError("LOADING Redis is loading the dataset in memory"), "Unavailable", true],
    ["BUSY reply", new ReplyError("BUSY Redis is busy running a script"), "Unavailable", true],
    ["READONLY reply", new ReplyError("READONLY You can't write against a read only replica."), "Unavailable", true],
    ["command timeout", new Error("Command timed out"), "Timeout", true],
    ["socket timeout", Object.assign(new Error("connect ETIMEDOUT"), { code: "ETIMEDOUT" }), "Timeout", true],
    [
      "connection refused",
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" }),
      "Connection",
      true
    ],
    ["closed connection", new Error("Connection is closed."), "Connection", true],
    ["a value that is not an Error", "boom", undefined, true]
  ]
  for (const [title, cause, reason, counts] of cases) {
    it(`${title}: ${reason ?? "any reason"}, ${counts ? "counts" : "does not count"}`, () => {
      const verdict = classify(cause)
      if (reason !== undefined) assert.strictEqual(verdict.reason, reason)
      assert.strictEqual(verdict.counts, counts)
      assert.strictEqual(verdict.error.command, "GET")
      assert.strictEqual(verdict.error.cause, cause)
    })
  }

  it("keeps the message without secrets; a non-Error is described by String", () => {
    assert.strictEqual(
      classify(new Error("connect to redis://app:s3cret@cache:6379 refused")).error.message,
      "connect to redis://app:***@cache:6379 refused"
    )
    assert.strictEqual(classify("boom").error.message, "boom")
  })

  it("a system error code means no connection, whatever the message says; a Node ERR_ code does not", () => {
    const aborted = classify(Object.assign(new Error("socket hang up"), { code: "ECONNABORTED" }))
    assert.deepStrictEqual([aborted.reason, aborted.counts], ["Connection", true])
    const other = classify(Object.assign(new Error("bad argument"), { code: "ERR_INVALID_ARG_TYPE" }))
    assert.deepStrictEqual([other.reason, other.counts], ["Unknown", true])
  })

  it("anything that is not a RedisError counts", () => {
    assert.isTrue(RedisCache.isFailure(new Error("something new")))
    assert.isTrue(RedisCache.isFailure(undefined))
  })
})
