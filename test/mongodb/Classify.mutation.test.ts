/**
 * What trips `mongodb_client`, in the corners the classification table leaves: errors that are not
 * the driver's (a Node error code, a TypeError from a bad argument), a driver error carrying a
 * socket-like code, and a server error whose code is not a number. Written for behaviour a mutation
 * run showed unpinned (docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { MongoStore } from "@neural-hive/mongodb"
import { MongoError, MongoServerError } from "mongodb"

const reasonOf = (cause: unknown) => MongoStore.toMongoStoreError("find", cause).reason

describe("MongoStore classification: outside the table", () => {
  it("a TypeError (a bad argument reaching the driver) is the caller's: BadQuery, not counted", () => {
    const error = MongoStore.toMongoStoreError("insertOne", new TypeError("Cannot read properties of undefined"))
    assert.strictEqual(error.reason, "BadQuery")
    assert.isFalse(MongoStore.isFailure(error))
  })

  it("only a system error code (E + capitals) is a network failure; a Node ERR_ code or a number is not", () => {
    assert.strictEqual(reasonOf(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })), "Network")
    assert.strictEqual(reasonOf(Object.assign(new Error("bad"), { code: "ERR_INVALID_ARG_TYPE" })), "Unknown")
    assert.strictEqual(reasonOf(Object.assign(new Error("bad"), { code: 11000 })), "Unknown")
    assert.strictEqual(reasonOf("ECONNRESET"), "Unknown")
  })

  it("a driver error is Unknown and counts, even when it carries a socket-like code", () => {
    const driver = Object.assign(new MongoError("pool cleared"), { code: "ECONNRESET" })
    const error = MongoStore.toMongoStoreError("find", driver)
    assert.strictEqual(error.reason, "Unknown")
    assert.isTrue(MongoStore.isFailure(error))
  })

  it("a server error whose code is not a number keeps no code", () => {
    const error = MongoStore.toMongoStoreError("find", new MongoServerError({ code: "Weird" as never, errmsg: "x" }))
    assert.isUndefined(error.code)
    assert.strictEqual(error.reason, "Unknown")
    assert.isTrue(MongoStore.isFailure(error))
  })
})
