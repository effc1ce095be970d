import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

// setTimeout's limit; a longer sleep is taken in steps, as the default Clock does.
const MAX_TIMER_MILLIS = 2 ** 31 - 1

const sleepMillis = (millis: number): Effect.Effect<void> => {
  if (millis <= 0) return Effect.yieldNow
  if (!Number.isFinite(millis)) return Effect.never
  return Effect.callback<void>((resume) => {
    const rest = millis > MAX_TIMER_MILLIS ? sleepMillis(millis - MAX_TIMER_MILLIS) : Effect.void
    const handle = setTimeout(() => resume(rest), Math.min(millis, MAX_TIMER_MILLIS))
    // The one difference with the default Clock: a breaker's timer never keeps the process alive.
    handle.unref()
    return Effect.sync(() => clearTimeout(handle))
  })
}

/**
 * `base` with timers that do not hold the Node process open: the Clock of the breakers the
 * Promise facade makes (`Facade.make`), whose open-period timer and probe loop run in the
 * background of a program that may never close them. Time is read from `base`.
 */
export const unrefClock = (base: Clock.Clock): Clock.Clock => ({
  currentTimeMillisUnsafe: () => base.currentTimeMillisUnsafe(),
  currentTimeMillis: base.currentTimeMillis,
  currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe(),
  currentTimeNanos: base.currentTimeNanos,
  monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
  monotonicTimeNanos: base.monotonicTimeNanos,
  sleep: (duration: Duration.Duration) => sleepMillis(Duration.toMillis(duration))
})

/** The live Clock, unref'd. */
export const liveUnrefClock: Clock.Clock = unrefClock(Clock.Clock.defaultValue())
