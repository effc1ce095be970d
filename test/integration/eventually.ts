import { Effect, Exit } from "effect"

/**
 * Waits (real time, bounded) until `effect` succeeds with a value passing
 * `check`; a failure counts as "not yet". Dies with the last failure's cause
 * in the message when the deadline passes.
 */
export const eventually = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  check: (a: A) => boolean,
  timeoutMillis = 10_000
): Effect.Effect<A, never, R> =>
  Effect.gen(function*() {
    const deadline = performance.now() + timeoutMillis
    for (;;) {
      const exit = yield* Effect.exit(effect)
      if (Exit.isSuccess(exit) && check(exit.value)) return exit.value
      if (performance.now() > deadline) {
        const last = Exit.isSuccess(exit) ? `last value ${JSON.stringify(exit.value)}` : `last failure ${exit.cause}`
        return yield* Effect.die(new Error(`condition not met in ${timeoutMillis} ms (${last})`))
      }
      yield* Effect.sleep("25 millis")
    }
  })
