/**
 * The relay's options checked once, before it starts: the first bad one fails
 * with the `CircuitBreakerOptionsError` every package uses (circuit
 * `"outbox"`), naming the option, the value and what is allowed.
 *
 * @internal
 */
import { CircuitBreaker, CircuitBreakerOptionsError } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import type { Delivery, Options } from "../Outbox.ts"
import type { Document } from "./relay.ts"

/** The checked options, `sweepInterval` in milliseconds. */
export interface Settings {
  readonly collection: string
  readonly topic: string
  readonly key: (document: Document) => string
  readonly encode: (document: Document) => string
  readonly batchSize: number
  readonly sweepMillis: number
  readonly delivery: Delivery
  /** `""` with delivery `"at-least-once"`. */
  readonly transactionalId: string
}

export const bad = (option: string, value: unknown, expected: string) =>
  new CircuitBreakerOptionsError({ circuit: "outbox", option, value, expected })

const defaultKey = (document: Record<string, unknown>): string => String(document["_id"])

const defaultEncode = (document: Record<string, unknown>): string => {
  const { outbox: _, ...rest } = document
  return JSON.stringify(rest)
}

export const validate = (options: Options): Effect.Effect<Settings, CircuitBreakerOptionsError> =>
  Effect.gen(function*() {
    if (typeof options?.collection !== "string" || options.collection === "") {
      return yield* bad("collection", options?.collection, "a collection name")
    }
    if (typeof options.topic !== "string" || options.topic === "") {
      return yield* bad("topic", options.topic, "a topic name")
    }
    const batchSize = options.batchSize ?? 100
    if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
      return yield* bad("batchSize", options.batchSize, "an integer between 1 and 10000")
    }
    const sweepMillis = yield* CircuitBreaker.durationOption("outbox", "sweepInterval", options.sweepInterval, 5_000)
    const delivery = options.delivery ?? "at-least-once"
    if (delivery !== "at-least-once" && delivery !== "exactly-once") {
      return yield* bad("delivery", options.delivery, "\"at-least-once\" or \"exactly-once\"")
    }
    if (delivery === "exactly-once") {
      if (typeof options.transactionalId !== "string" || options.transactionalId.trim() === "") {
        return yield* bad(
          "transactionalId",
          options.transactionalId,
          "a transactional id stable per relay (e.g. the pod's name) with delivery \"exactly-once\""
        )
      }
    } else if (options.transactionalId !== undefined) {
      return yield* bad(
        "transactionalId",
        options.transactionalId,
        "no transactionalId with delivery \"at-least-once\""
      )
    }
    return {
      collection: options.collection,
      topic: options.topic,
      key: options.key ?? defaultKey,
      encode: options.encode ?? defaultEncode,
      batchSize,
      sweepMillis,
      delivery,
      transactionalId: options.transactionalId ?? ""
    }
  })
