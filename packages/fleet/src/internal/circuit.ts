/**
 * What the fleet keeps per breaker of the `Registry`: its Redis keys and where
 * it stands with the fleet. Mutated only by the fleet's own fibers and
 * listeners, never on the call path.
 *
 * @internal
 */
import { type CircuitBreaker, Remote } from "@neural-hive/resilience"
import type * as Fiber from "effect/Fiber"

export interface Circuit {
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly stateKey: string
  readonly leaseKey: string
  readonly countsKey: string
  /** The consecutive count last reported to the shared count. */
  reported: number
  /** The fleet epoch last adopted. */
  epoch: number
  /** When the fleet's open period ends, in this replica's Clock milliseconds (NaN: no open period). */
  fleetUntil: number
  /** The lease loop of the current open period. */
  loop: Fiber.Fiber<void> | undefined
  /** Set while the fleet applies a decision, so the listener does not publish it back. */
  applying: boolean
  /** A local decision that could not be published (Redis down): reconciled on reconnection. */
  dirty: boolean
}

/** Which Lua rule fences a decision: a trip, a probe's outcome or an admin action. */
export type Rule = "trip" | "probe" | "admin"

/** A breaker that just joined: no fleet decision adopted yet. */
export const make = (breaker: CircuitBreaker.CircuitBreaker, prefix: string): Circuit => ({
  breaker,
  stateKey: `${prefix}:${breaker.name}:state`,
  leaseKey: `${prefix}:${breaker.name}:lease`,
  countsKey: `${prefix}:${breaker.name}:counts`,
  reported: 0,
  epoch: 0,
  fleetUntil: NaN,
  loop: undefined,
  applying: false,
  dirty: false
})

/** Stops the lease loop of the current open period, if any. */
export const stopLoop = (c: Circuit): void => {
  c.loop?.interruptUnsafe()
  c.loop = undefined
}

/** Applies a fleet decision to the local breaker, flagged so the transition listener does not publish it back. */
export const adopt = (c: Circuit, decision: Remote.Decision): void => {
  c.applying = true
  try {
    Remote.adopt(c.breaker, decision)
  } finally {
    c.applying = false
  }
}

/** The openings in a row of the local breaker (0 while closed): the next opening doubles from it. */
export const openings = (c: Circuit): number => Remote.status(c.breaker).openings
