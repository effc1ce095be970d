/**
 * Trip policies: when a CLOSED breaker opens.
 *
 * A policy is a small immutable value carrying its parameters; `counter()`
 * makes the mutable counter one breaker keeps. Pass one as the breaker's
 * `policy` option. Nothing here uses Effect, so the policies are tested
 * directly and cost no allocation per call. A policy of your own is any object
 * with a `_tag` of its own and a `counter()` function.
 *
 * Each built-in policy is one module (`src/policies/`) that owns everything
 * about it: its constructor, the checks of its parameters (`check`), what it
 * needs (`usesClock`, `shareableCount`) and its YAML keys (its `Schema`).
 * `registry` below is the one list a new policy is added to (ARCHITECTURE.md,
 * "Adding a trip policy").
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import { consecutiveSchema } from "./policies/Consecutive.ts"
import { failureRateSchema } from "./policies/FailureRate.ts"
import { failureRateOverTimeSchema } from "./policies/FailureRateOverTime.ts"
import { failuresInWindowSchema } from "./policies/FailuresInWindow.ts"

/**
 * The mutable counter a breaker keeps for its policy while CLOSED.
 *
 * @since 0.1.0
 * @category models
 */
export interface TripCounter {
  /**
   * Records a successful call; returns `true` when the breaker must open (a rate
   * policy decides on every recorded outcome). `void` reads as `false`.
   */
  success(now: number): boolean | void
  /** Records a counted failure; returns `true` when the breaker must open. */
  failure(now: number): boolean
  /** Forgets everything (the breaker closed or was reset). */
  reset(): void
  /** The failures the policy currently holds against the dependency. */
  failures(now: number): number
}

/**
 * One bad parameter of a policy, as `TripPolicy.check` reports it: the
 * breaker turns it into a `CircuitBreakerOptionsError` for `policy.<option>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PolicyProblem {
  /** The constructor's option, e.g. `threshold` or `window`. */
  readonly option: string
  readonly value: unknown
  /** What is allowed, e.g. `a number in (0, 1]`. */
  readonly expected: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TripPolicy {
  /** The built-in policies' tags are their names (`Consecutive`, ...; see `registry`); give yours a tag of its own. */
  readonly _tag: string
  /** Whether the counter needs the current time (the breaker reads the Clock only then). */
  readonly usesClock: boolean
  /**
   * Set when the policy's count is one a fleet of replicas may share: the
   * replicas' `failures` add up, and the fleet opens every replica's breaker
   * when the sum reaches this number (`@neural-hive/fleet`'s `shareCounts`).
   */
  readonly shareableCount?: number | undefined
  /** Makes the counter of one breaker. */
  counter(): TripCounter
  /** The first bad parameter, if any: `CircuitBreaker.make` refuses a policy that reports one. */
  check?(): PolicyProblem | undefined
}

/**
 * How one YAML key of a policy is written: an integer, a ratio in (0, 1] or a
 * number of seconds (read into a `Duration`). `option` is the constructor's
 * option it feeds (so a problem `check` reports names the YAML key); a key
 * without `default` is left to the constructor's own default.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigKey =
  | { readonly _tag: "Integer"; readonly option: string; readonly max: number; readonly default?: number }
  | { readonly _tag: "Ratio"; readonly option: string; readonly default?: number }
  | { readonly _tag: "Seconds"; readonly option: string; readonly default?: Duration.Duration }

/**
 * The value of a `ConfigKey` once read: a number, or a `Duration` for seconds.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigValue = number | Duration.Duration

/**
 * A policy's YAML schema: `policy: <name>` chooses it, `keys` are the keys it
 * adds to a circuit's settings, `make` builds the policy from their values
 * (each already checked against its key; `check` runs after).
 *
 * @since 0.1.0
 * @category models
 */
export interface Schema {
  /** The value of the `policy` key, e.g. `failuresInWindow`. */
  readonly name: string
  /** The `_tag` of the policies it makes. */
  readonly tag: string
  /** Its YAML keys, by name (`failures`, `windowSeconds`, ...). */
  readonly keys: Readonly<Record<string, ConfigKey>>
  /** Builds the policy from its keys' values (the defaults filled in, seconds as `Duration`s). */
  readonly make: (values: Readonly<Record<string, ConfigValue>>) => TripPolicy
}

export * from "./policies/Consecutive.ts"
export * from "./policies/FailureRate.ts"
export * from "./policies/FailureRateOverTime.ts"
export * from "./policies/FailuresInWindow.ts"

/**
 * Every policy the YAML configuration offers, by its `policy` name; the
 * first one is the default. A new policy is one module plus its line here
 * (and its `export *` above).
 *
 * @since 0.1.0
 * @category registry
 */
export const registry: ReadonlyArray<Schema> = [
  consecutiveSchema,
  failureRateSchema,
  failureRateOverTimeSchema,
  failuresInWindowSchema
]
