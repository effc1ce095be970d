/**
 * The policies of a circuit composed around one guarded attempt (the breaker
 * and the call): `retry ∘ hedge ∘ bulkhead ∘ attempt`, outermost first.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { BulkheadRejectedError } from "../Bulkhead.ts"
import type { CircuitBreaker } from "../CircuitBreaker.ts"
import { CircuitBreakerError, type CircuitBreakerOptionsError } from "../CircuitBreakerError.ts"
import * as Registries from "../Registry.ts"
import type { Policies } from "../ResilienceConfig.ts"
import * as RetryBudget from "../RetryBudget.ts"

/** What a call says about itself to the policies (`GuardedClient.CallOptions`). */
interface CallOptions {
  readonly idempotent?: boolean | undefined
  readonly retry?: boolean | undefined
}

/**
 * A bulkhead's refusal as the caller sees it: the dependency was not called, as when the breaker refuses
 * (`CircuitBreakerError`, reason `Bulkhead`, the rejection as its cause and its `retryAfter`).
 */
const refusal = (breaker: CircuitBreaker, rejected: BulkheadRejectedError): CircuitBreakerError =>
  new CircuitBreakerError({
    circuit: breaker.name,
    state: breaker.view.state(),
    reason: "Bulkhead",
    retryAfter: rejected.retryAfter,
    cause: rejected
  })

/**
 * Registers the circuit's policies in the `Registry` when one is in the context (under the breaker's name,
 * for the scope), and gives what wraps an attempt in them. `isFailure` is the breaker's classifier (the
 * default of what is retryable), `isRetryable` the integration's own choice; a refusal is never retried.
 *
 * @internal
 */
export const composePolicies = <E>(
  breaker: CircuitBreaker,
  policies: Policies,
  isFailure: ((error: unknown) => boolean) | undefined,
  isRetryable: ((error: E) => boolean) | undefined
): Effect.Effect<
  <A, R>(
    attempt: Effect.Effect<A, E | CircuitBreakerError, R>,
    callOptions: CallOptions | undefined
  ) => Effect.Effect<A, E | CircuitBreakerError, R>,
  CircuitBreakerOptionsError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const registry = yield* Effect.serviceOption(Registries.Registry)
    if (registry._tag === "Some" && (policies.bulkhead ?? policies.retryBudget ?? policies.hedge) !== undefined) {
      yield* registry.value.registerPolicies(breaker.name, policies)
    }
    return wrap(breaker, policies, isFailure, isRetryable)
  })

const wrap = <E>(
  breaker: CircuitBreaker,
  policies: Policies,
  isFailure: ((error: unknown) => boolean) | undefined,
  isRetryable: ((error: E) => boolean) | undefined
) => {
  const { bulkhead, hedge, retry, retryBudget: budget } = policies
  const worthRetrying = (error: E | CircuitBreakerError): boolean =>
    !(error instanceof CircuitBreakerError) &&
    (isRetryable === undefined ? isFailure?.(error) ?? true : isRetryable(error as E))
  return <A, R>(
    attempt: Effect.Effect<A, E | CircuitBreakerError, R>,
    callOptions: CallOptions | undefined
  ): Effect.Effect<A, E | CircuitBreakerError, R> => {
    let effect = attempt
    if (bulkhead !== undefined) {
      // Outside the breaker: a refused call never reaches it, so it is never counted as the dependency's.
      effect = bulkhead.run(effect).pipe(
        Effect.catchIf(
          (error): error is BulkheadRejectedError => error instanceof BulkheadRejectedError,
          (rejected) => Effect.fail(refusal(breaker, rejected))
        )
      )
    }
    const retried = retry !== undefined && callOptions?.retry !== false
    // A hedge is a second real call: it takes its own slot and goes through the breaker.
    if (hedge !== undefined && callOptions?.idempotent === true) {
      effect = hedge.run(effect)
      // Its hedges come from the budget, which grows with the calls it counts: `withRetry` counts this one when
      // it wraps it; otherwise count it here, or the budget would only ever have its reserve.
      if (!retried && budget !== undefined) effect = Effect.andThen(budget.recordCall, effect)
    }
    if (retried) {
      effect = RetryBudget.withRetry<E | CircuitBreakerError>({ ...retry, breaker, isRetryable: worthRetrying })(effect)
    }
    return effect
  }
}
