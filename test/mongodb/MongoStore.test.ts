/**
 * The MongoDB classification table, without a server: every error the driver throws maps to one
 * `MongoStoreError` reason, and every reason counts except the ones known to be the caller's.
 */
import { assert, describe, it } from "@effect/vitest"
import { MongoStore, MongoStoreError } from "@neural-hive/mongodb"
import { Effect, Redacted } from "effect"
import {
  BSON,
  MongoClientClosedError,
  MongoError,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoOperationTimeoutError,
  MongoParseError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError
} from "mongodb"

const server = (code: number, errmsg = `error ${code}`, labels: ReadonlyArray<string> = []) => {
  const error = new MongoServerError({ code, errmsg, ok: 0 })
  for (const label of labels) error.addErrorLabel(label)
  return error
}

const table: ReadonlyArray<readonly [string, unknown, MongoStoreError["reason"], boolean]> = [
  ["network error", new MongoNetworkError("connection 1 to 127.0.0.1:27017 closed"), "Network", true],
  [
    "unwrapped socket error",
    Object.assign(new Error("This socket has been ended by the other party"), { code: "EPIPE" }),
    "Network",
    true
  ],
  ["topology closed", new MongoTopologyClosedError(), "Network", true],
  ["client closed under the call", new MongoClientClosedError(), "Network", true],
  ["HostUnreachable", server(6), "Network", true],
  ["socket timeout", new MongoNetworkTimeoutError("connection 1 to 127.0.0.1:27017 timed out"), "Timeout", true],
  ["operation timeout", new MongoOperationTimeoutError("Timed out"), "Timeout", true],
  ["MaxTimeMSExpired", server(50), "Timeout", true],
  [
    "server selection",
    new MongoServerSelectionError("Server selection timed out after 2000 ms", {} as never),
    "ServerSelection",
    true
  ],
  ["NotWritablePrimary", server(10107, "not primary"), "NotPrimary", true],
  ["NotPrimaryNoSecondaryOk", server(13435), "NotPrimary", true],
  ["PrimarySteppedDown", server(189), "NotPrimary", true],
  ["ShutdownInProgress", server(91), "NotPrimary", true],
  ["legacy 'not master' without a known code", server(99999, "not master"), "NotPrimary", true],
  ["overloaded", server(462, "overloaded", ["SystemOverloadedError", "RetryableError"]), "NotPrimary", true],
  ["duplicate key", server(11000, "E11000 duplicate key error"), "DuplicateKey", false],
  ["validation", server(121, "Document failed validation"), "Validation", false],
  ["BadValue", server(2, "unknown top level operator: $foo"), "BadQuery", false],
  ["FailedToParse", server(9, "Unknown modifier: $foo"), "BadQuery", false],
  ["ConflictingUpdateOperators", server(40), "BadQuery", false],
  ["bad argument", new MongoInvalidArgumentError("bad"), "BadQuery", false],
  ["bad URL", new MongoParseError("Invalid scheme"), "BadQuery", false],
  ["BSON", new BSON.BSONError("cyclic"), "BadQuery", false],
  ["NotImplemented", server(238, "not implemented"), "Reply", false],
  ["NamespaceNotFound", server(26, "ns not found"), "Reply", false],
  ["WriteConflict", server(112, "write conflict"), "Reply", false],
  ["Unauthorized", server(13, "not authorized"), "Authentication", true],
  ["AuthenticationFailed", server(18, "Authentication failed."), "Authentication", true],
  // When in doubt, count: what this package does not recognise trips the breaker.
  ["a server code nobody listed", server(99998, "something new"), "Unknown", true],
  ["a driver error nobody listed", new MongoError("driver trouble"), "Unknown", true],
  ["something else", new Error("what"), "Unknown", true]
]

describe("MongoStore classification", () => {
  for (const [name, cause, reason, counts] of table) {
    it(`${name} -> ${reason}${counts ? " (counts)" : ""}`, () => {
      const error = MongoStore.toMongoStoreError("insertOne", cause, "tickets")
      assert.instanceOf(error, MongoStoreError)
      assert.strictEqual(error.reason, reason)
      assert.strictEqual(error.operation, "insertOne")
      assert.strictEqual(error.collection, "tickets")
      assert.strictEqual(MongoStore.isFailure(error), counts)
    })
  }

  it("keeps the server's code", () => {
    assert.strictEqual(MongoStore.toMongoStoreError("insertOne", server(11000)).code, 11000)
    assert.isUndefined(MongoStore.toMongoStoreError("insertOne", new MongoNetworkError("x")).code)
  })

  it("removes passwords from messages", () => {
    const error = MongoStore.toMongoStoreError("connect", new MongoParseError("bad mongodb://app:s3cret@db:27017/x"))
    assert.notInclude(error.message, "s3cret")
    assert.include(error.message, "app:***@")
  })

  it("clientOptions: every wait bounded, no overload retries by default", () => {
    const options = MongoStore.clientOptions({ url: "mongodb://127.0.0.1:27017" })
    assert.deepInclude(options, {
      serverSelectionTimeoutMS: 2000,
      connectTimeoutMS: 2000,
      socketTimeoutMS: 3000,
      maxPoolSize: 10,
      retryReads: true,
      retryWrites: true,
      maxAdaptiveRetries: 0
    })
    const tuned = MongoStore.clientOptions({
      url: "mongodb://127.0.0.1:27017",
      serverSelectionTimeout: "1 second",
      retryWrites: false,
      clientOptions: { appName: "orchestrator" }
    })
    assert.deepInclude(tuned, { serverSelectionTimeoutMS: 1000, retryWrites: false, appName: "orchestrator" })
  })

  it.effect("the layer starts without a server and names its breaker mongodb_client", () =>
    Effect.gen(function*() {
      const { breaker, find } = yield* MongoStore.MongoStore
      assert.strictEqual(breaker.name, "mongodb_client")
      assert.strictEqual(breaker.failureMode, "fail-fast")
      const error = yield* Effect.flip(find("tickets", {}, { limit: -1 }))
      assert.strictEqual(error._tag === "MongoStoreError" && error.reason, "BadQuery")
      assert.strictEqual((yield* breaker.snapshot).totals.ignored, 0, "refused before the breaker")
    }).pipe(Effect.provide(MongoStore.layer({ url: Redacted.make("mongodb://app:s3cret@127.0.0.1:1/x") }))))

  it.effect("a URL the driver cannot parse fails the layer with a typed error, without the password", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.provide(
          Effect.gen(function*() {
            return yield* MongoStore.MongoStore
          }),
          MongoStore.layer({ url: "mongodb+bad://app:s3cret@127.0.0.1:1/x" })
        )
      )
      assert.strictEqual(error._tag, "MongoStoreError")
      assert.strictEqual(error._tag === "MongoStoreError" && error.reason, "BadQuery")
      assert.notInclude(JSON.stringify(error) + error.message, "s3cret")
    }))
})
