/**
 * Which send failures are about the documents sent (`Outbox.isPoison`).
 *
 * @internal
 */
import { KafkaError } from "@neural-hive/kafka"

/** Kafka's answers that are about the records of the request, never about the broker nor the producer's settings. */
const POISON_PROTOCOL_ERRORS: ReadonlySet<string> = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_RECORD",
  "CORRUPT_MESSAGE",
  "INVALID_TIMESTAMP"
])

export const isPoison = (error: unknown): boolean => {
  if (!(error instanceof KafkaError)) return false
  switch (error.reason) {
    case "MessageTooLarge":
    case "Serialization":
      return true
    case "InvalidRecord":
      return error.protocolError === undefined || POISON_PROTOCOL_ERRORS.has(error.protocolError)
    default:
      return false
  }
}
