/**
 * The checks a trip policy runs on its own parameters (`TripPolicy.check`),
 * worded like every other breaker option's.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { PolicyProblem } from "../TripPolicy.ts"

/** `value` when it is an integer in `[min, max]`, else the problem naming `option`. */
export const integer = (
  option: string,
  value: unknown,
  min: number,
  max?: number
): PolicyProblem | undefined =>
  Number.isSafeInteger(value) && (value as number) >= min && (max === undefined || (value as number) <= max)
    ? undefined
    : { option, value, expected: max === undefined ? `an integer >= ${min}` : `an integer between ${min} and ${max}` }

/** A ratio in (0, 1]. */
export const ratio = (option: string, value: unknown): PolicyProblem | undefined =>
  typeof value === "number" && value > 0 && value <= 1 ? undefined : { option, value, expected: "a number in (0, 1]" }

/** A window in milliseconds (NaN for an input that is no duration): finite and > 0. */
export const window = (option: string, millis: number): PolicyProblem | undefined =>
  Number.isFinite(millis) && millis > 0
    ? undefined
    : { option, value: millis, expected: "a finite duration > 0 (e.g. \"1 minute\")" }

/** Milliseconds of a duration input, NaN when it is none (`Duration.fromInput` never throws). */
export const toMillis = (input: Duration.Input): number => {
  const decoded = Duration.fromInput(input)
  return Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
}

/** The first problem of a list of checks. */
export const first = (...problems: ReadonlyArray<PolicyProblem | undefined>): PolicyProblem | undefined =>
  problems.find((problem) => problem !== undefined)
