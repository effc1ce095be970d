/**
 * The kinds of value a configuration key holds, how each is written in YAML
 * and in an environment variable, and what a problem says is allowed.
 *
 * @internal
 */
import * as Duration from "effect/Duration"

/** The longest duration a key accepts: 7 days. */
export const MAX_SECONDS = 7 * 24 * 3600

/** The largest count a key accepts unless its kind says less. */
export const MAX_COUNT = 1_000_000

/** @internal */
export type Kind =
  | { readonly _tag: "Boolean" }
  | { readonly _tag: "Integer"; readonly max: number }
  | { readonly _tag: "Count"; readonly max: number }
  | { readonly _tag: "Number"; readonly min: number; readonly max: number }
  | { readonly _tag: "Ratio" }
  | { readonly _tag: "Seconds"; readonly zero: boolean }
  | { readonly _tag: "Choice"; readonly choices: ReadonlyArray<string> }

/** What a key of `kind` allows, worded for the file or (with the writing rules) for a variable. */
export const expectedOf = (kind: Kind, fromEnv: boolean): string => {
  const digits = fromEnv ? ", in decimal digits like 30 or 2.5 (no sign, 0x, 0b or exponent)" : ""
  switch (kind._tag) {
    case "Boolean":
      return "true or false"
    case "Integer":
      return `an integer between 1 and ${kind.max}${fromEnv ? ", in decimal digits (no sign, 0x, 0b or exponent)" : ""}`
    case "Count":
      return `an integer between 0 and ${kind.max}${fromEnv ? ", in decimal digits (no sign, 0x, 0b or exponent)" : ""}`
    case "Ratio":
      return `a number in (0, 1]${fromEnv ? ", in decimal digits like 0.5 (no sign, 0x, 0b or exponent)" : ""}`
    case "Number":
      return `a number from ${kind.min} to ${kind.max}${digits}`
    case "Seconds":
      return `a number of seconds ${kind.zero ? ">= 0" : "> 0"} and at most ${MAX_SECONDS} (7 days)${digits}`
    case "Choice":
      return `one of ${kind.choices.join(", ")}`
  }
}

const DECIMAL_INTEGER = /^[0-9]+$/
const DECIMAL = /^[0-9]+(\.[0-9]+)?$/

/** An environment string as the value it stands for, or `undefined` when it is not written as allowed. */
export const fromText = (kind: Kind, raw: string): unknown => {
  const text = raw.trim()
  switch (kind._tag) {
    case "Boolean":
      return text === "true" ? true : text === "false" ? false : undefined
    case "Integer":
    case "Count":
      return DECIMAL_INTEGER.test(text) ? Number(text) : undefined
    case "Ratio":
    case "Number":
    case "Seconds":
      return DECIMAL.test(text) ? Number(text) : undefined
    case "Choice":
      return text
  }
}

/** Whether `value` (from the file, or read by `fromText`) is allowed for `kind`. */
export const accepts = (kind: Kind, value: unknown): boolean => {
  switch (kind._tag) {
    case "Boolean":
      return typeof value === "boolean"
    case "Integer":
      return typeof value === "number" && Number.isSafeInteger(value) && value >= 1 && value <= kind.max
    case "Count":
      return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= kind.max
    case "Ratio":
      return typeof value === "number" && value > 0 && value <= 1
    case "Number":
      return typeof value === "number" && value >= kind.min && value <= kind.max
    case "Seconds":
      return typeof value === "number" && Number.isFinite(value) && value <= MAX_SECONDS &&
        (kind.zero ? value >= 0 : value > 0)
    case "Choice":
      return typeof value === "string" && kind.choices.includes(value)
  }
}

/** An accepted value as the setting holds it: seconds become a `Duration`, the loader's one conversion. */
export const toSetting = (kind: Kind, value: unknown): unknown =>
  kind._tag === "Seconds" ? Duration.seconds(value as number) : value

const squash = (name: string) => name.replace(/[_-]/g, "").toLowerCase()

/** Edit distance, bounded: names longer than 64 characters are never close. */
const distance = (a: string, b: string): number => {
  if (a.length > 64 || b.length > 64) return Infinity
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = row
  }
  return previous[b.length]!
}

/** The candidate a misspelled `name` most likely meant (same letters ignoring case and `_ -`, or 2 edits away). */
export const closest = (name: string, candidates: Iterable<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = 3
  for (const candidate of candidates) {
    const d = squash(candidate) === squash(name) ? 0 : distance(name.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

/** A mapping's entries, from a YAML `Map` or a plain object (own keys only: no prototype member is ever a key). */
export const entriesOf = (u: unknown): ReadonlyArray<readonly [string, unknown]> | undefined => {
  if (u instanceof Map) return [...u].map(([k, v]) => [String(k), v] as const)
  if (typeof u === "object" && u !== null && !Array.isArray(u)) return Object.entries(u)
  return undefined
}
