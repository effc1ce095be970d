/**
 * Message checks and encoding for `KafkaProducer`: a batch is validated and
 * encoded before it reaches the breaker, so a caller error never counts.
 *
 * @internal
 */
import type * as KafkaJS from "kafkajs"
import { KafkaError } from "../KafkaError.ts"
import type { Message, ProducerBatch, ProducerRecord } from "../KafkaProducer.ts"

/** A value for an error message: JSON when it can be, `String` otherwise. */
export const describeValue = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

// Kafka's own rule for topic names (org.apache.kafka.common.internals.Topic).
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/

const callerError = (reason: "Serialization" | "InvalidTopic", message: string, cause?: unknown): KafkaError =>
  new KafkaError({ reason, message, brokerFailure: false, retriable: false, retries: 0, cause })

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const encodeValue = (value: unknown, where: string): Buffer | string | null | KafkaError => {
  if (value === null || typeof value === "string") return value
  if (value instanceof Uint8Array) return toBuffer(value)
  if (value === undefined) return callerError("Serialization", `${where}: no value (use null for a tombstone)`)
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch (cause) {
    // The message names the place, never the value: it may hold personal data.
    return callerError(
      "Serialization",
      `${where}: the value cannot be JSON-encoded (${cause instanceof Error ? cause.message : "error"})`,
      cause
    )
  }
  return json === undefined
    ? callerError("Serialization", `${where}: a ${typeof value} value cannot be JSON-encoded`)
    : json
}

const encodeHeaders = (
  headers: NonNullable<Message["headers"]>,
  where: string
): KafkaJS.IHeaders | KafkaError => {
  if (typeof headers !== "object" || headers === null) {
    return callerError("Serialization", `${where}: headers must be an object`)
  }
  const out: KafkaJS.IHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || typeof value === "string") out[name] = value
    else if (value instanceof Uint8Array) out[name] = toBuffer(value)
    else if (Array.isArray(value) && value.every((v) => typeof v === "string" || v instanceof Uint8Array)) {
      out[name] = value.map((v) => (typeof v === "string" ? v : toBuffer(v)))
    } else {
      return callerError("Serialization", `${where}: header "${name}" must be a string, bytes or a list of them`)
    }
  }
  return out
}

const encodeMessage = (message: Message, where: string): KafkaJS.Message | KafkaError => {
  if (typeof message !== "object" || message === null) {
    return callerError("Serialization", `${where}: not a message object`)
  }
  const value = encodeValue(message.value, where)
  if (value instanceof KafkaError) return value
  const out: KafkaJS.Message = { value }
  const key = message.key
  if (key !== undefined) {
    if (key === null || typeof key === "string") out.key = key
    else if (key instanceof Uint8Array) out.key = toBuffer(key)
    else return callerError("Serialization", `${where}: the key must be a string, bytes or null`)
  }
  if (message.headers !== undefined) {
    const headers = encodeHeaders(message.headers, where)
    if (headers instanceof KafkaError) return headers
    out.headers = headers
  }
  if (message.partition !== undefined) {
    if (!Number.isSafeInteger(message.partition) || message.partition < 0) {
      return callerError("Serialization", `${where}: partition must be an integer >= 0`)
    }
    out.partition = message.partition
  }
  if (message.timestamp !== undefined) {
    if (typeof message.timestamp !== "string" || !/^\d+$/.test(message.timestamp)) {
      return callerError("Serialization", `${where}: timestamp must be milliseconds as a string of digits`)
    }
    out.timestamp = message.timestamp
  }
  return out
}

/** Validates and encodes a batch before it reaches the breaker: caller errors never count. */
export const prepare = (batch: ProducerBatch): Array<KafkaJS.TopicMessages> | KafkaError => {
  const records = batch?.topicMessages
  if (!Array.isArray(records)) return callerError("Serialization", "topicMessages must be an array")
  const out: Array<KafkaJS.TopicMessages> = []
  for (const record of records as ReadonlyArray<ProducerRecord>) {
    const topic = record?.topic
    if (typeof topic !== "string" || !TOPIC.test(topic) || topic === "." || topic === "..") {
      return callerError(
        "InvalidTopic",
        `invalid topic name ${describeValue(topic)}: 1-249 of [a-zA-Z0-9._-], not "." or ".."`
      )
    }
    if (!Array.isArray(record.messages)) {
      return callerError("Serialization", `topic "${topic}": messages must be an array`)
    }
    if (record.messages.length === 0) continue
    const messages: Array<KafkaJS.Message> = []
    for (let i = 0; i < record.messages.length; i++) {
      const encoded = encodeMessage(record.messages[i]!, `topic "${topic}", message ${i}`)
      if (encoded instanceof KafkaError) return encoded
      messages.push(encoded)
    }
    out.push({ topic, messages })
  }
  return out
}
