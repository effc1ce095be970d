/**
 * The breaker's state machine, with no Effect in it.
 *
 * The state is one immutable `Phase` value per state (a discriminated union,
 * so a field exists only in the state where it means something), kept in a
 * cell `{ current }`: the breaker's `MutableRef` (see ARCHITECTURE.md, "The
 * state cell"), read and written synchronously, so the call path allocates
 * nothing while CLOSED. Every function takes the current time in milliseconds
 * and runs as one synchronous step, atomic on the JavaScript thread.
 * Transitions are reported through the machine's `hooks`.
 *
 * Internal: the public contract is `CircuitBreaker` (the breaker), its `view`
 * (readers) and `Remote` (coordination backends). The model types the public
 * API shows (`State`, `Mode`, `Transition`, ...) are declared in
 * `CircuitBreaker.ts`.
 *
 * @internal
 */
import type * as CircuitBreaker from "../CircuitBreaker.ts"
import type { TripCounter, TripPolicy } from "../TripPolicy.ts"

/** @internal */
export type State = CircuitBreaker.State

/** @internal */
export type Mode = CircuitBreaker.Mode

/**
 * How a finished call is judged. `slow` is a success slower than the slow-call
 * threshold and counts as a failure.
 *
 * @internal
 */
export type Outcome = Exclude<CircuitBreaker.CallOutcome, "rejected">

/** @internal */
export type TransitionReason = CircuitBreaker.TransitionReason

/** A transition as the machine reports it (the breaker adds the circuit's name and last error). @internal */
export type Transition = Omit<CircuitBreaker.Transition, "circuit" | "lastError">

/** @internal */
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
 * CLOSED: calls run and the trip policy counts them.
 *
 * @internal
 */
export interface Closed {
  readonly _tag: "Closed"
  readonly mode: "Normal" | "Disabled"
  /** Changes on every transition; an admission carries it so a late result from an older state changes nothing. */
  readonly generation: number
  /** Since when (Clock milliseconds) the breaker is in this state. */
  readonly since: number
}

/**
 * OPEN: calls are rejected until `until`.
 *
 * @internal
 */
export interface Open {
  readonly _tag: "Open"
  readonly mode: "Normal" | "ForcedOpen"
  readonly generation: number
  readonly since: number
  /** Openings in a row without a close in between (1-based); drives the open-duration growth. */
  readonly openings: number
  /** When the open period ends, in Clock milliseconds (Infinity when forced open). */
  readonly until: number
}

/**
 * HALF_OPEN: up to `permits` probes run.
 *
 * @internal
 */
export interface HalfOpen {
  readonly _tag: "HalfOpen"
  readonly mode: "Normal"
  readonly generation: number
  readonly since: number
  readonly openings: number
  /** Probes holding a permit: in flight or succeeded. An ignored (interrupted) probe gives its permit back. */
  readonly admitted: number
  /** Probes that succeeded in this HALF_OPEN period. */
  readonly successes: number
}

/**
 * The state of a breaker, one immutable value per state.
 *
 * @internal
 */
export type Phase = Closed | Open | HalfOpen

/**
 * Where the machine keeps its phase: a `{ current }` cell. The breaker passes
 * its `MutableRef` (whose documented API is that field), a test a plain object.
 *
 * @internal
 */
export interface Cell<A> {
  current: A
}

/**
 * How long the `openings`-th opening in a row lasts (1-based): `recoveryMillis`,
 * doubling up to `maxOpenMillis`, unless a schedule replaces it.
 *
 * @internal
 */
export const openDuration = (settings: Settings, openings: number): number =>
  settings.schedule !== undefined
    ? settings.schedule(openings)
    : Math.min(settings.recoveryMillis * 2 ** (openings - 1), settings.maxOpenMillis)

/**
 * What the machine reports to its owner.
 *
 * @internal
 */
export interface Hooks {
  /** Each transition, right after the phase changed. */
  onTransition(transition: Transition): void
  /** Called with the generation and the open duration each time the breaker opens by policy. */
  onOpen(generation: number, durationMillis: number): void
}

/** @internal */
export interface Machine {
  readonly settings: Settings
  /** The trip policy's counter: failures while CLOSED, plus failed probes until the breaker closes. */
  readonly counter: TripCounter
  readonly phase: Cell<Phase>
  hooks: Hooks
}

/**
 * What `admit` returns when a call may not run.
 *
 * @internal
 */
export const REJECTED = -1

const noHooks: Hooks = { onTransition: () => {}, onOpen: () => {} }

/**
 * The phase a new breaker starts in.
 *
 * @internal
 */
export const initialPhase = (now: number, mode: Mode = "Normal"): Phase =>
  mode === "ForcedOpen"
    ? { _tag: "Open", mode, generation: 0, since: now, openings: 0, until: Infinity }
    : { _tag: "Closed", mode, generation: 0, since: now }

/**
 * A machine over `phase`, a cell that already holds the starting phase (the
 * breaker's, made with `initialPhase`), or a new cell starting in
 * `initialPhase(now, mode)` when none is given (tests).
 *
 * @internal
 */
export const make = (
  settings: Settings,
  now: number,
  mode: Mode = "Normal",
  hooks: Hooks = noHooks,
  phase: Cell<Phase> = { current: initialPhase(now, mode) }
): Machine => ({ settings, counter: settings.policy.counter(), phase, hooks })

/**
 * The current state.
 *
 * @internal
 */
export const state = (m: Machine): State => m.phase.current._tag

/** @internal */
export const mode = (m: Machine): Mode => m.phase.current.mode

/**
 * Milliseconds until a rejected caller may try again.
 *
 * @internal
 */
export const retryAfter = (m: Machine, now: number): number => {
  const phase = m.phase.current
  return phase._tag === "Open" ? Math.max(0, phase.until - now) : 0
}

/** @internal */
export const failures = (m: Machine, now: number): number => m.counter.failures(now)

// Installs `next` (its generation one past the current one) and reports the transition.
const move = (m: Machine, next: Phase, reason: TransitionReason, now: number): void => {
  const from = m.phase.current._tag
  m.phase.current = next
  m.hooks.onTransition({
    from,
    to: next._tag,
    mode: next.mode,
    reason,
    at: now,
    failures: m.counter.failures(now),
    retryAfterMillis: retryAfter(m, now)
  })
}

const open = (m: Machine, from: Phase, reason: TransitionReason, now: number): void => {
  const openings = (from._tag === "Closed" ? 0 : from.openings) + 1
  const duration = openDuration(m.settings, openings)
  const generation = from.generation + 1
  move(m, { _tag: "Open", mode: "Normal", generation, since: now, openings, until: now + duration }, reason, now)
  m.hooks.onOpen(generation, duration)
}

const close = (m: Machine, mode: Closed["mode"], reason: TransitionReason, now: number): void => {
  m.counter.reset()
  move(m, { _tag: "Closed", mode, generation: m.phase.current.generation + 1, since: now }, reason, now)
}

const halfOpen = (m: Machine, from: Open, now: number): void =>
  move(
    m,
    {
      _tag: "HalfOpen",
      mode: "Normal",
      generation: from.generation + 1,
      since: now,
      openings: from.openings,
      admitted: 0,
      successes: 0
    },
    "OpenElapsed",
    now
  )

/**
 * Moves an OPEN breaker whose open period has ended to HALF_OPEN. Called by the
 * breaker's timer with the generation it was started for, and by `admit`.
 *
 * @internal
 */
export const expire = (m: Machine, generation: number, now: number): void => {
  const phase = m.phase.current
  // A forced-open breaker never expires: its `until` is Infinity.
  if (phase._tag === "Open" && phase.generation === generation && now >= phase.until) halfOpen(m, phase, now)
}

/**
 * Decides whether a call may run. Returns the generation to hand back to
 * `complete`, or `REJECTED`.
 *
 * @internal
 */
export const admit = (m: Machine, now: number): number => {
  const phase = m.phase.current
  if (phase._tag === "Closed") return phase.generation
  if (phase._tag === "Open") {
    // Forced open: `until` is Infinity.
    if (now < phase.until) return REJECTED
    // The caller that ends the open period takes the first permit.
    halfOpen(m, phase, now)
  }
  const probing = m.phase.current as HalfOpen
  if (probing.admitted >= m.settings.permits) return REJECTED
  m.phase.current = { ...probing, admitted: probing.admitted + 1 }
  return probing.generation
}

/**
 * Records the outcome of a call admitted with `generation`. A result from an
 * older generation, or any result while disabled or forced open, changes nothing.
 *
 * @internal
 */
export const complete = (m: Machine, generation: number, outcome: Outcome, now: number): void => {
  const phase = m.phase.current
  if (generation !== phase.generation || phase.mode !== "Normal") return
  switch (phase._tag) {
    case "Closed": {
      if (outcome === "ignored") return
      // Rate policies decide on every recorded outcome: a success can complete the sample that trips.
      const trip = outcome === "success" ? m.counter.success(now) === true : m.counter.failure(now)
      if (trip) open(m, phase, "Tripped", now)
      return
    }
    case "HalfOpen": {
      if (outcome === "ignored") {
        m.phase.current = { ...phase, admitted: phase.admitted - 1 }
      } else if (outcome === "success") {
        if (phase.successes + 1 >= m.settings.successThreshold) close(m, "Normal", "ProbesSucceeded", now)
        else m.phase.current = { ...phase, successes: phase.successes + 1 }
      } else {
        // A failed trial counts, as pybreaker's fail_counter does: `failures` grows until the breaker closes.
        m.counter.failure(now)
        open(m, phase, "ProbeFailed", now)
      }
      return
    }
      // OPEN admits nothing under its own generation: no result can carry it.
  }
}

/**
 * Holds the breaker OPEN, rejecting every call, until `reset`. Returns `false`
 * (and reports nothing) when it was already forced open.
 *
 * @internal
 */
export const forceOpen = (m: Machine, now: number): boolean => {
  const phase = m.phase.current
  if (phase.mode === "ForcedOpen") return false
  const openings = phase._tag === "Closed" ? 0 : phase.openings
  move(
    m,
    {
      _tag: "Open",
      mode: "ForcedOpen",
      generation: phase.generation + 1,
      since: now,
      openings,
      until: Infinity
    },
    "ForcedOpen",
    now
  )
  return true
}

/**
 * Lets every call through; outcomes are still measured but never trip.
 * Returns `false` (and reports nothing) when it was already disabled.
 *
 * @internal
 */
export const disable = (m: Machine, now: number): boolean => {
  if (m.phase.current.mode === "Disabled") return false
  close(m, "Disabled", "Disabled", now)
  return true
}

/**
 * Back to CLOSED and `Normal` with every count forgotten. On a breaker that is
 * already CLOSED and `Normal` it only forgets the counts, reports nothing and
 * returns `false`.
 *
 * @internal
 */
export const reset = (m: Machine, now: number): boolean => {
  const phase = m.phase.current
  if (phase._tag === "Closed" && phase.mode === "Normal") {
    m.counter.reset()
    return false
  }
  close(m, "Normal", "Reset", now)
  return true
}

// --- decisions taken elsewhere ------------------------------------------------
// A fleet of replicas shares trips, probe results and admin actions. Adopting one moves the machine
// with reason "Remote"; the trip policy's count is left alone, and nothing here counts as a local trip.

/**
 * Adopts an open period decided elsewhere: OPEN for `remainingMillis` more, as
 * the `openings`-th opening in a row (so the next reopening doubles alike). An
 * OPEN breaker only has its period and openings aligned (no transition); a
 * forced-open or disabled breaker is left alone. Returns whether anything changed.
 *
 * @internal
 */
export const adoptOpen = (m: Machine, remainingMillis: number, openings: number, now: number): boolean => {
  const phase = m.phase.current
  if (phase.mode !== "Normal") return false
  const until = now + Math.max(0, remainingMillis)
  if (phase._tag === "Open") {
    if (phase.until === until && phase.openings === openings) return false
    m.phase.current = { ...phase, until, openings }
  } else {
    const generation = phase.generation + 1
    move(m, { _tag: "Open", mode: "Normal", generation, since: now, openings, until }, "Remote", now)
  }
  m.hooks.onOpen(m.phase.current.generation, until - now)
  return true
}

/**
 * Ends an OPEN breaker's period now, whatever is left of it: this replica won
 * the fleet's probe lease. Returns whether it moved to HALF_OPEN.
 *
 * @internal
 */
export const adoptHalfOpen = (m: Machine, now: number): boolean => {
  const phase = m.phase.current
  if (phase._tag !== "Open" || phase.mode !== "Normal") return false
  halfOpen(m, phase, now)
  return true
}

/**
 * Adopts a close decided elsewhere (a peer's probe succeeded, or a reset):
 * CLOSED and `Normal`, counts forgotten. A breaker already CLOSED and `Normal`
 * is left alone (its own count stays). Returns whether anything changed.
 *
 * @internal
 */
export const adoptClosed = (m: Machine, now: number): boolean => {
  const phase = m.phase.current
  if (phase._tag === "Closed" && phase.mode === "Normal") return false
  close(m, "Normal", "Remote", now)
  return true
}

/**
 * Adopts a force-open or a disable decided elsewhere. Returns whether anything changed.
 *
 * @internal
 */
export const adoptMode = (m: Machine, mode: "ForcedOpen" | "Disabled", now: number): boolean => {
  const phase = m.phase.current
  if (phase.mode === mode) return false
  if (mode === "Disabled") {
    close(m, "Disabled", "Remote", now)
  } else {
    const openings = phase._tag === "Closed" ? 0 : phase.openings
    const generation = phase.generation + 1
    move(m, { _tag: "Open", mode, generation, since: now, openings, until: Infinity }, "Remote", now)
  }
  return true
}
