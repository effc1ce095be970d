import { assert, describe, it } from "@effect/vitest"
import { MongoStore } from "@neural-hive/mongodb"
import { RedisCache, RedisError } from "@neural-hive/redis"
import { TripPolicy } from "@neural-hive/resilience"
import { TemporalClient } from "@neural-hive/temporal"
import { Effect } from "effect"
import { ReplyError } from "ioredis"

describe("client duration options are validated before anything connects", () => {
  it.effect("a bad duration fails with CircuitBreakerOptionsError naming the option, not a defect", () =>
    Effect.gen(function*() {
      const failures = [
        yield* Effect.flip(RedisCache.make({ url: "redis://127.0.0.1:1", commandTimeout: "soon" as never })),
        yield* Effect.flip(MongoStore.make({ url: "mongodb://127.0.0.1:1", socketTimeout: -5 })),
        yield* Effect.flip(TemporalClient.make({ address: "127.0.0.1:1", rpcTimeout: "Infinity" }))
      ]
      assert.deepStrictEqual(
        failures.map((e) => [e._tag, "option" in e ? e.option : undefined]),
        [
          ["CircuitBreakerOptionsError", "commandTimeout"],
          ["CircuitBreakerOptionsError", "socketTimeout"],
          ["CircuitBreakerOptionsError", "rpcTimeout"]
        ]
      )
      assert.include(failures[0]!.message, "redis_client")
    }))

  it.effect("a policy in the breaker options is the policy: the client sets no failMax under it", () =>
    Effect.gen(function*() {
      // A policy the breaker refuses for its own parameter, so nothing connects: the error names the policy's
      // option, where a client that set failMax under the caller's options was refused for failMax.
      const breaker = { policy: TripPolicy.consecutive(0) }
      const failures = [
        yield* Effect.flip(RedisCache.make({ url: "redis://127.0.0.1:1", breaker })),
        yield* Effect.flip(MongoStore.make({ url: "mongodb://127.0.0.1:1", breaker })),
        yield* Effect.flip(TemporalClient.make({ address: "127.0.0.1:1", breaker }))
      ]
      assert.deepStrictEqual(failures.map((e) => "option" in e ? e.option : e._tag), [
        "policy.failMax",
        "policy.failMax",
        "policy.failMax"
      ])
    }))
})

// ioredis's own error classes: replies come as ReplyError; timeouts, closed connections and the offline
// queue as plain Errors with ioredis's words; a failed ready check wraps the reply's text.
const reply = (text: string): Error => new (ReplyError as new(message: string) => Error)(text)

const table: ReadonlyArray<readonly [string, unknown, RedisCache.RedisErrorReason, boolean]> = [
  ["WRONGTYPE", reply("WRONGTYPE Operation against a key holding the wrong kind of value"), "Reply", false],
  ["ERR syntax", reply("ERR syntax error"), "Reply", false],
  ["ERR unknown command", reply("ERR unknown command 'FOO', with args beginning with: "), "Reply", false],
  ["NOSCRIPT", reply("NOSCRIPT No matching script. Please use EVAL."), "Reply", false],
  ["EXECABORT", reply("EXECABORT Transaction discarded because of previous errors."), "Reply", false],
  ["LOADING", reply("LOADING Redis is loading the dataset in memory"), "Unavailable", true],
  ["READONLY", reply("READONLY You can't write against a read only replica."), "Unavailable", true],
  ["OOM", reply("OOM command not allowed when used memory > 'maxmemory'."), "Unavailable", true],
  [
    "MISCONF",
    reply("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist"),
    "Unavailable",
    true
  ],
  ["max clients", reply("ERR max number of clients reached"), "Unavailable", true],
  ["NOAUTH", reply("NOAUTH Authentication required."), "Authentication", true],
  ["WRONGPASS", reply("WRONGPASS invalid username-password pair or user is disabled."), "Authentication", true],
  ["NOPERM", reply("NOPERM this user has no permissions to run the 'get' command"), "Authentication", true],
  ["a failed ready check", new Error("Ready check failed: NOAUTH Authentication required."), "Authentication", true],
  ["command timeout", new Error("Command timed out"), "Timeout", true],
  ["connection closed", new Error("Connection is closed."), "Connection", true],
  [
    "offline queue off",
    new Error("Stream isn't writeable and enableOfflineQueue options is false"),
    "Connection",
    true
  ],
  [
    "ECONNREFUSED",
    Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" }),
    "Connection",
    true
  ],
  // When in doubt, count: what this package does not recognise trips the breaker.
  ["a reply nobody listed", reply("SOMETHINGNEW the server says no"), "Unknown", true],
  ["an Error nobody listed", new Error("something new"), "Unknown", true],
  ["not an Error", "a string", "Unknown", true]
]

describe("RedisCache classification", () => {
  for (const [name, cause, reason, counts] of table) {
    it(`${name} -> ${reason}${counts ? " (counts)" : ""}`, () => {
      const error = RedisCache.toRedisError("GET", cause)
      assert.instanceOf(error, RedisError)
      assert.strictEqual(error.reason, reason)
      assert.strictEqual(error.command, "GET")
      assert.strictEqual(RedisCache.isFailure(error), counts)
    })
  }

  it("isFailure counts what is not a RedisError", () => {
    assert.isTrue(RedisCache.isFailure(new Error("x")))
    assert.isTrue(RedisCache.isFailure(reply("WRONGTYPE raw, not mapped")))
  })

  it("removes passwords from messages", () => {
    const error = RedisCache.toRedisError("CONNECT", new Error("connect to redis://:hunter2@cache:6379 failed"))
    assert.notInclude(error.message, "hunter2")
  })
})
