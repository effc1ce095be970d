/**
 * Circuit breakers for calls to unreliable dependencies.
 *
 * A breaker is made in a `Scope`, reads time from the `Clock` of the fiber that
 * made it (so `TestClock` drives it), and guards any effect through
 * `withBreaker` (fail-fast: an open circuit fails with `CircuitBreakerError`) or
 * `withBreakerOption` (fail-open: an open circuit or a failure gives
 * `Option.none()`).
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
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Machine from "./Machine.ts"
import { redact } from "./Redact.ts"
import type { TripPolicy } from "./TripPolicy.ts"
import * as Policies from "./TripPolicy.ts"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@neural-hive/resilience/CircuitBreaker"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@neural-hive/resilience/CircuitBreaker"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export type State = Machine.State

/**
 * @since 0.1.0
 * @category models
 */
export type Mode = Machine.Mode

/**
 * A state change, as listeners and `transitions` see it: the machine's
 * transition plus the circuit's name and the last counted failure's message
 * (secrets removed) at that moment.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transition extends Machine.Transition {
  readonly circuit: string
  readonly lastError: string | undefined
}

/**
 * The result of one guarded call, as metrics count it.
 *
 * @since 0.1.0
 * @category models
 */
export type CallOutcome = Machine.Outcome | "rejected"

/**
 * How callers see an open breaker: `fail-fast` (a typed error) or `fail-open`
 * (the call is skipped and the program goes on without the dependency).
 *
 * @since 0.1.0
 * @category models
 */
export type FailureMode = "fail-fast" | "fail-open"

/**
 * Trip policy descriptions. Make them with `consecutive`, `failureRate` and
 * `failureRateOverTime`, or pass any `TripPolicy` for a policy of your own.
 *
 * @since 0.1.0
 * @category models
 */
export type Policy =
  | { readonly _tag: "Consecutive"; readonly failMax: number }
  | {
    readonly _tag: "FailureRate"
    readonly threshold: number
    readonly size: number
    readonly minimumCalls?: number | undefined
  }
  | {
    readonly _tag: "FailureRateOverTime"
    readonly threshold: number
    readonly window: Duration.Input
    readonly minimumCalls: number
    readonly buckets?: number | undefined
  }
  | { readonly _tag: "Custom"; readonly policy: TripPolicy }

/**
 * Open after `failMax` consecutive counted failures (the default, with `failMax` 5).
 *
 * @since 0.1.0
 * @category policies
 */
export const consecutive = (failMax: number): Policy => ({ _tag: "Consecutive", failMax })

/**
 * Open when the failure ratio over the last `size` calls reaches `threshold`
 * (in (0, 1]), once `minimumCalls` (default `size`) calls were seen.
 *
 * @since 0.1.0
 * @category policies
 */
export const failureRate = (options: {
  readonly threshold: number
  readonly size: number
  readonly minimumCalls?: number | undefined
}): Policy => ({ _tag: "FailureRate", ...options })

/**
 * Open when the failure ratio over the last `window` reaches `threshold`, once
 * `minimumCalls` calls fell inside the window.
 *
 * @since 0.1.0
 * @category policies
 */
export const failureRateOverTime = (options: {
  readonly threshold: number
  readonly window: Duration.Input
  readonly minimumCalls: number
  readonly buckets?: number | undefined
}): Policy => ({ _tag: "FailureRateOverTime", ...options })

/**
 * A policy of your own, as a `TripPolicy` (see `TripPolicy.ts`).
 *
 * @since 0.1.0
 * @category policies
 */
export const custom = (policy: TripPolicy): Policy => ({ _tag: "Custom", policy })

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The circuit's name, used as the `circuit` label: `kafka_producer`, `redis_client`, ... */
  readonly name: string
  /** Consecutive counted failures that open the breaker (default 5). Exclusive with `policy`. */
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
  readonly policy?: Policy | undefined
  /** Which typed failures count against the dependency (default: all). Defects always count; interruptions never. */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /** `false` makes a pass-through breaker that still measures (seed: `enabled`). */
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
  /** Counted failures the trip policy currently holds. */
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
 * Told, synchronously, how one call ended and in which state it was admitted
 * or rejected. See `CircuitBreaker.protect`.
 *
 * @since 0.1.0
 * @category models
 */
export type OnSettled = (outcome: CallOutcome, state: State) => void

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a call did not run or did not finish:
 * `Open` (open period running), `HalfOpen` (every probe permit is taken),
 * `ForcedOpen` (held open by an operator), `Timeout` (exceeded `callTimeout`).
 *
 * @since 0.1.0
 * @category errors
 */
export type RejectionReason = "Open" | "HalfOpen" | "ForcedOpen" | "Timeout"

/**
 * The breaker's own failure: the call was rejected without running, or it ran
 * past `callTimeout`. `retryAfter` says when a call may be admitted again.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitBreakerError extends Data.TaggedError("CircuitBreakerError")<{
  readonly circuit: string
  readonly state: State
  readonly reason: RejectionReason
  readonly retryAfter: Duration.Duration
}> {
  override get message(): string {
    return this.reason === "Timeout"
      ? `call through circuit "${this.circuit}" timed out`
      : `circuit "${this.circuit}" is ${this.state} (${this.reason}); retry after ${Duration.format(this.retryAfter)}`
  }
}

// Rejections are built without a stack trace (see makeError); give them a one-line one.
Object.defineProperty(CircuitBreakerError.prototype, "stack", {
  get(this: CircuitBreakerError) {
    return `${this.name}: ${this.message}`
  },
  configurable: true
})

/**
 * A breaker option out of range. Names the circuit, the option, the value and
 * what is allowed.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitBreakerOptionsError extends Data.TaggedError("CircuitBreakerOptionsError")<{
  readonly circuit: string
  readonly option: string
  readonly value: unknown
  readonly expected: string
}> {
  override get message(): string {
    return `circuit breaker "${this.circuit}": option ${this.option} is ${
      describeValue(this.value)
    }, expected ${this.expected}`
  }
}

const describeValue = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "function") return "a function"
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

// -----------------------------------------------------------------------------
// the breaker
// -----------------------------------------------------------------------------

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
  ) => Effect.Effect<A, E | CircuitBreakerError, R>
  /** Every transition, from the moment of subscription. */
  readonly transitions: Stream.Stream<Transition>
  /** Runs `listener` for every transition and call until the scope closes. */
  readonly listen: (listener: Listener) => Effect.Effect<void, never, Scope.Scope>
  /** Holds the breaker OPEN, rejecting every call, until `reset`. */
  readonly forceOpen: Effect.Effect<void>
  /** Lets every call through, still measured, until `reset`. */
  readonly disable: Effect.Effect<void>
  /** Back to CLOSED with every count forgotten. */
  readonly reset: Effect.Effect<void>
  /** Synchronous access for the Promise/sync facade and for metrics collected at scrape time. */
  readonly unsafe: Unsafe
}

/**
 * The synchronous core of a breaker, for code outside Effect.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unsafe {
  /** Admission: a generation to pass to `settle`, or a `CircuitBreakerError` to throw. */
  admit(): number | CircuitBreakerError
  settle(generation: number, startedAt: number, outcome: "success" | "failure" | "ignored", error?: unknown): void
  now(): number
  /** The breaker's `callTimeout` in milliseconds, if it has one. */
  readonly callTimeoutMillis: number | undefined
  /** The current state, without allocating (an elapsed open period reads as HALF_OPEN). */
  state(): State
  snapshot(): Snapshot
}

/**
 * Makes a breaker that lives as long as the scope. When a
 * `CircuitBreaker.Registry` is in the context the breaker registers itself in it
 * (a name already registered fails). Bad options fail with
 * `CircuitBreakerOptionsError` naming the option, the value and what is allowed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<CircuitBreaker, CircuitBreakerOptionsError, Scope.Scope> = Effect
  .fnUntraced(function*(options: Options) {
    const settings = validate(options)
    if (settings instanceof CircuitBreakerOptionsError) return yield* settings
    const schedule = options.openDuration === undefined ? undefined : yield* scheduleDelays(options.openDuration)
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const scope = yield* Scope.Scope
    // The state is one mutable record changed only inside synchronous steps (atomic on the JS thread),
    // rather than a Ref of immutable states, which would allocate on every call.
    const machine = Machine.make(
      schedule === undefined ? settings.machine : { ...settings.machine, schedule },
      clock.currentTimeMillisUnsafe(),
      settings.enabled ? "Normal" : "Disabled"
    )
    const breaker = new BreakerImpl(options, settings, machine, clock, context)
    yield* Scope.addFinalizer(scope, Effect.sync(() => breaker.close()))
    const registry = yield* Effect.serviceOption(Registry)
    if (Option.isSome(registry)) yield* registry.value.register(breaker)
    return breaker
  })

/**
 * Guards `self` with `breaker` (fail-fast): when the breaker is OPEN (or every
 * HALF_OPEN permit is taken) `self` does not run and the call fails with
 * `CircuitBreakerError`. `isFailure` overrides the breaker's classification of
 * typed failures for this call.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withBreaker: {
  <E>(
    breaker: CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitBreakerError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): Effect.Effect<A, E | CircuitBreakerError, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, breaker: CircuitBreaker, isFailure?: (error: E) => boolean) =>
    breaker.protect(self, isFailure)
)

/**
 * Guards `self` with `breaker` (fail-open): a rejected call and a failed call
 * both give `Option.none()`, so the program goes on without the dependency.
 * Failures are still counted by the breaker and its metrics.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withBreakerOption: {
  <E>(
    breaker: CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<Option.Option<A>, never, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): Effect.Effect<Option.Option<A>, never, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, breaker: CircuitBreaker, isFailure?: (error: E) => boolean) =>
    Effect.option(breaker.protect(self, isFailure))
)

// -----------------------------------------------------------------------------
// registry
// -----------------------------------------------------------------------------

/**
 * Knows every breaker of the program. `make` registers into it when it is in
 * the context; observability wires every breaker it holds, including ones
 * made later.
 *
 * @since 0.1.0
 * @category registry
 */
export class Registry extends Context.Service<Registry, {
  readonly register: (breaker: CircuitBreaker) => Effect.Effect<void, CircuitBreakerOptionsError, Scope.Scope>
  readonly breakers: Effect.Effect<ReadonlyArray<CircuitBreaker>>
  readonly get: (name: string) => Effect.Effect<Option.Option<CircuitBreaker>>
  readonly snapshots: Effect.Effect<ReadonlyArray<Snapshot>>
  /**
   * Runs `f` for every breaker registered now and later, until the scope
   * closes. A function `f` returns is run when that breaker leaves the registry
   * (its scope closed) or when this subscription ends.
   */
  readonly onRegister: (f: (breaker: CircuitBreaker) => void | (() => void)) => Effect.Effect<void, never, Scope.Scope>
}>()("@neural-hive/resilience/CircuitBreaker/Registry") {}

/**
 * A new, empty registry.
 *
 * @since 0.1.0
 * @category registry
 */
export const makeRegistry: Effect.Effect<Registry["Service"]> = Effect.sync(() => {
  const byName = new Map<string, CircuitBreaker>()
  type Hook = (breaker: CircuitBreaker) => void | (() => void)
  // For each subscription, the cleanups it returned, by breaker name.
  const hooks = new Map<Hook, Map<string, () => void>>()
  const attach = (hook: Hook, cleanups: Map<string, () => void>, breaker: CircuitBreaker) => {
    const cleanup = hook(breaker)
    if (typeof cleanup === "function") cleanups.set(breaker.name, cleanup)
  }
  return Registry.of({
    register: (breaker) =>
      Effect.gen(function*() {
        if (byName.has(breaker.name)) {
          return yield* new CircuitBreakerOptionsError({
            circuit: breaker.name,
            option: "name",
            value: breaker.name,
            expected: "a name no other breaker of the registry uses"
          })
        }
        byName.set(breaker.name, breaker)
        for (const [hook, cleanups] of hooks) attach(hook, cleanups, breaker)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            byName.delete(breaker.name)
            for (const cleanups of hooks.values()) {
              cleanups.get(breaker.name)?.()
              cleanups.delete(breaker.name)
            }
          })
        )
      }),
    breakers: Effect.sync(() => Array.from(byName.values())),
    get: (name) => Effect.sync(() => Option.fromNullishOr(byName.get(name))),
    snapshots: Effect.sync(() => Array.from(byName.values(), (breaker) => breaker.unsafe.snapshot())),
    onRegister: (f) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const cleanups = new Map<string, () => void>()
          hooks.set(f, cleanups)
          for (const breaker of byName.values()) attach(f, cleanups, breaker)
          return cleanups
        }),
        (cleanups) =>
          Effect.sync(() => {
            hooks.delete(f)
            for (const cleanup of cleanups.values()) cleanup()
          })
      )
  })
})

/**
 * Provides a new `Registry`.
 *
 * @since 0.1.0
 * @category registry
 */
export const layerRegistry: Layer.Layer<Registry> = Layer.effect(Registry, makeRegistry)

/**
 * Milliseconds of a duration option (`fallback` when absent), or
 * `CircuitBreakerOptionsError` naming the option when it is not a finite
 * duration > 0. For the client options of the integration packages, which share
 * the breaker's name and error.
 *
 * @since 0.1.0
 * @category validation
 */
export const durationOption = (
  circuit: string,
  option: string,
  input: Duration.Input | undefined,
  fallback: number
): Effect.Effect<number, CircuitBreakerOptionsError> => {
  if (input === undefined) return Effect.succeed(fallback)
  const decoded = Duration.fromInput(input)
  const millis = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
  return Number.isFinite(millis) && millis > 0
    ? Effect.succeed(millis)
    : Effect.fail(
      new CircuitBreakerOptionsError({
        circuit,
        option,
        value: input,
        expected: "a finite duration > 0 (e.g. \"5 seconds\")"
      })
    )
}

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

interface ValidSettings {
  readonly machine: Machine.Settings
  readonly enabled: boolean
  readonly callTimeoutMillis: number | undefined
  readonly slowCallMillis: number | undefined
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/

/**
 * Checks options without making a breaker; returns the first problem found.
 *
 * @since 0.1.0
 * @category validation
 */
export const validate = (options: Options): ValidSettings | CircuitBreakerOptionsError => {
  const circuit = typeof options?.name === "string" ? options.name : "<unnamed>"
  const bad = (option: string, value: unknown, expected: string) =>
    new CircuitBreakerOptionsError({ circuit, option, value, expected })
  const integer = (option: string, value: unknown, min: number): number | CircuitBreakerOptionsError =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= min
      ? value
      : bad(option, value, `an integer >= ${min}`)
  const ratio = (option: string, value: unknown): number | CircuitBreakerOptionsError =>
    typeof value === "number" && value > 0 && value <= 1 ? value : bad(option, value, "a number in (0, 1]")
  const duration = (
    option: string,
    value: Duration.Input | undefined,
    fallback: number,
    allowZero = false
  ): number | CircuitBreakerOptionsError => {
    if (value === undefined) return fallback
    const decoded = Duration.fromInput(value)
    const millis = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
    return Number.isFinite(millis) && (allowZero ? millis >= 0 : millis > 0)
      ? millis
      : bad(option, value, `a finite duration ${allowZero ? ">= 0" : "> 0"} (e.g. "30 seconds" or milliseconds)`)
  }

  if (typeof options?.name !== "string" || !NAME.test(options.name)) {
    return bad("name", options?.name, "1-64 characters of letters, digits, _ . : - starting with a letter or _")
  }
  if (options.failMax !== undefined && options.policy !== undefined) {
    return bad("failMax", options.failMax, "no failMax when a policy is given (the policy decides)")
  }
  const failMax = integer("failMax", options.failMax ?? 5, 1)
  if (typeof failMax !== "number") return failMax
  const recovery = duration("recoveryTimeout", options.recoveryTimeout, 30_000)
  if (typeof recovery !== "number") return recovery
  const maxOpen = duration("maxOpenDuration", options.maxOpenDuration, Math.max(60_000, recovery))
  if (typeof maxOpen !== "number") return maxOpen
  if (maxOpen < recovery) {
    return bad("maxOpenDuration", options.maxOpenDuration, `a duration >= recoveryTimeout (${recovery} ms)`)
  }
  if (options.halfOpen !== undefined && (typeof options.halfOpen !== "object" || options.halfOpen === null)) {
    return bad("halfOpen", options.halfOpen, "an object { permits?, successThreshold? }")
  }
  const permits = integer("halfOpen.permits", options.halfOpen?.permits ?? 1, 1)
  if (typeof permits !== "number") return permits
  const successThreshold = integer("halfOpen.successThreshold", options.halfOpen?.successThreshold ?? permits, 1)
  if (typeof successThreshold !== "number") return successThreshold
  if (successThreshold > permits) {
    return bad("halfOpen.successThreshold", successThreshold, `an integer between 1 and halfOpen.permits (${permits})`)
  }
  const callTimeout = options.callTimeout === undefined ? undefined : duration("callTimeout", options.callTimeout, 0)
  if (callTimeout instanceof CircuitBreakerOptionsError) return callTimeout
  const slowCall = options.slowCallThreshold === undefined
    ? undefined
    : duration("slowCallThreshold", options.slowCallThreshold, 0)
  if (slowCall instanceof CircuitBreakerOptionsError) return slowCall
  if (options.isFailure !== undefined && typeof options.isFailure !== "function") {
    return bad("isFailure", options.isFailure, "a function (error) => boolean")
  }
  if (options.enabled !== undefined && typeof options.enabled !== "boolean") {
    return bad("enabled", options.enabled, "true or false")
  }
  if (options.failureMode !== undefined && options.failureMode !== "fail-fast" && options.failureMode !== "fail-open") {
    return bad("failureMode", options.failureMode, `"fail-fast" or "fail-open"`)
  }

  const policy = validatePolicy(options.policy ?? consecutive(failMax), bad, integer, ratio, duration)
  if (policy instanceof CircuitBreakerOptionsError) return policy

  return {
    machine: {
      policy,
      permits,
      successThreshold,
      recoveryMillis: recovery,
      maxOpenMillis: maxOpen
    },
    enabled: options.enabled ?? true,
    callTimeoutMillis: callTimeout,
    slowCallMillis: slowCall
  }
}

const validatePolicy = (
  policy: Policy,
  bad: (option: string, value: unknown, expected: string) => CircuitBreakerOptionsError,
  integer: (option: string, value: unknown, min: number) => number | CircuitBreakerOptionsError,
  ratio: (option: string, value: unknown) => number | CircuitBreakerOptionsError,
  duration: (option: string, value: Duration.Input | undefined, fallback: number) => number | CircuitBreakerOptionsError
): TripPolicy | CircuitBreakerOptionsError => {
  switch (policy?._tag) {
    case "Consecutive": {
      const failMax = integer("policy.failMax", policy.failMax, 1)
      return typeof failMax === "number" ? Policies.consecutive(failMax) : failMax
    }
    case "FailureRate": {
      const threshold = ratio("policy.threshold", policy.threshold)
      if (typeof threshold !== "number") return threshold
      const size = integer("policy.size", policy.size, 1)
      if (typeof size !== "number") return size
      const minimumCalls = integer("policy.minimumCalls", policy.minimumCalls ?? size, 1)
      if (typeof minimumCalls !== "number") return minimumCalls
      if (minimumCalls > size) {
        return bad("policy.minimumCalls", minimumCalls, `an integer between 1 and size (${size})`)
      }
      return Policies.failureRate({ threshold, size, minimumCalls })
    }
    case "FailureRateOverTime": {
      const threshold = ratio("policy.threshold", policy.threshold)
      if (typeof threshold !== "number") return threshold
      const windowMillis = duration("policy.window", policy.window, NaN)
      if (typeof windowMillis !== "number") return windowMillis
      const minimumCalls = integer("policy.minimumCalls", policy.minimumCalls, 1)
      if (typeof minimumCalls !== "number") return minimumCalls
      const buckets = integer("policy.buckets", policy.buckets ?? 10, 1)
      if (typeof buckets !== "number") return buckets
      if (buckets > 1000) return bad("policy.buckets", buckets, "an integer between 1 and 1000")
      return Policies.failureRateOverTime({ threshold, windowMillis, minimumCalls, buckets })
    }
    case "Custom":
      return typeof policy.policy?.counter === "function"
        ? policy.policy
        : bad("policy.policy", policy.policy, "a TripPolicy with a counter() function")
    default:
      return bad(
        "policy",
        policy,
        "consecutive(n), failureRate({...}), failureRateOverTime({...}) or custom(policy)"
      )
  }
}

// Delays of a schedule for the 1st, 2nd, ... opening in a row; the last one repeats once it ends.
const MAX_SCHEDULED_OPENINGS = 64

const scheduleDelays = Effect.fnUntraced(function*(schedule: Schedule.Schedule<unknown, unknown>) {
  const step = yield* Schedule.toStep(schedule)
  const delays: Array<number> = []
  let now = 0
  for (let i = 0; i < MAX_SCHEDULED_OPENINGS; i++) {
    const next = yield* Effect.exit(step(now, undefined))
    if (next._tag === "Failure") break
    const millis = Duration.toMillis(next.value[1])
    delays.push(millis)
    now += millis
  }
  const last = delays.length === 0 ? 0 : delays[delays.length - 1]!
  return (openings: number): number => delays[openings - 1] ?? last
})

const noListeners: ReadonlyArray<Listener> = []
const noAnnotators: ReadonlyArray<Annotate> = []
const timeoutMarker = Symbol.for("@neural-hive/resilience/CircuitBreaker/timeout")

/**
 * The breaker: a class, so its methods live once on the prototype and a breaker
 * is a few small objects (10,000 breakers stay cheap). It is its machine's hooks.
 */
class BreakerImpl implements CircuitBreaker, Machine.Hooks {
  readonly [TypeId]: TypeId = TypeId
  readonly name: string
  readonly failureMode: FailureMode
  readonly unsafe: Unsafe
  readonly m: Machine.Machine
  readonly clock: Clock.Clock
  readonly context: Context.Context<never>
  readonly defaultIsFailure: ((error: unknown) => boolean) | undefined
  readonly callTimeoutMillis: number | undefined
  readonly slowCallMillis: number | undefined
  successes = 0
  failures = 0
  slow = 0
  ignored = 0
  rejected = 0
  trips = 0
  lastError: unknown = undefined
  listeners: ReadonlyArray<Listener> = noListeners
  /** The listeners' `annotate` effects; the call path checks only its length. */
  annotators: ReadonlyArray<Annotate> = noAnnotators
  /** Whether the success path reads the clock: only when the policy, slow calls or a listener need durations. */
  timed: boolean
  timer: Fiber.Fiber<void> | undefined = undefined

  constructor(
    options: Options,
    settings: ValidSettings,
    m: Machine.Machine,
    clock: Clock.Clock,
    context: Context.Context<never>
  ) {
    this.name = options.name
    this.failureMode = options.failureMode ?? "fail-fast"
    this.defaultIsFailure = options.isFailure
    this.callTimeoutMillis = settings.callTimeoutMillis
    this.slowCallMillis = settings.slowCallMillis
    this.timed = settings.machine.policy.usesClock || settings.slowCallMillis !== undefined
    this.m = m
    this.clock = clock
    this.context = context
    this.unsafe = new UnsafeImpl(this)
    m.hooks = this
  }

  // --- the machine's hooks --------------------------------------------------

  onTransition(transition: Machine.Transition): void {
    if (transition.to === "Open") this.trips++
    const listeners = this.listeners
    if (listeners.length === 0) return
    const event: Transition = { ...transition, circuit: this.name, lastError: this.lastErrorMessage() }
    for (let i = 0; i < listeners.length; i++) listeners[i]!.onTransition?.(event)
  }

  onOpen(generation: number, durationMillis: number): void {
    this.timer?.interruptUnsafe()
    // The open period ends by the Clock: a fiber on the breaker's own Clock moves it to HALF_OPEN then.
    this.timer = Effect.runForkWith(this.context)(
      Effect.flatMap(
        Effect.sleep(durationMillis),
        () => Effect.sync(() => Machine.expire(this.m, generation, this.now()))
      )
    )
  }

  close(): void {
    this.timer?.interruptUnsafe()
  }

  // --- the call path --------------------------------------------------------

  now(): number {
    return this.clock.currentTimeMillisUnsafe()
  }

  lastErrorMessage(): string | undefined {
    return this.lastError === undefined ? undefined : redact(errorMessage(this.lastError))
  }

  notifyCall(outcome: CallOutcome, durationMillis: number): void {
    const listeners = this.listeners
    for (let i = 0; i < listeners.length; i++) listeners[i]!.onCall?.(outcome, durationMillis)
  }

  rejection(at: number): CircuitBreakerError {
    const m = this.m
    this.rejected++
    if (this.listeners.length > 0) this.notifyCall("rejected", 0)
    if (m.mode === "ForcedOpen") return makeError(this.name, m.state, "ForcedOpen", Infinity)
    return makeError(this.name, m.state, m.state === "Open" ? "Open" : "HalfOpen", Machine.retryAfter(m, at))
  }

  admit(): number | CircuitBreakerError {
    const m = this.m
    const at = this.timed || m.state !== "Closed" ? this.now() : 0
    const generation = Machine.admit(m, at)
    return generation === Machine.REJECTED ? this.rejection(at) : generation
  }

  settle(generation: number, startedAt: number, outcome: Machine.Outcome, error: unknown): Machine.Outcome {
    const m = this.m
    const end = this.timed || outcome !== "success" || m.state !== "Closed" ? this.now() : 0
    if (outcome === "success" && this.slowCallMillis !== undefined && end - startedAt >= this.slowCallMillis) {
      outcome = "slow"
    }
    switch (outcome) {
      case "success":
        this.successes++
        break
      case "ignored":
        this.ignored++
        break
      case "slow":
        this.slow++
        this.failures++
        break
      case "failure":
        this.failures++
        this.lastError = error
    }
    Machine.complete(m, generation, outcome, end)
    if (this.listeners.length > 0) this.notifyCall(outcome, end - startedAt)
    return outcome
  }

  /** Settles a finished call from its Exit, classifying a failure. */
  settleExit(
    generation: number,
    startedAt: number,
    exit: Exit.Exit<unknown, unknown>,
    classify: ((error: unknown) => boolean) | undefined
  ): Machine.Outcome {
    if (exit._tag === "Success") return this.settle(generation, startedAt, "success", undefined)
    let outcome: Machine.Outcome = "ignored"
    let error: unknown = undefined
    for (const reason of exit.cause.reasons) {
      if (reason._tag === "Die") {
        outcome = "failure"
        error = reason.defect
        break
      }
      if (reason._tag === "Fail") {
        const failure = reason.error
        if ((failure as any)?.[timeoutMarker] === true || classify === undefined || classify(failure)) {
          outcome = "failure"
          error = failure
        }
      }
    }
    return this.settle(generation, startedAt, outcome, error)
  }

  /** The annotation effects for one call, run on the calling fiber. */
  annotate(outcome: CallOutcome, state: State, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    const annotators = this.annotators
    return annotators.length === 1
      ? annotators[0]!(outcome, state, exit)
      : Effect.forEach(annotators, (f) => f(outcome, state, exit), { discard: true })
  }

  /** Fails with a rejection, after the annotations when someone asked for them. */
  reject(error: CircuitBreakerError): Effect.Effect<never, CircuitBreakerError> {
    return this.annotators.length === 0
      ? Effect.fail(error)
      : Effect.andThen(this.annotate("rejected", error.state, Exit.fail(error)), Effect.fail(error))
  }

  protect<A, E, R>(
    self: Effect.Effect<A, E, R>,
    isFailure?: ((error: E) => boolean) | undefined,
    onSettled?: OnSettled | undefined
  ): Effect.Effect<A, E | CircuitBreakerError, R> {
    const m = this.m
    const classify = (isFailure ?? this.defaultIsFailure) as ((error: unknown) => boolean) | undefined
    const guarded: Effect.Effect<A, E | CircuitBreakerError, R> = this.callTimeoutMillis === undefined
      ? self
      : Effect.timeoutOrElse(self, {
        duration: this.callTimeoutMillis,
        orElse: () => Effect.fail(timeoutError(this.name, m.state))
      })
    // The CLOSED, untimed path needs no state per run: the generation is the same for every call until
    // the next transition, so the guarded effect is built once per generation and reused.
    let closedGeneration = -1
    let closedCall: Effect.Effect<A, E | CircuitBreakerError, R> = guarded
    return Effect.suspend(() => {
      const state = m.state
      if (state === "Closed") {
        // Admission while CLOSED has no side effect, so it needs no frame of its own.
        if (!this.timed && this.annotators.length === 0) {
          if (closedGeneration !== m.generation) {
            const generation = m.generation
            closedGeneration = generation
            closedCall = Effect.onExitPrimitive(guarded, (exit) => {
              const outcome = this.settleExit(generation, NaN, exit, classify)
              onSettled?.(outcome, "Closed")
              return undefined
            })
          }
          return closedCall
        }
        const generation = m.generation
        const startedAt = this.timed ? this.now() : NaN
        return Effect.onExitPrimitive(guarded, (exit) => {
          const outcome = this.settleExit(generation, startedAt, exit, classify)
          onSettled?.(outcome, "Closed")
          return this.annotators.length === 0 ? undefined : this.annotate(outcome, "Closed", exit)
        })
      }
      // Fast rejection: an OPEN breaker whose period is running needs no admission frame.
      if (state === "Open") {
        if (m.mode === "ForcedOpen") {
          onSettled?.("rejected", "Open")
          return this.reject(this.rejection(0)) // held open: no clock needed
        }
        const at = this.now()
        if (m.mode !== "Normal" || at < m.openUntil) {
          onSettled?.("rejected", "Open")
          return this.reject(this.rejection(at))
        }
      }
      let generation = Machine.REJECTED
      let startedAt = NaN
      let admittedIn: State = "Closed"
      // Admission happens inside the exit frame, so an interruption right after it still settles
      // the call (a HALF_OPEN probe frees its permit). The finalizer returns no effect: no flatMap per call.
      return Effect.onExitPrimitive(
        Effect.suspend(() => {
          const admitted = this.admit()
          if (typeof admitted !== "number") {
            onSettled?.("rejected", admitted.state)
            return this.reject(admitted)
          }
          generation = admitted
          admittedIn = m.state
          if (this.timed) startedAt = this.now()
          return guarded
        }),
        (exit) => {
          if (generation === Machine.REJECTED) return undefined
          const outcome = this.settleExit(generation, startedAt, exit, classify)
          onSettled?.(outcome, admittedIn)
          return this.annotators.length === 0 ? undefined : this.annotate(outcome, admittedIn, exit)
        }
      )
    })
  }

  // --- state, control, events -----------------------------------------------

  currentState(): State {
    const m = this.m
    if (m.state === "Open") Machine.expire(m, m.generation, this.now())
    return m.state
  }

  takeSnapshot(): Snapshot {
    const m = this.m
    const at = this.now()
    Machine.expire(m, m.generation, at)
    return {
      name: this.name,
      state: m.state,
      mode: m.mode,
      failureMode: this.failureMode,
      failures: Machine.failures(m, at),
      retryAfterMillis: Machine.retryAfter(m, at),
      since: m.since,
      totals: {
        successes: this.successes,
        failures: this.failures,
        slow: this.slow,
        ignored: this.ignored,
        rejected: this.rejected,
        trips: this.trips
      },
      lastError: this.lastErrorMessage()
    }
  }

  get state(): Effect.Effect<State> {
    return Effect.sync(() => this.currentState())
  }

  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => this.takeSnapshot())
  }

  get forceOpen(): Effect.Effect<void> {
    return Effect.sync(() => Machine.forceOpen(this.m, this.now()))
  }

  get disable(): Effect.Effect<void> {
    return Effect.sync(() => Machine.disable(this.m, this.now()))
  }

  get reset(): Effect.Effect<void> {
    return Effect.sync(() => Machine.reset(this.m, this.now()))
  }

  get transitions(): Stream.Stream<Transition> {
    return Stream.callback<Transition>((queue) =>
      this.listen({ onTransition: (transition) => Queue.offerUnsafe(queue, transition) })
    )
  }

  listen(listener: Listener): Effect.Effect<void, never, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.sync(() => {
        this.listeners = [...this.listeners, listener]
        this.timed = this.timed || listener.onCall !== undefined
        if (listener.annotate !== undefined) this.annotators = [...this.annotators, listener.annotate]
      }),
      () =>
        Effect.sync(() => {
          this.listeners = this.listeners.filter((l) => l !== listener)
          this.annotators = this.annotators.filter((f) => f !== listener.annotate)
        })
    )
  }
}

class UnsafeImpl implements Unsafe {
  readonly breaker: BreakerImpl
  constructor(breaker: BreakerImpl) {
    this.breaker = breaker
  }
  get callTimeoutMillis() {
    return this.breaker.callTimeoutMillis
  }
  admit() {
    return this.breaker.admit()
  }
  settle(generation: number, startedAt: number, outcome: "success" | "failure" | "ignored", error?: unknown) {
    this.breaker.settle(generation, startedAt, outcome, error)
  }
  now() {
    return this.breaker.now()
  }
  state() {
    return this.breaker.currentState()
  }
  snapshot() {
    return this.breaker.takeSnapshot()
  }
}

const makeError = (
  circuit: string,
  state: State,
  reason: RejectionReason,
  retryAfterMillis: number
): CircuitBreakerError => {
  // A rejection is an expected, frequent answer: build it without running the Error
  // constructor, which costs ~0.5 µs even with no stack trace. It is still an
  // instanceof CircuitBreakerError and Error, with the same own fields.
  const error = Object.create(CircuitBreakerError.prototype)
  error._tag = "CircuitBreakerError"
  error.circuit = circuit
  error.state = state
  error.reason = reason
  error.retryAfter = retryAfterMillis === Infinity ? Duration.infinity : Duration.millis(retryAfterMillis)
  return error
}

const timeoutError = (circuit: string, state: State) => {
  const error = makeError(circuit, state, "Timeout", 0)
  Object.defineProperty(error, timeoutMarker, { value: true })
  return error
}

const errorMessage = (error: unknown): string => {
  if (error instanceof Error) return error.message === "" ? error.name : `${error.name}: ${error.message}`
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const message = (error as { message?: unknown }).message
    return typeof message === "string" ? `${String(error._tag)}: ${message}` : String(error._tag)
  }
  return String(error)
}
