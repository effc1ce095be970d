/**
 * What a coordination backend may do with a breaker: the capability
 * `@neural-hive/fleet` shares breakers across replicas with (through Redis),
 * and all another backend needs (Postgres, etcd, a gossip protocol), without
 * reaching into the breaker.
 *
 * A backend does three things with each breaker it coordinates:
 *
 * - `observe` the breaker's local decisions (a trip, a probe's outcome, an
 *   admin action) and publish them;
 * - read what it may share: `status` (state, mode, openings in a row, what is
 *   left of an open period, probes holding a permit) and, when the trip policy
 *   has one, the `sharedCount` the replicas can sum;
 * - `adopt` the decisions taken elsewhere. An adopted decision moves the
 *   breaker with transition reason `"Remote"` (an adopted `HalfOpen` ends the
 *   open period: `"OpenElapsed"`), is never counted as a local trip and is not
 *   reported back to `observe`.
 *
 * And with each retry budget: publish its `budgetWindow` (calls and retries
 * over its window) and give it the other replicas' with `shareBudget`, so the
 * budget bounds the retries of the whole fleet.
 *
 * Every function is synchronous and off the call path: calls are admitted and
 * counted locally, and never wait for the backend.
 *
 * **Example** (A toy backend: what one replica decides, another adopts)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Remote, withBreaker } from "@neural-hive/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const here = yield* CircuitBreaker.make({ name: "payments", failMax: 1 })
 *   const there = yield* CircuitBreaker.make({ name: "payments_replica", failMax: 1 })
 *   // Publish: a local opening of `here` is adopted by `there` for the time left.
 *   yield* Remote.observe(here, (transition) => {
 *     if (transition.to !== "Open") return
 *     const { openings, remainingMillis } = Remote.status(here)
 *     Remote.adopt(there, { _tag: "Open", remainingMillis, openings })
 *   })
 *   yield* Effect.ignore(Effect.fail("connection refused").pipe(withBreaker(here)))
 *   return yield* there.state // "Open": `there` rejects calls it never made
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { CircuitBreaker, Mode, State, Transition } from "./CircuitBreaker.ts"
import { implOf } from "./internal/breaker.ts"
import * as BudgetShare from "./internal/budgetShare.ts"
import * as Machine from "./internal/machine.ts"
import type { RetryBudget } from "./RetryBudget.ts"

/**
 * A decision a breaker adopts from elsewhere: OPEN for the remaining time as
 * the `openings`-th opening in a row (so the next reopening doubles alike);
 * HALF_OPEN now (this replica won the probe); CLOSED; forced open; disabled.
 *
 * @since 0.1.0
 * @category models
 */
export type Decision =
  | { readonly _tag: "Open"; readonly remainingMillis: number; readonly openings: number }
  | { readonly _tag: "HalfOpen" }
  | { readonly _tag: "Closed" }
  | { readonly _tag: "ForcedOpen" }
  | { readonly _tag: "Disabled" }

/**
 * Where a breaker stands, as a backend shares it. Read as it is: an open
 * period that has elapsed with no call yet still reads OPEN, with
 * `remainingMillis` 0 (reading it moves nothing).
 *
 * @since 0.1.0
 * @category models
 */
export interface Status {
  readonly state: State
  readonly mode: Mode
  /** Openings in a row without a close in between (0 while CLOSED): the next opening doubles from it. */
  readonly openings: number
  /** OPEN: milliseconds until the open period ends (Infinity when forced open); otherwise 0. */
  readonly remainingMillis: number
  /** HALF_OPEN: probes holding a permit (in flight or succeeded); otherwise 0. */
  readonly permitsHeld: number
}

/**
 * A count of counted failures the replicas of a fleet can sum: the breaker
 * opens when the sum reaches `failMax`, for `firstOpenMillis` (its first open
 * period).
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedCount {
  /** This breaker's count now. */
  readonly failures: number
  /** The count that opens the breaker. */
  readonly failMax: number
  /** How long the breaker's first opening lasts, in milliseconds. */
  readonly firstOpenMillis: number
}

/**
 * Where the breaker stands now (see `Status`).
 *
 * @since 0.1.0
 * @category getters
 */
export const status = (breaker: CircuitBreaker): Status => {
  const impl = implOf(breaker, "Remote.status")
  const phase = impl.phase.current
  switch (phase._tag) {
    case "Closed":
      return { state: "Closed", mode: phase.mode, openings: 0, remainingMillis: 0, permitsHeld: 0 }
    case "Open":
      return {
        state: "Open",
        mode: phase.mode,
        openings: phase.openings,
        remainingMillis: Math.max(0, phase.until - impl.now()),
        permitsHeld: 0
      }
    case "HalfOpen":
      return {
        state: "HalfOpen",
        mode: phase.mode,
        openings: phase.openings,
        remainingMillis: 0,
        permitsHeld: phase.admitted
      }
  }
}

/**
 * The count this breaker can share, or `undefined` when there is none to
 * share now: the policy declares no `shareableCount` (only `consecutive` does:
 * a rate over a window does not sum across replicas), or the breaker is not
 * CLOSED and `Normal`.
 *
 * @since 0.1.0
 * @category getters
 */
export const sharedCount = (breaker: CircuitBreaker): SharedCount | undefined => {
  const impl = implOf(breaker, "Remote.sharedCount")
  const { settings } = impl.machine
  const phase = impl.phase.current
  const failMax = settings.policy.shareableCount
  if (failMax === undefined || phase._tag !== "Closed" || phase.mode !== "Normal") return undefined
  return {
    failures: Machine.failures(impl.machine, impl.now()),
    failMax,
    firstOpenMillis: Machine.openDuration(settings, 1)
  }
}

/**
 * Adopts a decision taken elsewhere, with transition reason `"Remote"` (a
 * `HalfOpen` ends the open period now: `"OpenElapsed"`), never counted as a
 * local trip: an OPEN breaker only has its period and openings
 * aligned; a breaker forced open or disabled here adopts only `Closed` (a
 * reset) or the other mode; `HalfOpen` applies only to an OPEN breaker.
 * Returns whether the breaker changed.
 *
 * @since 0.1.0
 * @category remote
 */
export const adopt = (breaker: CircuitBreaker, decision: Decision): boolean => {
  const impl = implOf(breaker, "Remote.adopt")
  const machine = impl.machine
  const now = impl.now()
  switch (decision._tag) {
    case "Open":
      return Machine.adoptOpen(machine, decision.remainingMillis, decision.openings, now)
    case "HalfOpen":
      return Machine.adoptHalfOpen(machine, now)
    case "Closed":
      return Machine.adoptClosed(machine, now)
    default:
      return Machine.adoptMode(machine, decision._tag, now)
  }
}

/**
 * Runs `onLocal` for every transition the breaker decides itself (a trip, a
 * failed or successful probe, the end of an open period, an admin action),
 * synchronously and in order, until the scope closes. Decisions it adopted
 * (reason `"Remote"`) are not reported: a backend does not publish them back.
 * A `HalfOpen` it adopted is reported, as `"OpenElapsed"`: a backend that
 * publishes only trips, probe outcomes and admin actions skips it.
 *
 * @since 0.1.0
 * @category remote
 */
export const observe = (
  breaker: CircuitBreaker,
  onLocal: (transition: Transition) => void
): Effect.Effect<void, never, Scope.Scope> =>
  breaker.listen({
    onTransition: (transition) => {
      if (transition.reason !== "Remote") onLocal(transition)
    }
  })

/**
 * Calls and retries a retry budget counted over its window.
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetWindow {
  readonly calls: number
  readonly retries: number
}

/**
 * What this process's budget counted over its window, the other replicas'
 * shares left out: what a backend publishes for the others to add.
 *
 * @since 0.1.0
 * @category getters
 */
export const budgetWindow = (budget: RetryBudget): BudgetWindow =>
  BudgetShare.shareOf(budget, "Remote.budgetWindow").local()

/**
 * Makes the budget fleet-wide: `others` are the other replicas' windows added
 * up (and how many replicas they are), which the budget counts with its own,
 * so the ratio and the reserve bound the retries of the whole fleet.
 * `undefined` makes it count alone again (the backend lost its peers). Only
 * the budget's `available` changes; calls are never held.
 *
 * **Example** (Two replicas' budgets as one)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Remote, RetryBudget } from "@neural-hive/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const here = yield* RetryBudget.make({ name: "kafka_producer", ratio: 0.1, minPerSecond: 0 })
 *   const there = yield* RetryBudget.make({ name: "kafka_producer", ratio: 0.1, minPerSecond: 0 })
 *   for (let i = 0; i < 20; i++) yield* there.recordCall
 *   // `here` made no call, but the fleet made 20: it may retry twice.
 *   Remote.shareBudget(here, { ...Remote.budgetWindow(there), replicas: 1 })
 *   return here.stats().available // 2
 * })
 * ```
 *
 * @since 0.1.0
 * @category remote
 */
export const shareBudget = (
  budget: RetryBudget,
  others: (BudgetWindow & { readonly replicas: number }) | undefined
): void => BudgetShare.shareOf(budget, "Remote.shareBudget").share(others)
