/**
 * The skeleton every client integration shares, written once: check the
 * client's duration options, build the breaker over the integration's defaults,
 * hold a client that the breaker retires when it opens (so nothing dials a dead
 * server while open) and that the next admitted call dials again, run every call
 * as `suspend > tryPromise > deadline > withBreaker > span`, and give the
 * breaker a cheap probe that checks the dependency once at start and recovers
 * an idle breaker.
 *
 * The integration supplies only what is its own: how to connect and close its
 * client, how to name its errors, its span, and its probe.
 *
 * It is the one way an integration guards a call: `call` for a Promise call on
 * the client, `guard` for an effect of the integration's own (Kafka's sends and
 * transaction steps, the example's in-memory stand-ins), both through the same
 * `withBreaker > timeout as the integration's error > span` path. `failOpen` is
 * the one way to fail open: a guarded call that failed or was refused gives a
 * fallback, logged (Redis's cache reads).
 *
 * With `policies` (`ResilienceConfig.policiesOf`), every `call` and `guard`
 * runs as `retry ∘ hedge ∘ bulkhead ∘ breaker ∘ call` (outermost first):
 *
 * - the bulkhead is outside the breaker: a call it refuses never reaches the
 *   breaker, so it is not counted as the dependency's failure; the caller gets
 *   a `CircuitBreakerError` with `reason: "Bulkhead"` (the dependency was not
 *   called), whose `cause` is the `BulkheadRejectedError`;
 * - the hedge is outside the bulkhead: a hedge is a second real call, it takes
 *   its own slot and goes through the breaker. Only calls marked
 *   `{ idempotent: true }` are hedged, each hedge taken from the retry budget;
 *   a hedged call no retry wraps is counted in that budget here (the retry
 *   counts the calls it wraps), so the budget grows with the calls;
 * - the retry is outermost: each attempt (hedged or not) is one call of the
 *   budget's window, retried only for errors `isRetryable` accepts (by default
 *   those the breaker counts as failures, never a refusal), never while the
 *   breaker is not CLOSED, within `maxRetries` and the budget. A call marked
 *   `{ retry: false }` (a write that is not safe twice) is never retried.
 *
 * The client span covers the whole call, retries and hedges included. The
 * policies are registered in the `Registry` under the breaker's name when one
 * is in the context (as the breaker is), so `/metrics` and the board find them.
 *
 * **Example** (A guarded client over a Promise API)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { GuardedClient } from "@neural-hive/resilience"
 *
 * class Api {
 *   ping = () => Promise.resolve("pong")
 *   close = () => Promise.resolve()
 * }
 *
 * const program = Effect.gen(function*() {
 *   const guarded = yield* GuardedClient.make({
 *     breaker: { name: "api_client", failMax: 5, recoveryTimeout: "30 seconds" },
 *     connect: () => new Api(),
 *     close: (api) => api.close(),
 *     deadline: 1000,
 *     onError: (operation, cause) => new Error(`${operation}: ${String(cause)}`),
 *     onTimeout: (operation) => new Error(`${operation}: no answer within 1000 ms`),
 *     span: { prefix: "Api", attributes: () => ({}) },
 *     probe: (api) => api.ping()
 *   })
 *   return yield* guarded.call("ping", (api) => api.ping())
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual, type LazyArg } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import type { CircuitBreakerTimeoutError } from "./CircuitBreakerError.ts"
import { composePolicies } from "./internal/compose.ts"
import { redact } from "./Redact.ts"
import type { Policies } from "./ResilienceConfig.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<Client, E> {
  /** The breaker: the integration's defaults with the user's options over them. */
  readonly breaker: CircuitBreaker.Options
  /** Makes a client (it may connect lazily): at start, and on the first call after the breaker retired one. */
  readonly connect: () => Client
  /** Closes a client, at the end of the scope or when the breaker opens; bounded by `closeTimeout`. */
  readonly close: (client: Client) => Promise<unknown>
  /** Bound of `close` (default 2 seconds). */
  readonly closeTimeout?: Duration.Input | undefined
  /** Runs after `close` whatever its outcome, e.g. a forced disconnect. */
  readonly abandon?: ((client: Client) => void) | undefined
  /**
   * The deadline of every `call` and of the probe, in milliseconds; a late call fails with `onTimeout`.
   * Absent: the breaker's `callTimeout` is their only bound (as it is of every `guard`ed effect).
   */
  readonly deadline?: number | undefined
  /** Maps what a call (or `connect`) threw to the integration's error; `detail` is the call's (collection, key...). */
  readonly onError: (operation: string, cause: unknown, detail: string | undefined) => E
  /**
   * The error of a call that passed its deadline, or (`backstop`) the breaker's `callTimeout`, which is
   * the only bound of a `guard`ed effect.
   */
  readonly onTimeout: (
    operation: string,
    detail: string | undefined,
    backstop?: CircuitBreakerTimeoutError | undefined
  ) => E
  /** One client span per call, named `${prefix}.${operation}`. */
  readonly span: {
    readonly prefix: string
    readonly kind?: Tracer.SpanKind | undefined
    /** The span's attributes for a call's `detail` (collection, workflow id...). */
    readonly attributes: (detail: string | undefined) => Record<string, unknown>
  }
  /**
   * A cheap call with no side effect (PING, a health check): run once through the breaker at start (its
   * failure is counted, never failing the start), and as the breaker's trial when its open period ends and no
   * call comes. `false`: neither.
   */
  readonly probe: ((client: Client, signal: AbortSignal) => Promise<unknown>) | false
  /** Run the probe once at start (default true); false for an integration that checks its own way. */
  readonly checkOnStart?: boolean | undefined
  /**
   * The circuit's policies (`ResilienceConfig.policiesOf`), composed around every `call` and `guard` as
   * `retry ∘ hedge ∘ bulkhead ∘ breaker ∘ call`. The probe goes through the breaker only.
   */
  readonly policies?: Policies | undefined
  /**
   * Which failures a retry may follow. Default: those the breaker counts (`breaker.isFailure`, every
   * failure without one); a refusal (`CircuitBreakerError`, the bulkhead's included) never.
   */
  readonly isRetryable?: ((error: E) => boolean) | undefined
}

/**
 * What a call says about itself to the policies.
 *
 * @since 0.1.0
 * @category models
 */
export interface CallOptions {
  /** Safe to run twice at once (a read): hedged when the circuit has a hedge. Default false. */
  readonly idempotent?: boolean | undefined
  /** Retried when the circuit has a retry budget and the error is retryable. Default true. */
  readonly retry?: boolean | undefined
}

const noStackTrace = { captureStackTrace: false } as const

/**
 * @since 0.1.0
 * @category models
 */
export interface GuardedClient<Client, E> {
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** Runs `f` on the client of the moment, through the breaker, within the deadline, in a client span. */
  readonly call: <A>(
    operation: string,
    f: (client: Client, signal: AbortSignal) => Promise<A>,
    detail?: string | undefined,
    callOptions?: CallOptions | undefined
  ) => Effect.Effect<A, E | CircuitBreaker.CircuitBreakerError>
  /**
   * Runs an effect of the integration's own (not a call on the client: no deadline, no dial) through the
   * same path as `call`: the policies, the breaker, its `callTimeout` as the integration's `onTimeout`, a
   * client span `${prefix}.${operation}`.
   */
  readonly guard: <A, R>(
    operation: string,
    effect: Effect.Effect<A, E, R>,
    detail?: string | undefined,
    callOptions?: CallOptions | undefined
  ) => Effect.Effect<A, E | CircuitBreaker.CircuitBreakerError, R>
  /** The policies composed around every call (none: `{}`). */
  readonly policies: Policies
  /** The probe as one guarded call (`undefined` with `probe: false`). */
  readonly probe: Effect.Effect<void, E | CircuitBreaker.CircuitBreakerError> | undefined
}

/**
 * Milliseconds of each duration option (its fallback when absent), or a
 * `CircuitBreakerOptionsError` naming the first bad one. Run it before anything
 * converts them.
 *
 * **Example** (Checking a client's timeouts)
 *
 * ```ts
 * import { GuardedClient } from "@neural-hive/resilience"
 *
 * const timeouts = GuardedClient.durations("redis_client", {
 *   commandTimeout: ["300 millis", 1000],
 *   connectTimeout: [undefined, 2000]
 * }) // Effect<{ commandTimeout: 300, connectTimeout: 2000 }, CircuitBreakerOptionsError>
 * ```
 *
 * @since 0.1.0
 * @category validation
 */
export const durations = <K extends string>(
  circuit: string,
  options: { readonly [key in K]: readonly [input: Duration.Input | undefined, fallback: number] }
): Effect.Effect<Record<K, number>, CircuitBreaker.CircuitBreakerOptionsError> =>
  Effect.gen(function*() {
    const out = {} as Record<K, number>
    for (const key of Object.keys(options) as Array<K>) {
      const [input, fallback] = options[key]
      out[key] = yield* CircuitBreaker.durationOption(circuit, key, input, fallback)
    }
    return out
  })

/**
 * Makes the guarded client for the life of the scope. Fails with the
 * integration's error when the first `connect` throws (a URL the client cannot
 * parse), and with `CircuitBreakerOptionsError` on bad breaker options; a
 * dependency that is down never fails it (the start check shows in the breaker),
 * and with `CircuitBreakerOptionsError` when the `Registry` holds policies of
 * this circuit already.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <Client, E>(
  options: Options<Client, E>
) => Effect.Effect<GuardedClient<Client, E>, E | CircuitBreaker.CircuitBreakerOptionsError, Scope.Scope> = Effect
  .fnUntraced(function*<Client, E>(options: Options<Client, E>) {
    const closeClient = (client: Client) =>
      Effect.tryPromise(() => options.close(client)).pipe(
        Effect.timeout(options.closeTimeout ?? 2000),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => options.abandon?.(client)))
      )

    // The client of the moment; `undefined` once retired, until the next admitted call (or probe) dials again.
    let current: Client | undefined = yield* Effect.acquireRelease(
      Effect.try({ try: options.connect, catch: (cause) => options.onError("connect", cause, undefined) }),
      () => Effect.suspend(() => current === undefined ? Effect.void : closeClient(current))
    )

    const run = <A>(
      operation: string,
      f: (client: Client, signal: AbortSignal) => Promise<A>,
      detail: string | undefined
    ): Effect.Effect<A, E> =>
      Effect.suspend(() => {
        let client: Client
        try {
          client = current ??= options.connect()
        } catch (cause) {
          return Effect.fail(options.onError("connect", cause, detail))
        }
        return Effect.tryPromise({
          try: (signal) => f(client, signal),
          catch: (cause) => options.onError(operation, cause, detail)
        })
      }).pipe((effect) =>
        options.deadline === undefined ? effect : Effect.timeoutOrElse(effect, {
          duration: options.deadline,
          orElse: () => Effect.fail(options.onTimeout(operation, detail))
        })
      )

    const probe = options.probe
    const breaker = yield* CircuitBreaker.make(
      probe === false || options.breaker.probe !== undefined
        ? options.breaker
        // The breaker runs it as its own HALF_OPEN trial (admission and classification are the breaker's).
        : { ...options.breaker, probe: run("probe", probe, undefined) }
    )

    // When the breaker opens, close the client: its pool and reconnect loop would otherwise keep
    // dialling the dependency for the whole open period. The next admitted call dials a fresh one.
    const context = yield* Effect.context<never>()
    yield* breaker.listen({
      onTransition: (transition) => {
        if (transition.to !== "Open" || current === undefined) return
        const retired = current
        current = undefined
        Effect.runForkWith(context)(
          closeClient(retired).pipe(
            Effect.andThen(Effect.logDebug("client closed while the circuit is open")),
            Effect.annotateLogs({ circuit: breaker.name })
          )
        )
      }
    })

    const { attempt, span } = pathOf(breaker, options)
    const policies = options.policies ?? {}
    const composed = yield* composePolicies(breaker, policies, options.breaker.isFailure, options.isRetryable)

    const guard = <A, R>(
      operation: string,
      effect: Effect.Effect<A, E, R>,
      detail?: string | undefined,
      callOptions?: CallOptions | undefined
    ): Effect.Effect<A, E | CircuitBreaker.CircuitBreakerError, R> =>
      composed(attempt(operation, effect, detail), callOptions).pipe(span(operation, detail))

    const call = <A>(
      operation: string,
      f: (client: Client, signal: AbortSignal) => Promise<A>,
      detail?: string | undefined,
      callOptions?: CallOptions | undefined
    ): Effect.Effect<A, E | CircuitBreaker.CircuitBreakerError> =>
      guard(operation, run(operation, f, detail), detail, callOptions)

    // The probe checks the dependency: through the breaker only, never queued, retried or hedged.
    const guardedProbe = probe === false
      ? undefined
      : Effect.asVoid(attempt("probe", run("probe", probe, undefined), undefined).pipe(span("probe", undefined)))
    // Checks the dependency once (bounded by the deadline, never failing the start): an unreachable one
    // shows in the snapshot as soon as the service exists.
    if (guardedProbe !== undefined && options.checkOnStart !== false) yield* Effect.ignore(guardedProbe)

    return { breaker, call, guard, probe: guardedProbe, policies }
  })

/** One attempt (the breaker, its callTimeout as the integration's timeout) and the client span of a call. */
const pathOf = <E>(
  breaker: CircuitBreaker.CircuitBreaker,
  options: Pick<Options<unknown, E>, "onTimeout" | "span">
) => ({
  attempt: <A, R>(
    operation: string,
    effect: Effect.Effect<A, E, R>,
    detail: string | undefined
  ): Effect.Effect<A, E | CircuitBreaker.CircuitBreakerError, R> =>
    effect.pipe(
      CircuitBreaker.withBreaker(breaker),
      // The breaker's callTimeout (a backstop past the deadline) is this client's timeout too.
      Effect.catchTag(
        "CircuitBreakerTimeoutError",
        (backstop) => Effect.fail(options.onTimeout(operation, detail, backstop as CircuitBreakerTimeoutError))
      )
    ),
  // One client span per call: the breaker (with Tracing.layer) annotates it with its name, state and result.
  // No stack trace: it would always point here, and capturing it cost ~4 % of a plan's CPU.
  span: (operation: string, detail: string | undefined) =>
    Effect.withSpan(`${options.span.prefix}.${operation}`, {
      kind: options.span.kind ?? "client",
      attributes: options.span.attributes(detail)
    }, noStackTrace)
})

/**
 * Fail-open: a call that failed or was refused gives `fallback()` instead, so the
 * program goes on without the dependency (a cache that is down is a miss). Put it
 * after the guard (`call`, `guard` or `withBreaker`): the breaker has already
 * counted the failure. Each fallback is logged as `${operation} failed open`, with
 * `reason` and the (redacted) `error`: at DEBUG when the breaker refused the call
 * (its transitions are logged already), at WARN when the call failed. Typed
 * failures only: a defect stays a defect.
 *
 * **Example** (A cache read that is a miss while Redis is down)
 *
 * ```ts
 * import { Effect, Option } from "effect"
 * import { CircuitBreaker, failOpen, withBreaker } from "@neural-hive/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const redis = yield* CircuitBreaker.make({ name: "redis_client", failureMode: "fail-open" })
 *   const read = Effect.fail(new Error("connect ECONNREFUSED"))
 *   // Option.none(), logged as "redis GET failed open"
 *   return yield* read.pipe(withBreaker(redis), failOpen("redis GET", Option.none<string>))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const failOpen: {
  <B>(
    operation: string,
    fallback: LazyArg<B>
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | B, never, R>
  <A, E, R, B>(self: Effect.Effect<A, E, R>, operation: string, fallback: LazyArg<B>): Effect.Effect<A | B, never, R>
} = dual(
  3,
  <A, E, R, B>(self: Effect.Effect<A, E, R>, operation: string, fallback: LazyArg<B>): Effect.Effect<A | B, never, R> =>
    Effect.catch(self, (error) => {
      const refused = (error as { readonly _tag?: unknown } | null)?._tag === "CircuitBreakerError"
      const reason = (error as { readonly reason?: unknown } | null)?.reason
      return (refused ? Effect.logDebug : Effect.logWarning)(`${operation} failed open`).pipe(
        Effect.annotateLogs({
          ...(typeof reason === "string" ? { reason } : {}),
          error: redact(error instanceof Error ? error.message : String(error))
        }),
        Effect.as(fallback())
      )
    })
)

/**
 * The two layers of an integration from its `make`: `layer(options)` and
 * `layerConfig(Config.Wrap<Options>)` (each option a value or a `Config`).
 *
 * **Example** (An integration's layers)
 *
 * ```ts
 * import { Context, Effect } from "effect"
 * import { GuardedClient } from "@neural-hive/resilience"
 *
 * class Api extends Context.Service<Api, { readonly url: string }>()("Api") {}
 * const make = (options: { readonly url: string }) => Effect.succeed(Api.of({ url: options.url }))
 *
 * const { layer, layerConfig } = GuardedClient.layers(Api, make)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layers = <I, S, Options, E>(
  tag: Context.Service<I, S>,
  make: (options: Options) => Effect.Effect<S, E, Scope.Scope>
): {
  /** The integration's layer from its options. */
  readonly layer: (options: Options) => Layer.Layer<I, E>
  /** The integration's layer from options that may each be a `Config`. */
  readonly layerConfig: (options: Config.Wrap<Options>) => Layer.Layer<I, E | Config.ConfigError>
} => ({
  layer: (options) => Layer.effect(tag, make(options)),
  layerConfig: (options) => Layer.effect(tag, Effect.flatMap(Config.unwrap(options), make))
})
