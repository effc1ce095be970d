/**
 * The bridge from kafkajs's logger to Effect's: levels mapped, a few fields
 * kept as annotations, secrets removed.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { logLevel as KafkaLogLevel } from "kafkajs"
import type * as KafkaJS from "kafkajs"
import { scrub } from "../KafkaError.ts"

const SEVERITY: Record<number, "Error" | "Warn" | "Info" | "Debug"> = {
  [KafkaLogLevel.ERROR]: "Error",
  [KafkaLogLevel.WARN]: "Warn",
  [KafkaLogLevel.INFO]: "Info",
  [KafkaLogLevel.DEBUG]: "Debug"
}

// Fields of a kafkajs log entry worth keeping; `stack` and request payloads are dropped.
const LOG_FIELDS = ["broker", "clientId", "error", "retryCount", "retryTime", "topic"] as const

/** Routes kafkajs's log lines to Effect's logger, annotated, with secrets removed. */
export const makeLogCreator =
  (runLog: (effect: Effect.Effect<void>) => void, secrets: ReadonlyArray<string>): KafkaJS.logCreator =>
  () =>
  (entry) => {
    const severity = SEVERITY[entry.level]
    if (severity === undefined) return
    const annotations: Record<string, unknown> = { kafkajs: entry.namespace }
    for (const field of LOG_FIELDS) {
      const value: unknown = entry.log[field]
      if (typeof value === "string") annotations[`kafkajs.${field}`] = scrub(value, secrets)
      else if (typeof value === "number" || typeof value === "boolean") annotations[`kafkajs.${field}`] = value
    }
    try {
      runLog(
        Effect.logWithLevel(severity)(scrub(String(entry.log.message), secrets)).pipe(
          Effect.annotateLogs(annotations)
        )
      )
    } catch {
      // a failing logger must not break the client
    }
  }
