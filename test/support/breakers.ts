/**
 * What the breaker tests share: a tagged test error, calls that succeed or fail,
 * and a way to trip a breaker.
 */
import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
import { Data, Effect, Ref } from "effect"

/** A test failure; `counted` tells a classifier whether it should count. */
export class Boom extends Data.TaggedError("Boom")<{ readonly counted: boolean }> {}

export const fail = (counted = true) => Effect.fail(new Boom({ counted }))

export const ok = Effect.succeed("ok")

/** Counts `Boom`s with `counted: true` only. */
export const countedOnly = (error: unknown): boolean => !(error instanceof Boom) || error.counted

/** A call that counts how many times it really ran. */
export const counting = <A, E>(runs: Ref.Ref<number>, effect: Effect.Effect<A, E>) =>
  Effect.andThen(Ref.update(runs, (n) => n + 1), effect)

/** `times` counted failures through `breaker`. */
export const trip = (breaker: CircuitBreaker.CircuitBreaker, times: number) =>
  Effect.repeat(Effect.ignore(fail().pipe(withBreaker(breaker))), { times: times - 1 })

export const state = (breaker: CircuitBreaker.CircuitBreaker): Effect.Effect<CircuitBreaker.State> => breaker.state
