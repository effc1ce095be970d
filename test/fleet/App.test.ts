/**
 * The example service's fleet opt-in: off without FLEET_REDIS_URL, on with it,
 * the group defaulting to the service's name and the URL kept secret.
 */
import { assert, describe, it } from "@effect/vitest"
import * as AppConfig from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import { ConfigProvider, Effect, Redacted } from "effect"

const read = (env: Record<string, string>) =>
  Effect.gen(function*() {
    return yield* AppConfig.config
  }).pipe(
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))
  )

describe("Orchestrator Dynamic: fleet opt-in", () => {
  it.effect("no FLEET_REDIS_URL: no fleet", () =>
    Effect.gen(function*() {
      const config = yield* read({})
      assert.isUndefined(config.fleet)
    }))

  it.effect("FLEET_REDIS_URL turns it on; the group defaults to SERVICE_NAME; the URL stays redacted", () =>
    Effect.gen(function*() {
      const config = yield* read({
        FLEET_REDIS_URL: "redis://:s3cret@127.0.0.1:6379",
        SERVICE_NAME: "orders",
        POD_NAME: "orders-7d9f-x2"
      })
      assert.strictEqual(config.fleet?.group, "orders")
      assert.strictEqual(config.fleet?.pod, "orders-7d9f-x2")
      assert.isFalse(config.fleet?.shareCounts)
      assert.notInclude(String(config.fleet?.redisUrl), "s3cret")
      assert.strictEqual(Redacted.value(config.fleet!.redisUrl), "redis://:s3cret@127.0.0.1:6379")
      const shared = yield* read({ FLEET_REDIS_URL: "redis://h:1", FLEET_GROUP: "g", FLEET_SHARE_COUNTS: "true" })
      assert.strictEqual(shared.fleet?.group, "g")
      assert.isTrue(shared.fleet?.shareCounts)
    }))
})
