/**
 * Validation of breaker options, and the defaults table.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { Options } from "../CircuitBreaker.ts"
import { CircuitBreakerOptionsError } from "../CircuitBreakerError.ts"
import * as TripPolicy from "../TripPolicy.ts"
import type * as Machine from "./machine.ts"
import { toMillis } from "./policyChecks.ts"

/**
 * Every default of a breaker, in one place.
 *
 * @internal
 */
export const defaults = {
  failMax: TripPolicy.defaultFailMax,
  recoveryTimeoutMillis: 30_000,
  /** At least `recoveryTimeout`. */
  maxOpenDurationMillis: 60_000,
  permits: 1,
  probeGraceMillis: 1_000,
  /** Bounds a probe of a breaker with no `callTimeout`. */
  probeTimeoutMillis: 10_000
} as const

/** @internal */
export interface ValidSettings {
  readonly machine: Machine.Settings
  readonly enabled: boolean
  readonly callTimeoutMillis: number | undefined
  readonly slowCallMillis: number | undefined
  readonly probeGraceMillis: number
  readonly probeTimeoutMillis: number
}

/** A circuit's name: the breaker's `name` option and a circuit of the YAML configuration. @internal */
export const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/

type Bad = (option: string, value: unknown, expected: string) => CircuitBreakerOptionsError

const checks = (bad: Bad) => ({
  integer: (option: string, value: unknown, min: number): number | CircuitBreakerOptionsError =>
    Number.isSafeInteger(value) && (value as number) >= min
      ? value as number
      : bad(option, value, `an integer >= ${min}`),
  duration: (
    option: string,
    value: Duration.Input | undefined,
    fallback: number
  ): number | CircuitBreakerOptionsError => {
    if (value === undefined) return fallback
    const millis = toMillis(value)
    return Number.isFinite(millis) && millis > 0
      ? millis
      : bad(option, value, "a finite duration > 0 (e.g. \"30 seconds\" or milliseconds)")
  }
})

/**
 * Milliseconds of a duration option (`fallback` when absent), or
 * `CircuitBreakerOptionsError` naming the option when it is not a finite
 * duration > 0.
 *
 * @internal
 */
export const durationOption = (
  circuit: string,
  option: string,
  input: Duration.Input | undefined,
  fallback: number
): Effect.Effect<number, CircuitBreakerOptionsError> => {
  const millis = checks((option, value, expected) =>
    new CircuitBreakerOptionsError({ circuit, option, value, expected })
  )
    .duration(option, input, fallback)
  return typeof millis === "number" ? Effect.succeed(millis) : Effect.fail(millis)
}

/**
 * Checks options without making a breaker; returns the first problem found.
 *
 * @internal
 */
export const validate = (options: Options): ValidSettings | CircuitBreakerOptionsError => {
  const circuit = typeof options?.name === "string" ? options.name : "<unnamed>"
  const bad: Bad = (option, value, expected) => new CircuitBreakerOptionsError({ circuit, option, value, expected })
  const { duration, integer } = checks(bad)

  if (typeof options?.name !== "string" || !NAME.test(options.name)) {
    return bad("name", options?.name, "1-64 characters of letters, digits, _ . : - starting with a letter or _")
  }
  if (options.failMax !== undefined && options.policy !== undefined) {
    return bad("failMax", options.failMax, "no failMax when a policy is given (the policy decides)")
  }
  const failMax = integer("failMax", options.failMax ?? defaults.failMax, 1)
  if (typeof failMax !== "number") return failMax
  const recovery = duration("recoveryTimeout", options.recoveryTimeout, defaults.recoveryTimeoutMillis)
  if (typeof recovery !== "number") return recovery
  const maxOpen = duration(
    "maxOpenDuration",
    options.maxOpenDuration,
    Math.max(defaults.maxOpenDurationMillis, recovery)
  )
  if (typeof maxOpen !== "number") return maxOpen
  if (maxOpen < recovery) {
    return bad("maxOpenDuration", options.maxOpenDuration, `a duration >= recoveryTimeout (${recovery} ms)`)
  }
  if (options.halfOpen !== undefined && (typeof options.halfOpen !== "object" || options.halfOpen === null)) {
    return bad("halfOpen", options.halfOpen, "an object { permits?, successThreshold? }")
  }
  const permits = integer("halfOpen.permits", options.halfOpen?.permits ?? defaults.permits, 1)
  if (typeof permits !== "number") return permits
  const successThreshold = integer("halfOpen.successThreshold", options.halfOpen?.successThreshold ?? permits, 1)
  if (typeof successThreshold !== "number") return successThreshold
  if (successThreshold > permits) {
    return bad("halfOpen.successThreshold", successThreshold, `an integer between 1 and halfOpen.permits (${permits})`)
  }
  const callTimeout = options.callTimeout === undefined ? undefined : duration("callTimeout", options.callTimeout, 0)
  if (callTimeout instanceof CircuitBreakerOptionsError) return callTimeout
  const slowCall = options.slowCallThreshold === undefined
    ? undefined
    : duration("slowCallThreshold", options.slowCallThreshold, 0)
  if (slowCall instanceof CircuitBreakerOptionsError) return slowCall
  if (options.isFailure !== undefined && typeof options.isFailure !== "function") {
    return bad("isFailure", options.isFailure, "a function (error) => boolean")
  }
  if (options.probe !== undefined && !Effect.isEffect(options.probe)) {
    return bad("probe", options.probe, "an Effect (the dependency's cheap health check)")
  }
  const probeGrace = duration("probeGrace", options.probeGrace, defaults.probeGraceMillis)
  if (typeof probeGrace !== "number") return probeGrace
  const probeTimeout = duration("probeTimeout", options.probeTimeout, defaults.probeTimeoutMillis)
  if (typeof probeTimeout !== "number") return probeTimeout
  for (const option of ["enabled", "throwOnTrip"] as const) {
    const value = options[option]
    if (value !== undefined && typeof value !== "boolean") return bad(option, value, "true or false")
  }
  if (options.failureMode !== undefined && options.failureMode !== "fail-fast" && options.failureMode !== "fail-open") {
    return bad("failureMode", options.failureMode, `"fail-fast" or "fail-open"`)
  }
  if (options.excluded !== undefined && options.excluded !== "ignored" && options.excluded !== "success") {
    return bad("excluded", options.excluded, `"ignored" or "success"`)
  }

  const policy = validatePolicy(options.policy ?? TripPolicy.consecutive(failMax), bad)
  if (policy instanceof CircuitBreakerOptionsError) return policy

  return {
    machine: { policy, permits, successThreshold, recoveryMillis: recovery, maxOpenMillis: maxOpen },
    enabled: options.enabled ?? true,
    callTimeoutMillis: callTimeout,
    slowCallMillis: slowCall,
    probeGraceMillis: probeGrace,
    probeTimeoutMillis: probeTimeout
  }
}

// A policy checks its own parameters (`check`); one without `check` (a user's own) is taken as it is.
const validatePolicy = (
  policy: TripPolicy.TripPolicy,
  bad: Bad
): TripPolicy.TripPolicy | CircuitBreakerOptionsError => {
  if (typeof policy !== "object" || policy === null || typeof policy.counter !== "function") {
    return bad(
      "policy",
      policy,
      "a TripPolicy: consecutive(n), failureRate({...}), failureRateOverTime({...}) or your own"
    )
  }
  // A policy of the 0.1 API: `custom(policy)` wrapped the user's policy.
  const legacy = (policy as { readonly policy?: TripPolicy.TripPolicy }).policy
  if (policy._tag === "Custom" && legacy !== undefined) return validatePolicy(legacy, bad)
  const problem = typeof policy.check === "function" ? policy.check() : undefined
  return problem === undefined ? policy : bad(`policy.${problem.option}`, problem.value, problem.expected)
}

// Delays of a schedule for the 1st, 2nd, ... opening in a row; the last one repeats once it ends.
const MAX_SCHEDULED_OPENINGS = 64

/** @internal */
export const scheduleDelays = Effect.fnUntraced(function*(schedule: Schedule.Schedule<unknown, unknown>) {
  const step = yield* Schedule.toStep(schedule)
  const delays: Array<number> = []
  let now = 0
  for (let i = 0; i < MAX_SCHEDULED_OPENINGS; i++) {
    const next = yield* Effect.exit(step(now, undefined))
    if (next._tag === "Failure") break
    const millis = Duration.toMillis(next.value[1])
    delays.push(millis)
    now += millis
  }
  const last = delays.length === 0 ? 0 : delays[delays.length - 1]!
  return (openings: number): number => delays[openings - 1] ?? last
})
