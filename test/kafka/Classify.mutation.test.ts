/**
 * What trips `kafka_producer`, in the corners the main classification tests leave: how far the
 * classifier looks through kafkajs's wrappers (and only theirs), the retry count it reports, errors
 * that carry a socket code, a protocol type or a retriable flag in an unusual shape, values that are
 * not errors, and the secrets `fromCause` removes from the message. Written for behaviour a mutation
 * run showed unpinned (docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { KafkaProducer } from "@neural-hive/kafka"
import { errorClass, protocolError } from "../support/kafkajs.ts"

const KafkaJSError = errorClass("KafkaJSError")
const KafkaJSNonRetriableError = errorClass("KafkaJSNonRetriableError")
const KafkaJSNumberOfRetriesExceeded = errorClass("KafkaJSNumberOfRetriesExceeded")

/** `error` wrapped `times` times by kafkajs's retrier, as nested retries report it. */
const wrappedTimes = (error: Error, times: number): Error => {
  let current = error
  for (let i = 0; i < times; i++) current = new KafkaJSNumberOfRetriesExceeded(current, { retryCount: 0, retryTime: 1 })
  return current
}

describe("classify: how far it looks", () => {
  it("looks through up to 8 kafkajs wrappers; deeper, it decides on the wrapper, and counts", () => {
    const tooLarge = protocolError("MESSAGE_TOO_LARGE")
    const eight = KafkaProducer.classify(wrappedTimes(tooLarge, 8))
    assert.deepStrictEqual([eight.reason, eight.brokerFailure], ["MessageTooLarge", false])
    const nine = KafkaProducer.classify(wrappedTimes(tooLarge, 9))
    assert.deepStrictEqual([nine.reason, nine.brokerFailure], ["Unknown", true])
    // The message follows the same bound: eight wrappers show the broker's answer, nine the wrapper's.
    assert.strictEqual(
      KafkaProducer.fromCause(wrappedTimes(tooLarge, 8)).message,
      `KafkaJSProtocolError: ${tooLarge.message}`
    )
    assert.match(KafkaProducer.fromCause(wrappedTimes(tooLarge, 9)).message, /^KafkaJSNumberOfRetriesExceeded: /)
  })

  it("a cycle of wrappers ends: it is classified, counted and described", () => {
    const a = new KafkaJSNonRetriableError("first")
    const b = new KafkaJSNonRetriableError("second", { cause: a })
    ;(a as { cause?: unknown }).cause = b
    assert.isTrue(KafkaProducer.isFailure(b))
    assert.strictEqual(KafkaProducer.classify(b).reason, "Unknown")
    assert.match(KafkaProducer.fromCause(b).message, /^KafkaJSNonRetriableError: (first|second)$/)
  })

  it("every kafkajs wrapper is looked through, KafkaJSError included", () => {
    const caller = protocolError("INVALID_RECORD")
    const wrapped = new KafkaJSError("send failed", { cause: caller })
    const verdict = KafkaProducer.classify(wrapped)
    assert.deepStrictEqual([verdict.reason, verdict.brokerFailure], ["InvalidRecord", false])
    assert.isFalse(KafkaProducer.isFailure(wrapped))
  })

  it("an application's own wrapper is not looked through: a caller error inside it still counts", () => {
    const wrapped = new Error("publish failed", { cause: protocolError("MESSAGE_TOO_LARGE") })
    const verdict = KafkaProducer.classify(wrapped)
    assert.deepStrictEqual([verdict.reason, verdict.brokerFailure, verdict.protocolError], ["Unknown", true, undefined])
  })

  it("a wrapper whose cause is null is decided on itself", () => {
    const invalid = new KafkaJSNonRetriableError("Invalid topic", { cause: null })
    assert.deepStrictEqual([KafkaProducer.classify(invalid).reason, KafkaProducer.isFailure(invalid)], [
      "InvalidTopic",
      false
    ])
  })
})

describe("classify: retries", () => {
  it("a wrapper without a retry count reports none; a count that is not a whole number is ignored", () => {
    const timeout = protocolError("REQUEST_TIMED_OUT")
    assert.strictEqual(KafkaProducer.classify(new KafkaJSNonRetriableError(timeout, { cause: timeout })).retries, 0)
    const odd = Object.assign(new KafkaJSNumberOfRetriesExceeded(timeout, { retryCount: 1, retryTime: 1 }), {
      retryCount: 2.5
    })
    assert.strictEqual(KafkaProducer.classify(odd).retries, 0)
    const outer = new KafkaJSNumberOfRetriesExceeded(
      new KafkaJSNumberOfRetriesExceeded(timeout, { retryCount: 4, retryTime: 1 }),
      { retryCount: 1, retryTime: 1 }
    )
    assert.strictEqual(KafkaProducer.classify(outer).retries, 4) // the largest count along the chain
  })
})

describe("classify: unusual shapes", () => {
  it("values that are not errors count as Unknown, null included", () => {
    for (const value of [null, undefined, "Invalid topic", 42]) {
      const verdict = KafkaProducer.classify(value)
      assert.deepStrictEqual([verdict.reason, verdict.brokerFailure, verdict.retriable], ["Unknown", true, false])
      assert.isTrue(KafkaProducer.isFailure(value))
    }
    assert.strictEqual(KafkaProducer.fromCause("boom").message, "boom")
    assert.strictEqual(KafkaProducer.fromCause(null).message, "null")
  })

  it("a socket error code is a Connection failure, retriable; another code is not", () => {
    for (const code of ["ECONNRESET", "EPIPE", "EAI_AGAIN"]) {
      const verdict = KafkaProducer.classify(Object.assign(new Error("write failed"), { code }))
      assert.deepStrictEqual([code, verdict.reason, verdict.retriable], [code, "Connection", true])
    }
    const other = KafkaProducer.classify(Object.assign(new Error("write failed"), { code: "ERR_STREAM_DESTROYED" }))
    assert.deepStrictEqual([other.reason, other.brokerFailure, other.retriable], ["Unknown", true, false])
    // A known kafkajs error is decided by its name, whatever code it carries.
    const named = KafkaProducer.classify({ name: "KafkaJSRequestTimeoutError", code: "ECONNRESET" })
    assert.strictEqual(named.reason, "Timeout")
    // And whatever protocol type it carries.
    const typed = KafkaProducer.classify({ name: "KafkaJSRequestTimeoutError", type: "MESSAGE_TOO_LARGE" })
    assert.deepStrictEqual([typed.reason, typed.brokerFailure], ["Timeout", true])
  })

  it("a protocol type that is not a string is no protocol error", () => {
    const verdict = KafkaProducer.classify({ name: "Error", type: 42, code: "ECONNREFUSED" })
    assert.deepStrictEqual([verdict.reason, verdict.protocolError], ["Connection", undefined])
  })

  it("an unknown protocol type counts: Broker when Kafka calls it retriable, Unknown otherwise", () => {
    const retriable = KafkaProducer.classify({ name: "KafkaJSProtocolError", type: "SOMETHING_NEW", retriable: true })
    assert.deepStrictEqual([retriable.reason, retriable.brokerFailure, retriable.retriable], ["Broker", true, true])
    const fatal = KafkaProducer.classify({ name: "KafkaJSProtocolError", type: "SOMETHING_NEW", retriable: false })
    assert.deepStrictEqual([fatal.reason, fatal.brokerFailure, fatal.retriable], ["Unknown", true, false])
  })

  it("kafkajs's retriable flag wins; without one, only outage-like reasons are retriable", () => {
    // Kafka marks CORRUPT_MESSAGE retriable: the flag is reported as is, though it is the caller's.
    const corrupt = KafkaProducer.classify(protocolError("CORRUPT_MESSAGE"))
    assert.deepStrictEqual([corrupt.reason, corrupt.brokerFailure, corrupt.retriable], ["InvalidRecord", false, true])
    const withoutFlag: ReadonlyArray<readonly [string, string, boolean]> = [
      ["KafkaJSConnectionError", "Connection", true],
      ["KafkaJSRequestTimeoutError", "Timeout", true],
      ["KafkaJSMetadataNotLoaded", "Broker", true],
      ["KafkaJSSASLAuthenticationError", "Authentication", false],
      ["KafkaJSNotImplemented", "Unsupported", false],
      ["SomethingElse", "Unknown", false]
    ]
    for (const [name, reason, retriable] of withoutFlag) {
      const verdict = KafkaProducer.classify({ name, message: "x" })
      assert.deepStrictEqual([name, verdict.reason, verdict.retriable], [name, reason, retriable])
    }
    // A flag that is not a boolean is no flag.
    assert.strictEqual(KafkaProducer.classify({ name: "SomethingElse", retriable: "yes" }).retriable, false)
  })

  it("kafkajs's argument-check wording is read only on its non-retriable errors", () => {
    for (const error of [new Error("Invalid topic name"), new KafkaJSError("Invalid messages array")]) {
      const verdict = KafkaProducer.classify(error)
      assert.deepStrictEqual([error.message, verdict.reason, verdict.brokerFailure], [error.message, "Unknown", true])
    }
    const other = KafkaProducer.classify(new KafkaJSNonRetriableError("The producer is disconnected"))
    assert.deepStrictEqual([other.reason, other.brokerFailure], ["Unknown", true])
    assert.strictEqual(
      KafkaProducer.classify(new KafkaJSNonRetriableError("Invalid message value")).reason,
      "InvalidRecord"
    )
  })
})

describe("fromCause: secrets and description", () => {
  it("the given secrets become *** in the message, on top of the credentials redact knows", () => {
    const error = KafkaProducer.fromCause(new Error("SASL login app/pw-9Xq failed for kafka://app:pw-9Xq@b:9092"), [
      "pw-9Xq"
    ])
    assert.strictEqual(error.message, "Error: SASL login app/*** failed for kafka://app:***@b:9092")
    assert.strictEqual(
      KafkaProducer.fromCause("token pw-1 and pw-1 again", ["pw-1", "other"]).message,
      "token *** and *** again"
    )
  })

  it("an empty secret changes nothing; without secrets only redact applies", () => {
    assert.strictEqual(KafkaProducer.fromCause("plain text", [""]).message, "plain text")
    assert.strictEqual(KafkaProducer.fromCause("plain text").message, "plain text")
    assert.strictEqual(KafkaProducer.fromCause("kafka://u:p4ss@h:1").message, "kafka://u:***@h:1")
  })

  it("an error with an empty message is described by its name", () => {
    assert.strictEqual(KafkaProducer.fromCause(new Error("")).message, "Error")
    assert.strictEqual(KafkaProducer.fromCause(new KafkaJSError("")).message, "KafkaJSError")
  })
})
