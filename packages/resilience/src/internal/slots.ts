/**
 * The slots of a bulkhead: calls in flight up to a limit (fixed, or moved by
 * an adaptive algorithm after each call), a bounded queue of waiters served in
 * arrival order, each for at most a queue timeout, and typed rejections.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { BulkheadRejectedError, type RejectionReason, type Stats } from "../Bulkhead.ts"

/** One finished call, as an adaptive limit learns from it. */
export interface Sample {
  readonly millis: number
  /** Calls in flight when it started (itself included). */
  readonly inFlight: number
  readonly exit: Exit.Exit<unknown, unknown>
  /** When it ended (the Clock's ms). */
  readonly end: number
}

export interface SlotSettings {
  readonly name: string
  /** The limit now (read at every admission and release). */
  readonly limit: () => number
  readonly minLimit: number
  readonly maxLimit: number
  readonly maxQueued: number
  readonly queueTimeout: Duration.Duration
  /** After each call that ran; an effect it returns (a log line, rarely) runs before the call returns. */
  readonly onSample?: ((sample: Sample) => Effect.Effect<void> | undefined) | undefined
}

interface Waiter {
  readonly slot: Deferred.Deferred<void>
  /** A releasing call handed it its slot. */
  granted: boolean
}

/** The weight of the newest call time in the mean used for `retryAfter`. */
const SMOOTHING = 0.2

export const makeSlots = (settings: SlotSettings) => {
  const { limit, maxQueued, name, onSample, queueTimeout } = settings
  const waiters: Array<Waiter> = []
  let inFlight = 0
  let admitted = 0
  let rejected = 0
  let queueTimeouts = 0
  // The mean call time (ms), for `retryAfter`; `queueTimeout` until a call has finished.
  let meanMillis = Duration.toMillis(queueTimeout)

  /** Free slots (the limit may have grown) go to the oldest waiters, counted in flight as they get them. */
  const fill = () => {
    while (waiters.length > 0 && inFlight < limit()) {
      const next = waiters.shift()!
      inFlight++
      next.granted = true
      Deferred.doneUnsafe(next.slot, Effect.void)
    }
  }
  const release = () => {
    inFlight--
    fill()
  }

  const reject = (reason: RejectionReason) => {
    rejected++
    if (reason === "QueueTimeout") queueTimeouts++
    const rounds = Math.ceil((waiters.length + 1) / Math.max(1, limit()))
    return Effect.fail(
      new BulkheadRejectedError({
        circuit: name,
        reason,
        inFlight,
        queued: waiters.length,
        retryAfter: Duration.millis(Math.max(1, Math.round(meanMillis * rounds)))
      })
    )
  }

  /** Waits for a slot: `true` once it has one, `false` after `queueTimeout`. */
  const wait = (restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const waiter: Waiter = { slot: Deferred.makeUnsafe<void>(), granted: false }
      waiters.push(waiter)
      const waited = yield* Effect.exit(restore(Effect.timeoutOption(Deferred.await(waiter.slot), queueTimeout)))
      // Granted at the instant it timed out or was interrupted: the slot is its own either way.
      if (waited._tag === "Success" && (Option.isSome(waited.value) || waiter.granted)) return true
      if (waiter.granted) release()
      else waiters.splice(waiters.indexOf(waiter), 1)
      if (waited._tag === "Failure") return yield* Effect.failCause(waited.cause)
      return false
    })

  const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadRejectedError, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        if (waiters.length === 0 && inFlight < limit()) inFlight++
        else if (waiters.length >= maxQueued) return yield* reject("QueueFull")
        else if (!(yield* wait(restore))) return yield* reject("QueueTimeout")
        admitted++
        const started = inFlight
        // Nanoseconds: a call of a few hundred µs measured in whole ms reads 0 then 1, which an adaptive limit
        // would take for a latency that doubled (a queue forming) and shrink on a healthy dependency.
        const start = yield* Clock.currentTimeNanos
        return yield* restore(effect).pipe(
          Effect.onExit((exit) =>
            Effect.flatMap(Clock.currentTimeNanos, (endNanos) => {
              const millis = Math.max(0, Number(endNanos - start) / 1e6)
              const end = Number(endNanos / 1_000_000n)
              meanMillis += SMOOTHING * (millis - meanMillis)
              const after = onSample?.({ millis, inFlight: started, exit, end })
              release()
              return after ?? Effect.void
            })
          )
        )
      })
    )

  const stats = (): Stats => ({
    limit: limit(),
    minLimit: settings.minLimit,
    maxLimit: settings.maxLimit,
    maxQueued,
    inFlight,
    queued: waiters.length,
    admitted,
    rejected,
    queueTimeouts
  })

  return { run, stats }
}
