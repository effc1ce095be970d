import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "@neural-hive/resilience"
import { Effect, Exit } from "effect"
import * as fc from "fast-check"

const anyValue = fc.oneof(
  fc.integer({ min: -10, max: 100 }),
  fc.double(),
  fc.string({ maxLength: 12 }),
  fc.constantFrom("30 seconds", "1 millis", "-5 seconds", "Infinity", "soon", 0, NaN, null, undefined, true, [], {}),
  fc.anything()
)

describe("CircuitBreaker options (property)", () => {
  it("random options either make a breaker that works or fail with a typed error naming an option", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            name: fc.oneof(fc.constantFrom("kafka_producer", "redis_client"), fc.string({ maxLength: 70 })),
            failMax: anyValue,
            recoveryTimeout: anyValue,
            maxOpenDuration: anyValue,
            halfOpen: fc.oneof(
              fc.record({ permits: anyValue, successThreshold: anyValue }, { requiredKeys: [] }),
              anyValue
            ),
            callTimeout: anyValue,
            slowCallThreshold: anyValue,
            enabled: anyValue,
            failureMode: anyValue,
            policy: fc.oneof(
              fc.record({ threshold: anyValue, size: anyValue }).map((p) => CircuitBreaker.failureRate(p as never)),
              fc.record({ threshold: anyValue, window: anyValue, minimumCalls: anyValue }).map((p) =>
                CircuitBreaker.failureRateOverTime(p as never)
              ),
              anyValue
            )
          },
          { requiredKeys: ["name"] }
        ),
        async (options) => {
          const exit = await Effect.runPromiseExit(
            Effect.scoped(
              Effect.gen(function*() {
                const breaker = yield* CircuitBreaker.make(options as CircuitBreaker.Options)
                // A breaker that was accepted must run a call and report a sane state.
                const value = yield* Effect.succeed(1).pipe(CircuitBreaker.withBreaker(breaker))
                const snapshot = yield* breaker.snapshot
                return { value, state: snapshot.state }
              })
            )
          )
          if (Exit.isSuccess(exit)) {
            assert.strictEqual(exit.value.value, 1)
            assert.oneOf(exit.value.state, ["Closed"])
          } else {
            const reason = exit.cause.reasons[0]
            assert.strictEqual(reason?._tag, "Fail", "bad options must fail, not die")
            assert.strictEqual(reason?._tag === "Fail" && reason.error._tag, "CircuitBreakerOptionsError")
            if (reason?._tag === "Fail" && reason.error._tag === "CircuitBreakerOptionsError") {
              assert.isString(reason.error.option)
              assert.include(reason.error.message, reason.error.option)
            }
          }
        }
      ),
      { numRuns: 1000 }
    )
  })
})
