/**
 * Secrets in connection strings, with or without a scheme, are masked in text,
 * in an error's whole cause chain and in a `Cause` as the runtime prints it.
 * The errors are the real ones the clients raise for the inputs that leaked.
 */
import { assert, describe, it } from "@effect/vitest"
import { KafkaProducer } from "@neural-hive/kafka"
import { redact, redactCause, redactError } from "@neural-hive/resilience"
import { TemporalClient } from "@neural-hive/temporal"
import { Cause, Data, Effect, Exit, Layer } from "effect"

const SECRET = "pw-S3cret"

/** Everything a log or an answer could show of a failure: the pretty cause, stacks and causes included. */
const printed = (cause: Cause.Cause<unknown>) => Cause.pretty(cause)

const buildFailure = <A, E>(layer: Layer.Layer<A, E>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
    assert.isTrue(Exit.isFailure(exit))
    return (exit as Exit.Failure<unknown, E>).cause as Cause.Cause<unknown>
  })

describe("redact", () => {
  it("masks the password of URLs with a scheme and of user:password@host without one", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      [`TEMPORAL_ADDRESS=http://user:${SECRET}@host:7233`, "TEMPORAL_ADDRESS=http://user:***@host:7233"],
      [`TEMPORAL_ADDRESS=user:${SECRET}@host:7233`, "TEMPORAL_ADDRESS=user:***@host:7233"],
      [`KAFKA_BROKERS=user:${SECRET}@host:9092`, "KAFKA_BROKERS=user:***@host:9092"],
      // In a list, the mask may swallow a neighbour's port: it over-masks rather than leaks a password holding a comma.
      [`KAFKA_BROKERS=a:9092,user:${SECRET}@b:9092`, "KAFKA_BROKERS=a:***@b:9092"],
      [`got 'user:${SECRET}@127.0.0.1:7233'`, "got 'user:***@127.0.0.1:7233'"],
      [`option brokers is "user:${SECRET}@127.0.0.1:9092"`, `option brokers is "user:***@127.0.0.1:9092"`],
      [`user:${SECRET}@host:1`, "user:***@host:1"],
      [`redis://default:${SECRET}@127.0.0.1:6379/0`, "redis://default:***@127.0.0.1:6379/0"],
      [`mongodb://admin:${SECRET}@h:27017/db?authSource=admin`, "mongodb://admin:***@h:27017/db?authSource=admin"],
      [`password=${SECRET}`, "password=***"]
    ]
    for (const [input, expected] of cases) assert.strictEqual(redact(input), expected)
    // What is not a credential stays as it was.
    for (const text of ["ops@example.com", "host:9092", "Error: connect ECONNREFUSED 127.0.0.1:7233", "a: b@c"]) {
      assert.strictEqual(redact(text), text)
    }
  })

  it("redactError copies an error with its whole cause chain, own fields and stack redacted", () => {
    class ClientError extends Data.TaggedError("ClientError")<{ readonly address: string; readonly cause: unknown }> {}
    const root = new TypeError(`Invalid address: got 'user:${SECRET}@host:7233'`)
    const middle = new Error(`dial KAFKA_BROKERS=user:${SECRET}@host:9092`, { cause: root })
    const error = new ClientError({ address: `http://user:${SECRET}@host:7233`, cause: middle })
    const cyclic = new Error(`loop user:${SECRET}@h:1`)
    ;(cyclic as { cause?: unknown }).cause = cyclic

    const redacted = redactError(error)
    assert.instanceOf(redacted, ClientError)
    assert.strictEqual(redacted._tag, "ClientError")
    assert.strictEqual(redacted.address, "http://user:***@host:7233")
    const chain = [redacted, redacted.cause as Error, (redacted.cause as Error).cause as Error]
    assert.instanceOf(chain[2], TypeError)
    for (const e of chain) assert.notInclude(`${e.message}\n${e.stack}`, SECRET)
    assert.include(chain[1]?.message, "KAFKA_BROKERS=user:***@host:9092")
    assert.include(chain[2]?.message, "got 'user:***@host:7233'")
    // The original is untouched, and a cycle ends.
    assert.include(error.address, SECRET)
    assert.include(root.message, SECRET)
    const loop = redactError(cyclic)
    assert.strictEqual((loop as { cause?: unknown }).cause, loop)
    assert.notInclude(loop.message, SECRET)
  })

  it.effect("the real startup failures for the inputs that leaked print no password once redactCause ran", () =>
    Effect.gen(function*() {
      const failures = [
        yield* buildFailure(TemporalClient.layer({ address: `http://user:${SECRET}@127.0.0.1:7233` })),
        yield* buildFailure(TemporalClient.layer({ address: `user:${SECRET}@127.0.0.1:7233` })),
        yield* buildFailure(KafkaProducer.layer({ brokers: [`user:${SECRET}@127.0.0.1:9092`] }))
      ]
      for (const cause of failures) {
        // The raw cause carries the password (in the message or the cause chain): the test can fail.
        assert.include(printed(cause), SECRET)
        const safe = printed(redactCause(cause))
        assert.notInclude(safe, SECRET)
        assert.include(safe, "user:***@127.0.0.1")
      }
      const defect = redactCause(Cause.die(new Error(`boom redis://u:${SECRET}@h:6379`)))
      assert.notInclude(printed(defect), SECRET)
    }))
})
