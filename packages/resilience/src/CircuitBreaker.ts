/**
 * Circuit breakers for calls to unreliable dependencies.
 *
 * A breaker is made in a `Scope`, reads time from the `Clock` of the fiber that
 * made it (so `TestClock` drives it), and guards any effect through
 * `withBreaker` (fail-fast: an open circuit fails with `CircuitBreakerError`);
 * `failOpen` after it turns a refused or failed call into a fallback.
 *
 * - CLOSED: calls run; the trip policy decides when to open (default: `failMax`
 *   consecutive counted failures).
 * - OPEN: calls are rejected at once with `retryAfter`. When the open period
 *   ends the breaker moves to HALF_OPEN at that moment, even with no call.
 * - HALF_OPEN: `halfOpen.permits` probes run; `successThreshold` successes
 *   close it, any counted failure reopens it for twice as long (up to
 *   `maxOpenDuration`). An interrupted probe frees its permit.
 *
 * **Example** (Failing fast once a dependency is down)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 5, recoveryTimeout: "30 seconds" })
 *   return yield* Effect.succeed("sent").pipe(withBreaker(breaker))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import {
  type CircuitBreakerError,
  CircuitBreakerOptionsError,
  type CircuitBreakerTimeoutError
} from "./CircuitBreakerError.ts"
import { BreakerImpl, TypeId as InternalTypeId } from "./internal/breaker.ts"
import * as internalOptions from "./internal/options.ts"
import * as Registries from "./Registry.ts"
import * as TripPolicies from "./TripPolicy.ts"
import type { TripPolicy } from "./TripPolicy.ts"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  CircuitBreakerError,
  /**
   * @since 0.1.0
   * @category errors
   */
  CircuitBreakerOptionsError,
  /**
   * @since 0.1.0
   * @category errors
   */
  CircuitBreakerTimeoutError,
  /**
   * @since 0.1.0
   * @category errors
   */
  type RejectionReason
} from "./CircuitBreakerError.ts"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = InternalTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@neural-hive/resilience/CircuitBreaker"

/**
 * The three states; the `circuit_breaker_state` gauge encodes them as 0, 1 and 2.
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
 * Why a breaker changed state. `Remote`: a decision adopted from elsewhere
 * (`Remote.adopt`, a fleet).
 *
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
  | "Remote"

/**
 * A state change, as listeners and `transitions` see it, with the circuit's
 * name and the last counted failure's message (secrets removed) at that moment.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transition {
  readonly circuit: string
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
  readonly lastError: string | undefined
}

/**
 * The result of one guarded call, as metrics count it. `slow` is a success
 * slower than `slowCallThreshold`, counted as a failure; `ignored` an
 * interrupted call or a failure the classifiers exclude.
 *
 * @since 0.1.0
 * @category models
 */
export type CallOutcome = "success" | "failure" | "slow" | "ignored" | "rejected"

/**
 * How callers see an open breaker: `fail-fast` (a typed error) or `fail-open`
 * (the call is skipped and the program goes on without the dependency).
 *
 * @since 0.1.0
 * @category models
 */
export type FailureMode = "fail-fast" | "fail-open"

/**
 * Open after `failMax` consecutive counted failures (the default, with `failMax` 5).
 * The same function as `TripPolicy.consecutive`.
 *
 * @since 0.1.0
 * @category policies
 */
export const consecutive = TripPolicies.consecutive

/**
 * Open when the failure ratio over the last `size` calls reaches `threshold`
 * (in (0, 1]), once `minimumCalls` (default `size`) calls were seen; checked
 * after every recorded call. The same function as `TripPolicy.failureRate`.
 *
 * @since 0.1.0
 * @category policies
 */
export const failureRate = TripPolicies.failureRate

/**
 * Open when the failure ratio over the last `window` reaches `threshold`, once
 * `minimumCalls` calls fell inside the window; checked after every recorded
 * call. The same function as `TripPolicy.failureRateOverTime`.
 *
 * @since 0.1.0
 * @category policies
 */
export const failureRateOverTime = TripPolicies.failureRateOverTime

/**
 * Every default of a breaker, in one table (durations in milliseconds).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = internalOptions.defaults

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The circuit's name, used as the `circuit` label: `kafka_producer`, `redis_client`, ... */
  readonly name: string
  /**
   * Consecutive counted failures that open the breaker (default 5). Exclusive with `policy`.
   * Every guarded call counts, the integrations' start-up check included (`@neural-hive/redis`,
   * `mongodb`, `temporal` and `kafka` check the dependency once when their layer is built, through
   * the breaker): with a dependency down from the start, `failMax: 5` opens at the fourth failed call.
   */
  readonly failMax?: number | undefined
  /** How long the first opening lasts (default 30 seconds). Seed: `recoveryTimeoutSeconds`. */
  readonly recoveryTimeout?: Duration.Input | undefined
  /** The cap of the doubling open duration (default 60 seconds, at least `recoveryTimeout`). Seed: `timeoutSeconds`. */
  readonly maxOpenDuration?: Duration.Input | undefined
  /** Replaces the doubling: the n-th delay of the schedule is the n-th opening in a row. */
  readonly openDuration?: Schedule.Schedule<unknown, unknown> | undefined
  /** Probes admitted in HALF_OPEN (default 1) and successes that close the breaker (default `permits`). */
  readonly halfOpen?: {
    readonly permits?: number | undefined
    readonly successThreshold?: number | undefined
  } | undefined
  /** A call slower than this is interrupted and counts as a failure. */
  readonly callTimeout?: Duration.Input | undefined
  /** A successful call slower than this counts as a failure (the caller still gets its value). */
  readonly slowCallThreshold?: Duration.Input | undefined
  /** The trip policy (default `consecutive(failMax)`). */
  readonly policy?: TripPolicy | undefined
  /**
   * Which typed failures count against the dependency (default: all). Defects and
   * `CircuitBreakerTimeoutError` always count; interruptions never. A call-level
   * classifier (`withBreaker(breaker, isFailure)`, the facade's `isFailure`) narrows
   * this one: an error counts only when both say it counts.
   */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /**
   * What an excluded failure (one a classifier says does not count) is recorded as:
   * `"ignored"` (default: it changes no count) or `"success"` (pybreaker's
   * `exclude`: it resets the consecutive count like a success).
   */
  readonly excluded?: "ignored" | "success" | undefined
  /**
   * pybreaker's behaviour: the call whose failure opens the breaker (a trip or a
   * failed probe) fails with `CircuitBreakerError { reason: "Tripped", cause }`
   * instead of its own error (default `false`: the caller gets its own error).
   * Typed failures only; a defect stays a defect.
   */
  readonly throwOnTrip?: boolean | undefined
  /**
   * The dependency's cheap, side-effect-free health check (PING, metadata, a
   * health RPC). When the open period ends and no call takes the HALF_OPEN permit
   * within `probeGrace`, the breaker runs it itself as the trial, so an idle
   * breaker closes on its own. Classified like a call; bounded by `callTimeout`
   * (or `probeTimeout`); never two at once; stops with the breaker's scope.
   */
  readonly probe?: Effect.Effect<unknown, unknown> | undefined
  /** How long HALF_OPEN waits for a real call before probing, and between probes (default 1 second). */
  readonly probeGrace?: Duration.Input | undefined
  /** Bounds a probe when the breaker has no `callTimeout` (default 10 seconds). */
  readonly probeTimeout?: Duration.Input | undefined
  /** `false` makes a pass-through breaker that still measures (the Python service's `enabled`). */
  readonly enabled?: boolean | undefined
  /** How callers of this dependency see an open breaker; informs `/health` (default `fail-fast`). */
  readonly failureMode?: FailureMode | undefined
}

/**
 * A breaker's counters and state at one moment.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly state: State
  readonly mode: Mode
  readonly failureMode: FailureMode
  /**
   * Counted failures the trip policy holds: in CLOSED the policy's count
   * (consecutive failures, or failures inside the window); in OPEN and HALF_OPEN
   * the count that tripped the breaker plus every failed probe since (as
   * pybreaker's `fail_counter`); 0 again once the breaker closes.
   */
  readonly failures: number
  readonly retryAfterMillis: number
  /** Since when (Clock milliseconds) the breaker is in its state. */
  readonly since: number
  readonly totals: Totals
  /** The message of the last counted failure, with secrets removed. */
  readonly lastError: string | undefined
}

/**
 * Cumulative counts since the breaker was made.
 *
 * @since 0.1.0
 * @category models
 */
export interface Totals {
  readonly successes: number
  readonly failures: number
  readonly slow: number
  readonly ignored: number
  readonly rejected: number
  readonly trips: number
}

/**
 * Callbacks run synchronously by the breaker. Keep them cheap: `onCall` runs
 * on the call path, for every call.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listener {
  /** Every transition of the breaker, synchronously, in order. */
  readonly onTransition?: ((transition: Transition) => void) | undefined
  /**
   * Every call's outcome and duration. The duration is `NaN` for a call that
   * started before the first `onCall` listener was added (it was not timed),
   * and 0 for a rejection.
   */
  readonly onCall?: ((outcome: CallOutcome, durationMillis: number) => void) | undefined
  /**
   * An effect run on the calling fiber when each call ends (rejections
   * included), so it sees that fiber's span: `@neural-hive/observability`'s
   * `Tracing.layer` annotates the current span with it. `exit` is the call's.
   */
  readonly annotate?: Annotate | undefined
}

/**
 * See `Listener.annotate`.
 *
 * @since 0.1.0
 * @category models
 */
export type Annotate = (outcome: CallOutcome, state: State, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<void>

/**
 * Told, synchronously, how one call ended, in which state it was admitted or
 * rejected, and whether its outcome opened the breaker. See `CircuitBreaker.protect`.
 *
 * @since 0.1.0
 * @category models
 */
export type OnSettled = (outcome: CallOutcome, state: State, tripped: boolean) => void

/**
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly failureMode: FailureMode
  /** The current state; an elapsed open period reads as HALF_OPEN. */
  readonly state: Effect.Effect<State>
  readonly snapshot: Effect.Effect<Snapshot>
  /**
   * Guards an effect (see `withBreaker`). `onSettled` is told this call's
   * outcome and the state it was admitted or rejected in (for tracing).
   */
  readonly protect: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    isFailure?: ((error: E) => boolean) | undefined,
    onSettled?: OnSettled | undefined
  ) => Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R>
  /** Every transition, from the moment of subscription. */
  readonly transitions: Stream.Stream<Transition>
  /** Runs `listener` for every transition and call until the scope closes. */
  readonly listen: (listener: Listener) => Effect.Effect<void, never, Scope.Scope>
  /** Holds the breaker OPEN, rejecting every call, until `reset`. `false` when it already was (nothing published). */
  readonly forceOpen: Effect.Effect<boolean>
  /** Lets every call through, still measured, until `reset`. `false` when it already was (nothing published). */
  readonly disable: Effect.Effect<boolean>
  /**
   * Back to CLOSED with every count forgotten. `false` when it was already CLOSED
   * and not disabled: the counts are forgotten, no transition is published.
   */
  readonly reset: Effect.Effect<boolean>
  /**
   * The breaker read synchronously (state, snapshot, totals), for code that
   * cannot run an effect: metrics collected at scrape time, a Promise API.
   */
  readonly view: View
}

/**
 * A breaker read synchronously: what `breaker.state` and `breaker.snapshot`
 * give, without an effect to run, for metrics collected at scrape time, health
 * handlers and code outside Effect. A view never admits or settles a call; like
 * `breaker.state`, `state()` and `snapshot()` read an elapsed open period as
 * HALF_OPEN (and move the breaker there, reporting the transition).
 *
 * **Example** (Reading a breaker at scrape time)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "@neural-hive/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "redis_client" })
 *   const gauge = () => (breaker.view.state() === "Closed" ? 0 : 1)
 *   return { gauge: gauge(), calls: breaker.view.totals().successes }
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface View {
  /** The current state (an elapsed open period reads as HALF_OPEN). */
  state(): State
  /** The breaker's state and counts now (an elapsed open period reads as HALF_OPEN). */
  snapshot(): Snapshot
  /** The cumulative counts since the breaker was made (reads nothing else, moves nothing). */
  totals(): Totals
  /**
   * Runs `listener` for every transition and call until `unsubscribe(listener)`: `breaker.listen` without a
   * scope, for code outside Effect and for observers of many breakers, which keep nothing per breaker for it.
   */
  subscribe(listener: Listener): void
  /** Stops running `listener` (every subscription of it); nothing when it is not subscribed. */
  unsubscribe(listener: Listener): void
}

/**
 * Makes a breaker that lives as long as the scope. When a
 * `Registry.Registry` is in the context the breaker registers itself in it
 * (a name already registered fails). Bad options fail with
 * `CircuitBreakerOptionsError` naming the option, the value and what is allowed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<CircuitBreaker, CircuitBreakerOptionsError, Scope.Scope> = Effect
  .fnUntraced(function*(options: Options) {
    const settings = internalOptions.validate(options)
    if (settings instanceof CircuitBreakerOptionsError) return yield* settings
    const schedule = options.openDuration === undefined
      ? undefined
      : yield* internalOptions.scheduleDelays(options.openDuration)
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const scope = yield* Scope.Scope
    const breaker = new BreakerImpl(
      options,
      { ...settings, machine: { ...settings.machine, schedule } },
      clock,
      context
    )
    // A bound method rather than `Effect.sync(() => breaker.close())`: ~150 B less per breaker.
    yield* Scope.addFinalizerExit(scope, breaker.finalize.bind(breaker))
    const registry = yield* Effect.serviceOption(Registries.Registry)
    if (Option.isSome(registry)) yield* registry.value.register(breaker)
    return breaker
  })

/**
 * A breaker as a service: provides `tag` with a breaker made from `options`,
 * living as long as the layer (registered in the `Registry` when one is in the
 * context).
 *
 * **Example** (Declaring a breaker as a service)
 *
 * ```ts
 * import { Context, Effect } from "effect"
 * import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
 *
 * class KafkaBreaker extends Context.Service<KafkaBreaker, CircuitBreaker.CircuitBreaker>()("app/KafkaBreaker") {}
 *
 * const KafkaBreakerLive = CircuitBreaker.layer(KafkaBreaker, { name: "kafka_producer", failMax: 5 })
 *
 * const publish = Effect.gen(function*() {
 *   const breaker = yield* KafkaBreaker
 *   return yield* Effect.succeed("sent").pipe(withBreaker(breaker))
 * })
 *
 * const program = publish.pipe(Effect.provide(KafkaBreakerLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Key<I, CircuitBreaker>,
  options: Options
): Layer.Layer<I, CircuitBreakerOptionsError> => Layer.effect(tag, make(options))

/**
 * Guards `self` with `breaker` (fail-fast): when the breaker is OPEN (or every
 * HALF_OPEN permit is taken) `self` does not run and the call fails with
 * `CircuitBreakerError`; a call past the breaker's `callTimeout` fails with
 * `CircuitBreakerTimeoutError`. `isFailure` narrows the breaker's own
 * classification for this call: a typed failure counts only when both say so.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withBreaker: {
  <E>(
    breaker: CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R>
} = function(
  selfOrBreaker: Effect.Effect<unknown, unknown, unknown> | CircuitBreaker,
  breakerOrIsFailure?: CircuitBreaker | ((error: unknown) => boolean),
  isFailure?: (error: unknown) => boolean
): any {
  // Written out rather than `dual`: this runs on every call, and `dual` with a predicate goes through `arguments`.
  if (Effect.isEffect(selfOrBreaker)) return (breakerOrIsFailure as CircuitBreaker).protect(selfOrBreaker, isFailure)
  const breaker = selfOrBreaker as CircuitBreaker
  const classify = breakerOrIsFailure as ((error: unknown) => boolean) | undefined
  return (self: Effect.Effect<unknown, unknown, unknown>) => breaker.protect(self, classify)
}

/**
 * Milliseconds of a duration option (`fallback` when absent), or
 * `CircuitBreakerOptionsError` naming the option when it is not a finite
 * duration > 0. For the client options of the integration packages, which share
 * the breaker's name and error.
 *
 * @since 0.1.0
 * @category validation
 */
export const durationOption = internalOptions.durationOption

/**
 * Checks options without making a breaker; returns the first problem found.
 *
 * @since 0.1.0
 * @category validation
 */
export const validate = (options: Options): CircuitBreakerOptionsError | undefined => {
  const settings = internalOptions.validate(options)
  return settings instanceof CircuitBreakerOptionsError ? settings : undefined
}
