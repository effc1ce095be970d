/**
 * kafkajs's own error objects, for the classifier tests: its error classes as its index exports them at
 * runtime (its typings omit some), and its protocol error table with the factory the client uses for a
 * broker's answer.
 */
import kafkajs from "kafkajs"
import { createRequire } from "node:module"

type ErrorClass = new(...args: Array<any>) => Error

/** The kafkajs error class of that name; throws if this kafkajs has none. */
export const errorClass = (name: string): ErrorClass => {
  const found = (kafkajs as unknown as Record<string, ErrorClass | undefined>)[name]
  if (found === undefined) throw new Error(`kafkajs exports no ${name}`)
  return found
}

export const protocol = createRequire(import.meta.url)("kafkajs/src/protocol/error.js") as {
  readonly errorCodes: ReadonlyArray<{ readonly type: string; readonly code: number; readonly retriable: boolean }>
  readonly createErrorFromCode: (code: number) => Error & { readonly type: string; readonly retriable: boolean }
}

/** The error kafkajs makes from a broker's answer of that type (`MESSAGE_TOO_LARGE`, ...). */
export const protocolError = (type: string) => {
  const entry = protocol.errorCodes.find((e) => e.type === type)
  if (entry === undefined) throw new Error(`no protocol error ${type}`)
  return protocol.createErrorFromCode(entry.code)
}
