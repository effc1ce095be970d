import { assert, describe, it } from "@effect/vitest"
import { MongoStore } from "@neural-hive/mongodb"
import { RedisCache } from "@neural-hive/redis"
import { TemporalClient } from "@neural-hive/temporal"
import { Effect } from "effect"

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
})
