/**
 * Removes secrets from text, errors and causes that may reach logs, answers
 * or `/health`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"

// user:password@ in any URL-like string, and password=... / token=... pairs.
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*):([^\s/@]*)@/gi
// user:password@host with no scheme (a broker list, a Temporal address); the password may hold ':' but no '@'.
const BARE_CREDENTIALS = /(^|[\s,;=(<[{"'`])([^\s/@:,;=(<[{"'`]+):([^\s/@]+)@(?=[^\s@])/g
const SECRET_PAIRS =
  /\b(password|passwd|pwd|secret|token|api[_-]?key|authorization)(["']?\s*[=:]\s*["']?)([^\s"'&,;]+)/gi

/**
 * Replaces passwords in connection URLs (with or without a scheme:
 * `redis://user:pw@host`, `user:pw@host:9092`) and `password=...`-style pairs
 * with `***`.
 *
 * @since 0.1.0
 * @category redaction
 */
export const redact = (text: string): string =>
  text.replace(URL_CREDENTIALS, "$1$2:***@").replace(BARE_CREDENTIALS, "$1$2:***@").replace(SECRET_PAIRS, "$1$2***")

const MAX_DEPTH = 16

const isPlain = (u: object) => {
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null || Array.isArray(u)
}

const copy = (value: unknown, seen: WeakMap<object, unknown>, depth: number): unknown => {
  if (typeof value === "string") return redact(value)
  if (typeof value !== "object" || value === null) return value
  const known = seen.get(value)
  if (known !== undefined) return known
  // Other class instances (clients, buffers, private fields) would break if copied: their text is not ours to read.
  if (depth > MAX_DEPTH || !(value instanceof Error || isPlain(value))) return value
  const result: object = Array.isArray(value) ? [] : Object.create(Object.getPrototypeOf(value))
  seen.set(value, result)
  for (const key of Reflect.ownKeys(value)) {
    // An array's length follows its elements and cannot be redefined (an AggregateError's `errors` is one).
    if (key === "length" && Array.isArray(result)) continue
    const descriptor = Object.getOwnPropertyDescriptor(value, key)!
    // An own accessor (V8's `stack` may be one) is read once and kept as redacted data.
    const raw = "value" in descriptor ? descriptor.value : (value as Record<PropertyKey, unknown>)[key]
    Object.defineProperty(result, key, {
      value: copy(raw, seen, depth + 1),
      writable: true,
      enumerable: descriptor.enumerable ?? false,
      configurable: true
    })
  }
  return result
}

/**
 * A copy of an error with every string redacted: its message, its stack, its
 * own fields and its whole `cause` chain (errors, plain objects and arrays are
 * copied; the original is left as it was). Use it on any error that reaches a
 * log or an answer.
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactError = <E>(error: E): E => copy(error, new WeakMap(), 0) as E

/**
 * A `Cause` whose failures and defects went through `redactError`, e.g. before
 * the runtime prints why the program stopped.
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactCause = <E>(cause: Cause.Cause<E>): Cause.Cause<E> =>
  Cause.fromReasons(cause.reasons.map((reason): Cause.Reason<E> =>
    Cause.isFailReason(reason)
      ? Cause.makeFailReason(redactError(reason.error))
      : Cause.isDieReason(reason)
      ? Cause.makeDieReason(redactError(reason.defect))
      : reason
  ))
