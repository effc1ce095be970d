/**
 * The breaker's state machine, with no Effect in it.
 *
 * Every function takes the current time in milliseconds and mutates the
 * machine in place inside one synchronous step, so a step is atomic on the
 * JavaScript thread and the call path allocates nothing. Transitions are
 * reported through the machine's `hooks`, which the Effect layer provides.
 *
 * @since 0.1.0
 */
import type { TripCounter, TripPolicy } from "./TripPolicy.ts"

/**
 * The three states of DESIGN.md; the gauge encodes them as 0, 1 and 2.
 *
 * @since 0.1.0
 * @category models
 */
export type State = "Closed" | "Open" | "HalfOpen"

/**
 * `Normal` follows the policy; `ForcedOpen` rejects every call until a reset;
 * `Disabled` lets every call through and only measures.
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "Normal" | "ForcedOpen" | "Disabled"

/**
 * How a finished call is judged. `slow` is a success slower than the slow-call
 * threshold and counts as a failure.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = "success" | "failure" | "slow" | "ignored"

/**
 * @since 0.1.0
 * @category models
 */
export type TransitionReason =
  | "Tripped"
  | "ProbeFailed"
  | "OpenElapsed"
  | "ProbesSucceeded"
  | "ForcedOpen"
  | "Disabled"
  | "Reset"

/**
 * @since 0.1.0
 * @category models
 */
export interface Transition {
  readonly from: State
  readonly to: State
  readonly mode: Mode
  readonly reason: TransitionReason
  /** When it happened, in Clock milliseconds. */
  readonly at: number
  /** Counted failures the policy held when the transition happened. */
  readonly failures: number
  /** Milliseconds until the next probe is admitted (OPEN only, else 0; Infinity when forced open). */
  readonly retryAfterMillis: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  readonly policy: TripPolicy
  /** Probe calls admitted per HALF_OPEN period. */
  readonly permits: number
  /** Successful probes that close the breaker (at most `permits`). */
  readonly successThreshold: number
  /** The first open period, in milliseconds. */
  readonly recoveryMillis: number
  /** The cap of the doubling open period, in milliseconds. */
  readonly maxOpenMillis: number
  /** Replaces the doubling: the open period of the `openings`-th opening in a row (1-based). */
  readonly schedule?: ((openings: number) => number) | undefined
}

/**
 * How long the `openings`-th opening in a row lasts (1-based): `recoveryMillis`,
 * doubling up to `maxOpenMillis`, unless a schedule replaces it.
 *
 * @since 0.1.0
 * @category getters
 */
export const openDuration = (settings: Settings, openings: number): number =>
  settings.schedule !== undefined
    ? settings.schedule(openings)
    : Math.min(settings.recoveryMillis * 2 ** (openings - 1), settings.maxOpenMillis)

/**
 * What the machine reports to its owner.
 *
 * @since 0.1.0
 * @category models
 */
export interface Hooks {
  onTransition(transition: Transition): void
  /** Called with the generation and the open duration each time the breaker opens by policy. */
  onOpen(generation: number, durationMillis: number): void
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Machine {
  readonly settings: Settings
  readonly counter: TripCounter
  state: State
  mode: Mode
  /** Changes on every transition; an admission carries it so a late result from an older state changes nothing. */
  generation: number
  /** Openings in a row without a close in between; drives the open-duration growth. */
  openings: number
  openUntil: number
  probesAdmitted: number
  probeSuccesses: number
  /** Since when the breaker is in its current state. */
  since: number
  hooks: Hooks
}

/**
 * What `admit` returns when a call may not run.
 *
 * @since 0.1.0
 * @category constants
 */
export const REJECTED = -1

const noHooks: Hooks = { onTransition: () => {}, onOpen: () => {} }

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (settings: Settings, now: number, mode: Mode = "Normal", hooks: Hooks = noHooks): Machine => ({
  settings,
  counter: settings.policy.counter(),
  state: mode === "ForcedOpen" ? "Open" : "Closed",
  mode,
  generation: 0,
  openings: 0,
  openUntil: mode === "ForcedOpen" ? Infinity : 0,
  probesAdmitted: 0,
  probeSuccesses: 0,
  since: now,
  hooks
})

/**
 * Milliseconds until a rejected caller may try again.
 *
 * @since 0.1.0
 * @category getters
 */
export const retryAfter = (m: Machine, now: number): number => m.state === "Open" ? Math.max(0, m.openUntil - now) : 0

/**
 * @since 0.1.0
 * @category getters
 */
export const failures = (m: Machine, now: number): number => m.counter.failures(now)

const move = (m: Machine, to: State, reason: TransitionReason, now: number): void => {
  const from = m.state
  m.state = to
  m.generation++
  m.since = now
  m.probesAdmitted = 0
  m.probeSuccesses = 0
  m.hooks.onTransition({
    from,
    to,
    mode: m.mode,
    reason,
    at: now,
    failures: m.counter.failures(now),
    retryAfterMillis: retryAfter(m, now)
  })
}

const open = (m: Machine, reason: TransitionReason, now: number): void => {
  m.openings++
  const duration = openDuration(m.settings, m.openings)
  m.openUntil = now + duration
  move(m, "Open", reason, now)
  m.hooks.onOpen(m.generation, duration)
}

const close = (m: Machine, reason: TransitionReason, now: number): void => {
  m.counter.reset()
  m.openings = 0
  m.openUntil = 0
  move(m, "Closed", reason, now)
}

/**
 * Moves an OPEN breaker whose open period has ended to HALF_OPEN. Called by the
 * breaker's timer with the generation it was started for, and by `admit`.
 *
 * @since 0.1.0
 * @category transitions
 */
export const expire = (m: Machine, generation: number, now: number): void => {
  if (m.generation === generation && m.state === "Open" && m.mode === "Normal" && now >= m.openUntil) {
    move(m, "HalfOpen", "OpenElapsed", now)
  }
}

/**
 * Decides whether a call may run. Returns the generation to hand back to
 * `complete`, or `REJECTED`.
 *
 * @since 0.1.0
 * @category transitions
 */
export const admit = (m: Machine, now: number): number => {
  switch (m.state) {
    case "Closed":
      return m.generation
    case "Open":
      if (m.mode !== "Normal" || now < m.openUntil) return REJECTED
      move(m, "HalfOpen", "OpenElapsed", now)
      m.probesAdmitted = 1
      return m.generation
    case "HalfOpen":
      if (m.probesAdmitted >= m.settings.permits) return REJECTED
      m.probesAdmitted++
      return m.generation
  }
}

/**
 * Records the outcome of a call admitted with `generation`. A result from an
 * older generation, or any result while disabled, changes nothing.
 *
 * @since 0.1.0
 * @category transitions
 */
export const complete = (m: Machine, generation: number, outcome: Outcome, now: number): void => {
  if (generation !== m.generation || m.mode !== "Normal") return
  if (m.state === "Closed") {
    if (outcome === "success") m.counter.success(now)
    else if (outcome !== "ignored" && m.counter.failure(now)) open(m, "Tripped", now)
    return
  }
  // HALF_OPEN: this was a probe (OPEN admits nothing, and OPEN has its own generation).
  if (outcome === "ignored") {
    m.probesAdmitted--
  } else if (outcome === "success") {
    if (++m.probeSuccesses >= m.settings.successThreshold) close(m, "ProbesSucceeded", now)
  } else {
    open(m, "ProbeFailed", now)
  }
}

/**
 * Holds the breaker OPEN, rejecting every call, until `reset`.
 *
 * @since 0.1.0
 * @category manual control
 */
export const forceOpen = (m: Machine, now: number): void => {
  m.mode = "ForcedOpen"
  m.openUntil = Infinity
  move(m, "Open", "ForcedOpen", now)
}

/**
 * Lets every call through; outcomes are still measured but never trip.
 *
 * @since 0.1.0
 * @category manual control
 */
export const disable = (m: Machine, now: number): void => {
  m.mode = "Disabled"
  m.counter.reset()
  m.openings = 0
  m.openUntil = 0
  move(m, "Closed", "Disabled", now)
}

/**
 * Back to CLOSED and `Normal` with every count forgotten.
 *
 * @since 0.1.0
 * @category manual control
 */
export const reset = (m: Machine, now: number): void => {
  m.mode = "Normal"
  close(m, "Reset", now)
}
