/**
 * The facade's synchronous admission, for calls that run outside Effect
 * (`Facade.wrapSync`, `Facade.execute`, `Facade.wrapPromise`): admit, run,
 * settle. Not part of the package's public entry: only `Facade.ts` uses it, and
 * a caller of the public API guards a call with `withBreaker` or the facade.
 *
 * @internal
 */
import type { CircuitBreaker } from "../CircuitBreaker.ts"
import type { CircuitBreakerError } from "../CircuitBreakerError.ts"
import { type BreakerImpl, combine, implOf } from "./breaker.ts"

/** The breaker as the facade admits calls on it. @internal */
export type Breaker = BreakerImpl

/** The breaker behind the public interface (a defect when it was not made by `CircuitBreaker.make`). @internal */
export const of = (breaker: CircuitBreaker): Breaker => implOf(breaker, "the facade")

/** A generation to hand to `succeed` or `fail`, or the `CircuitBreakerError` to throw. @internal */
export const admit = (breaker: BreakerImpl): number | CircuitBreakerError => breaker.admit()

/** When an admitted call starts, in Clock milliseconds: read only when something uses durations, else NaN. @internal */
export const start = (breaker: BreakerImpl): number => breaker.timed ? breaker.now() : NaN

/** Records the success of a call admitted with `generation`. @internal */
export const succeed = (breaker: BreakerImpl, generation: number, startedAt: number): void => {
  breaker.settle(generation, startedAt, "success", undefined)
}

/**
 * Records a call that threw or rejected with `error`, classified like every
 * other call path (the breaker's `isFailure` and the call's must both say it
 * counts). Returns what to throw: `error`, or with `throwOnTrip` the breaker's
 * error when this failure opened it.
 *
 * @internal
 */
export const fail = (
  breaker: BreakerImpl,
  generation: number,
  startedAt: number,
  error: unknown,
  isFailure: ((error: unknown) => boolean) | undefined
): unknown => {
  const outcome = breaker.failureOutcome(error, combine(breaker.isFailure, isFailure))
  breaker.settle(generation, startedAt, outcome, error)
  return breaker.throwOnTrip && breaker.tripped ? breaker.tripError(error) : error
}
