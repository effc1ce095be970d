/**
 * The breaker's implementation: the Effect layer around the pure machine. Its
 * neighbours: `machine.ts` (the pure state machine), `fastPath.ts` (the call
 * path over Effect's private runtime protocol), `view.ts` (the readers' view),
 * `admission.ts` (the facade's synchronous admission) and the public
 * `Remote.ts` (what a coordination backend may do).
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as MutableRef from "effect/MutableRef"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type {
  Annotate,
  CallOutcome,
  CircuitBreaker,
  FailureMode,
  Listener,
  OnSettled,
  Options,
  Snapshot,
  State,
  Transition,
  View
} from "../CircuitBreaker.ts"
import { CircuitBreakerError, CircuitBreakerTimeoutError, makeRejection } from "../CircuitBreakerError.ts"
import { redact } from "../Redact.ts"
import * as FastPath from "./fastPath.ts"
import * as Machine from "./machine.ts"
import type { ValidSettings } from "./options.ts"
import { currentState, takeSnapshot, ViewImpl } from "./view.ts"

/** @internal */
export const TypeId = "~@neural-hive/resilience/CircuitBreaker" as const

/** @internal */
export type Classifier = (error: unknown) => boolean

const noListeners: ReadonlyArray<Listener> = []
const noAnnotators: ReadonlyArray<Annotate> = []

/**
 * An error counts only when every classifier in force says it counts: the
 * breaker's `isFailure` (what is never the dependency's fault) and the call's
 * (what this call site also excludes).
 *
 * @internal
 */
export const combine = (breaker: Classifier | undefined, call: Classifier | undefined): Classifier | undefined =>
  breaker === undefined ? call : call === undefined ? breaker : (error) => breaker(error) && call(error)

/**
 * The breaker: a class, so its methods live once on the prototype and a breaker
 * is a few small objects (10,000 breakers stay cheap). It is its machine's hooks.
 *
 * @internal
 */
export class BreakerImpl implements CircuitBreaker, Machine.Hooks {
  declare readonly [TypeId]: typeof TypeId
  readonly name: string
  readonly failureMode: FailureMode
  /** Made on first use: most breakers are only ever called through `withBreaker` (memory per breaker). */
  get view(): View {
    return this.viewImpl ??= new ViewImpl(this)
  }
  viewImpl: ViewImpl | undefined = undefined
  readonly machine: Machine.Machine
  /**
   * The state cell: a `MutableRef` (its documented API is the `current` field), read on the call path and
   * written only by the machine, in synchronous steps (ARCHITECTURE.md, "The state cell").
   */
  readonly phase: MutableRef.MutableRef<Machine.Phase>
  readonly clock: Clock.Clock
  readonly context: Context.Context<never>
  readonly isFailure: Classifier | undefined
  readonly callTimeoutMillis: number | undefined
  /** Infinity without a slow-call threshold: no duration reaches it. */
  readonly slowCallMillis: number
  readonly throwOnTrip: boolean
  readonly excludedOutcome: "ignored" | "success"
  readonly probe: Effect.Effect<unknown, unknown> | undefined
  readonly probeGraceMillis: number
  successes = 0
  failures = 0
  slow = 0
  ignored = 0
  rejected = 0
  trips = 0
  lastError: unknown = undefined
  /** Whether the last `settle` opened the breaker (read right after it, in the same synchronous step). */
  tripped = false
  listeners: ReadonlyArray<Listener> = noListeners
  /** The listeners' `annotate` effects; the call path checks only its length. */
  annotators: ReadonlyArray<Annotate> = noAnnotators
  /** Whether the success path reads the clock: only when the policy, slow calls or a listener need durations. */
  timed: boolean
  timer: Fiber.Fiber<void> | undefined = undefined
  prober: Fiber.Fiber<void> | undefined = undefined
  /** Whether the breaker's scope closed (or the facade's `close` ran). */
  closed = false
  warnedClosed = false

  constructor(
    options: Options,
    settings: ValidSettings,
    clock: Clock.Clock,
    context: Context.Context<never>
  ) {
    this.name = options.name
    this.failureMode = options.failureMode ?? "fail-fast"
    this.isFailure = options.isFailure
    this.callTimeoutMillis = settings.callTimeoutMillis
    this.slowCallMillis = settings.slowCallMillis ?? Infinity
    this.throwOnTrip = options.throwOnTrip ?? false
    this.excludedOutcome = options.excluded ?? "ignored"
    this.probeGraceMillis = settings.probeGraceMillis
    this.probe = options.probe === undefined || settings.callTimeoutMillis !== undefined
      ? options.probe
      : Effect.timeoutOrElse(options.probe, {
        duration: settings.probeTimeoutMillis,
        orElse: () =>
          Effect.fail(
            new CircuitBreakerTimeoutError({
              circuit: this.name,
              timeout: Duration.millis(settings.probeTimeoutMillis)
            })
          )
      })
    this.timed = settings.machine.policy.usesClock || settings.slowCallMillis !== undefined
    const now = clock.currentTimeMillisUnsafe()
    const mode = settings.enabled ? "Normal" : "Disabled"
    this.phase = MutableRef.make(Machine.initialPhase(now, mode))
    this.machine = Machine.make(settings.machine, now, mode, this, this.phase)
    this.clock = clock
    this.context = context
  }

  // --- the machine's hooks --------------------------------------------------

  onTransition(transition: Machine.Transition): void {
    // An adopted opening was counted as a trip by the replica that tripped.
    if (transition.to === "Open" && transition.from !== "Open" && transition.reason !== "Remote") this.trips++
    if (transition.to === "HalfOpen" && this.probe !== undefined) this.startProbing()
    const listeners = this.listeners
    const event: Transition = { ...transition, circuit: this.name, lastError: this.lastErrorMessage() }
    for (let i = 0; i < listeners.length; i++) listeners[i]!.onTransition?.(event)
  }

  onOpen(generation: number, durationMillis: number): void {
    this.timer?.interruptUnsafe()
    if (this.closed) return this.warnClosed()
    // The open period ends by the Clock: a fiber on the breaker's own Clock moves it to HALF_OPEN then.
    this.timer = Effect.runForkWith(this.context)(
      Effect.flatMap(
        Effect.sleep(durationMillis),
        () => Effect.sync(() => Machine.expire(this.machine, generation, this.now()))
      )
    )
  }

  /**
   * Active recovery: while HALF_OPEN, whenever a grace period passes with no
   * call holding a permit, the breaker runs its probe as the trial. One fiber,
   * so probes never overlap; it ends when the breaker leaves this HALF_OPEN.
   */
  startProbing(): void {
    // The loop of an earlier HALF_OPEN ends here, so the loop below needs no generation check.
    this.prober?.interruptUnsafe()
    if (this.closed) return
    const probe = this.probe!
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      const phase = this.phase.current
      if (phase._tag !== "HalfOpen") return Effect.void
      // Idle: no call holds a permit now (then one is free: successes < successThreshold <= permits).
      const trial = phase.admitted === phase.successes ? Effect.ignore(this.protect(probe)) : Effect.void
      return Effect.flatMap(trial, () => Effect.flatMap(Effect.sleep(this.probeGraceMillis), () => loop))
    })
    this.prober = Effect.runForkWith(this.context)(Effect.flatMap(Effect.sleep(this.probeGraceMillis), () => loop))
  }

  /** The scope's finalizer, bound once in `make`: a bound method is the smallest finalizer a breaker can hold. */
  finalize(_exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Effect.sync(() => this.close())
  }

  /**
   * A breaker used after its scope closed, as `Effect.runSync(Effect.scoped(CircuitBreaker.make(...)))`
   * leaves it: it still guards calls, but runs no timer and no probe. Said once, on its first opening.
   */
  warnClosed(): void {
    if (this.warnedClosed) return
    this.warnedClosed = true
    Effect.runForkWith(this.context)(
      Effect.logWarning(
        `circuit breaker "${this.name}" opened after its scope closed: it runs no open-period timer and no probe. ` +
          "Make it in a scope that lives as long as the dependency, or with Facade.make outside Effect."
      )
    )
  }

  close(): void {
    // No background work starts after this: a transition a later call causes starts no timer or probe.
    this.closed = true
    this.timer?.interruptUnsafe()
    this.prober?.interruptUnsafe()
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
    const phase = this.phase.current
    this.rejected++
    this.notifyCall("rejected", 0)
    if (phase.mode === "ForcedOpen") return makeRejection(this.name, "Open", "ForcedOpen", Infinity)
    return makeRejection(
      this.name,
      phase._tag,
      phase._tag === "Open" ? "Open" : "HalfOpen",
      Machine.retryAfter(this.machine, at)
    )
  }

  admit(): number | CircuitBreakerError {
    const at = this.timed || this.phase.current._tag !== "Closed" ? this.now() : 0
    const generation = Machine.admit(this.machine, at)
    return generation === Machine.REJECTED ? this.rejection(at) : generation
  }

  settle(generation: number, startedAt: number, outcome: Machine.Outcome, error: unknown): Machine.Outcome {
    const before = this.phase.current
    const end = this.timed || outcome !== "success" || before._tag !== "Closed" ? this.now() : 0
    if (outcome === "success" && end - startedAt >= this.slowCallMillis) {
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
    Machine.complete(this.machine, generation, outcome, end)
    const after = this.phase.current
    this.tripped = after !== before && after._tag === "Open"
    this.notifyCall(outcome, end - startedAt)
    return outcome
  }

  /** The outcome of a failed call: `failure`, or the excluded outcome when a classifier excludes it. */
  failureOutcome(error: unknown, classify: Classifier | undefined): Machine.Outcome {
    return error instanceof CircuitBreakerTimeoutError || classify === undefined || classify(error)
      ? "failure"
      : this.excludedOutcome
  }

  /** Settles a finished call from its Exit, classifying a failure. */
  settleExit(
    generation: number,
    startedAt: number,
    exit: Exit.Exit<unknown, unknown>,
    classify: Classifier | undefined
  ): Machine.Outcome {
    if (exit._tag === "Success") return this.settle(generation, startedAt, "success", undefined)
    // Interrupted only: the call decides nothing.
    let outcome: Machine.Outcome = "ignored"
    let error: unknown = undefined
    for (const reason of exit.cause.reasons) {
      if (reason._tag === "Die") {
        outcome = "failure"
        error = reason.defect
        break
      }
      if (reason._tag === "Fail") {
        outcome = this.failureOutcome(reason.error, classify)
        error = reason.error
        if (outcome === "failure") break
      }
    }
    return this.settle(generation, startedAt, outcome, error)
  }

  /** The error a caller gets for a failure that opened the breaker, with `throwOnTrip`. */
  tripError(cause: unknown): CircuitBreakerError {
    return new CircuitBreakerError({
      circuit: this.name,
      state: "Open",
      reason: "Tripped",
      retryAfter: Duration.millis(Machine.retryAfter(this.machine, this.now())),
      cause
    })
  }

  /** The annotation effects for one call, run on the calling fiber (called only when there is an annotator). */
  annotate(outcome: CallOutcome, state: State, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    const annotators = this.annotators
    let annotations = annotators[0]!(outcome, state, exit)
    for (let i = 1; i < annotators.length; i++) {
      annotations = Effect.andThen(annotations, annotators[i]!(outcome, state, exit))
    }
    return annotations
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
  ): Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R> {
    const classify = combine(this.isFailure, isFailure as Classifier | undefined)
    if (!this.throwOnTrip) return guardCall(this, self, classify, onSettled)
    // pybreaker's behaviour, on request: the call whose failure opened the breaker gets the breaker's error.
    return Effect.suspend(() => {
      let tripped: boolean // set by onSettled, which every outcome reaches before mapError can run
      const guarded = guardCall(this, self, classify, (outcome, state, didTrip) => {
        tripped = didTrip
        onSettled?.(outcome, state, didTrip)
      })
      return Effect.mapError(guarded, (error) => tripped ? this.tripError(error) : error)
    })
  }

  /** The call with the breaker's `callTimeout` applied, if it has one. */
  timeLimited<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitBreakerTimeoutError, R> {
    const callTimeoutMillis = this.callTimeoutMillis
    return callTimeoutMillis === undefined
      ? self
      : Effect.timeoutOrElse(self, {
        duration: callTimeoutMillis,
        orElse: () =>
          Effect.fail(
            new CircuitBreakerTimeoutError({ circuit: this.name, timeout: Duration.millis(callTimeoutMillis) })
          )
      })
  }

  /** One run of a guarded call: what its effect evaluates to (the fast path's node passes its fiber). */
  run<A, E, R>(
    self: Effect.Effect<A, E, R>,
    classify: Classifier | undefined,
    onSettled: OnSettled | undefined,
    fiber?: FastPath.RunningFiber
  ): Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R> {
    type Guarded = Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R>
    const phase = this.phase.current
    if (phase._tag === "Closed" && this.annotators.length === 0) {
      // Admission while CLOSED has no side effect, so it needs no frame of its own: one exit frame per run.
      const generation = phase.generation
      const startedAt = this.timed ? this.now() : NaN
      // Only the fast path's node passes its fiber (fastPath.ts); the public path settles in an exit frame.
      // Stryker disable next-line all: the two paths give the same results; Stryker runs the fast one only
      if (fiber !== undefined) {
        FastPath.pushSettleFrame(fiber, this, generation, startedAt, classify, onSettled)
        return this.timeLimited(self)
      }
      // Stryker disable all: the public path, run by `npm run test:public-path`; Stryker runs the fast path only
      return Effect.onExitPrimitive(this.timeLimited(self), (exit) => {
        const outcome = this.settleExit(generation, startedAt, exit, classify)
        onSettled?.(outcome, "Closed", this.tripped)
        return undefined
      })
    }
    // Stryker restore all
    // Fast rejection: an OPEN breaker whose period is running (forced open: until Infinity) needs no admission frame.
    // Stryker disable next-line all: fast path, the admission below rejects the same calls with the same error
    if (phase._tag === "Open") {
      const at = this.now()
      if (at < phase.until) {
        onSettled?.("rejected", "Open", false)
        return this.reject(this.rejection(at))
      }
    }
    const guarded = this.timeLimited(self)
    let generation = Machine.REJECTED
    let startedAt = NaN
    let admittedIn: State // set at admission; read only for an admitted call
    // Admission happens inside the exit frame, so an interruption right after it still settles
    // the call (a HALF_OPEN probe frees its permit). The finalizer returns no effect: no flatMap per call.
    return Effect.onExitPrimitive(
      Effect.suspend((): Guarded => {
        const admitted = this.admit()
        if (typeof admitted !== "number") {
          onSettled?.("rejected", admitted.state, false)
          return this.reject(admitted)
        }
        generation = admitted
        admittedIn = this.phase.current._tag
        if (this.timed) startedAt = this.now()
        return guarded
      }),
      (exit) => {
        if (generation === Machine.REJECTED) return undefined
        const outcome = this.settleExit(generation, startedAt, exit, classify)
        onSettled?.(outcome, admittedIn, this.tripped)
        return this.annotators.length === 0 ? undefined : this.annotate(outcome, admittedIn, exit)
      }
    )
  }

  // --- state, control, events -----------------------------------------------

  get state(): Effect.Effect<State> {
    return Effect.sync(() => currentState(this))
  }

  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => takeSnapshot(this))
  }

  get forceOpen(): Effect.Effect<boolean> {
    return Effect.sync(() => Machine.forceOpen(this.machine, this.now()))
  }

  get disable(): Effect.Effect<boolean> {
    return Effect.sync(() => Machine.disable(this.machine, this.now()))
  }

  get reset(): Effect.Effect<boolean> {
    return Effect.sync(() => Machine.reset(this.machine, this.now()))
  }

  get transitions(): Stream.Stream<Transition> {
    return Stream.callback<Transition>((queue) =>
      this.listen({ onTransition: (transition) => Queue.offerUnsafe(queue, transition) })
    )
  }

  listen(listener: Listener): Effect.Effect<void, never, Scope.Scope> {
    // Not Effect.acquireRelease: its finalizer keeps the context of the fiber that listened (about 1 KB per
    // listener, for as long as the scope lives), and removing a listener needs nothing from it.
    return Effect.uninterruptible(Effect.flatMap(Scope.Scope, (scope) => {
      this.subscribe(listener)
      return Scope.addFinalizerExit(scope, () => Effect.sync(() => this.unsubscribe(listener)))
    }))
  }

  /** `View.subscribe`. The arrays are copied, never changed: a notification runs over the listeners it started with. */
  subscribe(listener: Listener): void {
    // concat makes an array of the exact length; a spread into a literal keeps room for 16 more.
    this.listeners = this.listeners.concat([listener])
    this.timed = this.timed || listener.onCall !== undefined
    if (listener.annotate !== undefined) this.annotators = this.annotators.concat([listener.annotate])
  }

  /** `View.unsubscribe`. */
  unsubscribe(listener: Listener): void {
    this.listeners = this.listeners.filter((l) => l !== listener)
    this.annotators = this.annotators.filter((f) => f !== listener.annotate)
  }
}

// On the prototype, not in every breaker.
Object.defineProperty(BreakerImpl.prototype, TypeId, { value: TypeId })

/**
 * The implementation behind a public `CircuitBreaker`. Every breaker is made by
 * `CircuitBreaker.make`; anything else handed to `user` is a programming error
 * (a defect, thrown).
 *
 * @internal
 */
export const implOf = (breaker: CircuitBreaker, user: string): BreakerImpl => {
  if (breaker instanceof BreakerImpl) return breaker
  throw new TypeError(`@neural-hive/resilience: ${user} needs a breaker made by CircuitBreaker.make`)
}

const guardCall = <A, E, R>(
  breaker: BreakerImpl,
  self: Effect.Effect<A, E, R>,
  classify: Classifier | undefined,
  onSettled: OnSettled | undefined
): Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R> => {
  // Stryker disable next-line ConditionalExpression: the two paths give the same results; Stryker runs the fast one only
  if (FastPath.engaged) return FastPath.guard(breaker, self, classify, onSettled)
  // Stryker disable next-line ArrowFunction: the public path, run by `npm run test:public-path`, not by Stryker
  return Effect.suspend(() => breaker.run(self, classify, onSettled))
}

const errorMessage = (error: unknown): string => {
  if (error instanceof Error) return error.message === "" ? error.name : `${error.name}: ${error.message}`
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const message = (error as { message?: unknown }).message
    return typeof message === "string" ? `${String(error._tag)}: ${message}` : String(error._tag)
  }
  return String(error)
}
