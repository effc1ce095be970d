/**
 * OpenTelemetry tracing of protected calls.
 *
 * `traced(breaker)` is `withBreaker(breaker)` that also writes the call into
 * the current span:
 *
 * | attribute | value |
 * |---|---|
 * | `circuit_breaker.name` | the circuit: `kafka_producer`, ... |
 * | `circuit_breaker.state` | the state the call was admitted or rejected in: `closed`, `open`, `half_open` |
 * | `circuit_breaker.result` | `success`, `failure`, `slow`, `ignored`, `timeout` or `rejected` |
 * | `circuit_breaker.rejected` | `true` on a rejected call, with `circuit_breaker.reason` |
 *
 * A rejected call also adds the span event `circuit_breaker.rejected`
 * (attributes `circuit_breaker.name`, `circuit_breaker.reason`,
 * `circuit_breaker.retry_after_ms`), so it stays visible when several calls
 * share one span (the attributes keep the last call). Wrap each call in its
 * own span (`Effect.withSpan`) for one set of attributes per call.
 *
 * `layerOtel` installs an OpenTelemetry tracer provider from
 * `@opentelemetry/sdk-trace-base` as Effect's tracer, through
 * `@effect/opentelemetry`.
 *
 * **Example** (A traced Kafka send)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 * import { Tracing } from "@neural-hive/observability"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
 *   return yield* Effect.succeed("sent").pipe(Tracing.traced(breaker), Effect.withSpan("kafka.send"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as OtelTracer from "@effect/opentelemetry/OtelTracer"
import { CircuitBreaker, CircuitBreakerError, CircuitBreakerTimeoutError, Registry } from "@neural-hive/resilience"
import * as Resources from "@opentelemetry/resources"
import { BasicTracerProvider, type Sampler, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import { stateLabel } from "./internal/labels.ts"
import { ServiceName } from "./ServiceName.ts"

/**
 * The span attribute and event names.
 *
 * @since 0.1.0
 * @category constants
 */
export const attributes = {
  name: "circuit_breaker.name",
  state: "circuit_breaker.state",
  result: "circuit_breaker.result",
  rejected: "circuit_breaker.rejected",
  reason: "circuit_breaker.reason",
  retryAfterMillis: "circuit_breaker.retry_after_ms",
  rejectedEvent: "circuit_breaker.rejected"
} as const

/**
 * The values of `circuit_breaker.result`.
 *
 * @since 0.1.0
 * @category models
 */
export type Result = "success" | "failure" | "slow" | "ignored" | "timeout" | "rejected"

// -----------------------------------------------------------------------------
// combinators
// -----------------------------------------------------------------------------

/**
 * `withBreaker` (fail-fast) that records the call in the current span. With
 * no span in the context it is `withBreaker` with one state read per call.
 *
 * @since 0.1.0
 * @category combinators
 */
export const traced: {
  <E>(
    breaker: CircuitBreaker.CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker.CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, breaker: CircuitBreaker.CircuitBreaker, isFailure?: (error: E) => boolean) =>
    protectTraced(self, breaker, isFailure)
)

/**
 * The fail-open `traced`, for a single call site: a rejected or failed call
 * gives `Option.none()` (quietly; `failOpen` after `withBreaker` logs it), and
 * the span still shows the rejection.
 *
 * @since 0.1.0
 * @category combinators
 */
export const tracedOption: {
  <E>(
    breaker: CircuitBreaker.CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<Option.Option<A>, never, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker.CircuitBreaker,
    isFailure?: (error: E) => boolean
  ): Effect.Effect<Option.Option<A>, never, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, breaker: CircuitBreaker.CircuitBreaker, isFailure?: (error: E) => boolean) =>
    Effect.option(protectTraced(self, breaker, isFailure))
)

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Every protected call of every breaker of the registry, including breakers
 * made later and the ones inside `@neural-hive/kafka`, `temporal`, `redis` and
 * `mongodb`, annotates the span that is current where it runs: the same
 * attributes and rejection event as `traced`, with no change to the calling
 * code. Use it or `traced`, not both (a rejection would be recorded twice).
 * Costs a little on every call while it is provided (an effect run at the end
 * of each call); nothing when it is not.
 *
 * **Example** (Spans for every breaker)
 *
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 * import { Tracing } from "@neural-hive/observability"
 *
 * const TracingLive = Tracing.layer.pipe(Layer.provideMerge(Registry.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never, never, Registry.Registry> = Layer.effectDiscard(
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    yield* registry.listenEach((breaker) => ({
      annotate: (outcome, state, exit) => record(breaker.name, outcome, state, exit)
    }))
  })
)

/**
 * @since 0.1.0
 * @category models
 */
export interface OtelOptions {
  /** Where finished spans go: a `BatchSpanProcessor` with an OTLP exporter in production. */
  readonly spanProcessor: SpanProcessor | ReadonlyArray<SpanProcessor>
  /** `service.name` of the resource (default: the `ServiceName` reference, `orchestrator-dynamic`). */
  readonly service?: string | undefined
  /** Extra resource attributes (`service.version`, `deployment.environment`, ...). */
  readonly resource?: Resources.Resource | undefined
  /** Which traces are recorded (default: the SDK's, parent-based always-on). */
  readonly sampler?: Sampler | undefined
}

/**
 * Installs an OpenTelemetry `BasicTracerProvider` as Effect's tracer; spans
 * are flushed and the provider shut down when the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerOtel = (options: OtelOptions): Layer.Layer<OtelTracer.OtelTracer> =>
  OtelTracer.layer.pipe(
    Layer.provide(Layer.effect(
      OtelTracer.OtelTracerProvider,
      Effect.gen(function*() {
        const service = options.service ?? (yield* ServiceName)
        const resource = Resources.resourceFromAttributes({ [ATTR_SERVICE_NAME]: service })
        return yield* Effect.acquireRelease(
          Effect.sync(() =>
            new BasicTracerProvider({
              resource: options.resource === undefined ? resource : resource.merge(options.resource),
              ...(options.sampler === undefined ? {} : { sampler: options.sampler }),
              spanProcessors: Array.isArray(options.spanProcessor)
                ? [...options.spanProcessor]
                : [options.spanProcessor as SpanProcessor]
            })
          ),
          (provider) =>
            Effect.promise(() => provider.forceFlush().finally(() => provider.shutdown())).pipe(
              Effect.timeoutOption("3 seconds")
            )
        )
      })
    ))
  )

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

/**
 * What a breaker tells its traced calls: its state, kept by its transitions,
 * and the outcome the breaker gave each traced call, keyed by the fiber that
 * made the call (the breaker judges a call on that fiber, synchronously).
 */
const protectTraced = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  breaker: CircuitBreaker.CircuitBreaker,
  isFailure?: (error: E) => boolean
): Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R> =>
  Effect.suspend(() => {
    // The breaker tells this call's outcome and the state it was admitted or rejected in.
    let outcome: CircuitBreaker.CallOutcome | undefined
    let state: CircuitBreaker.State = "Closed"
    return Effect.onExit(
      breaker.protect(self, isFailure, (o, s) => {
        outcome = o
        state = s
      }),
      (exit) => record(breaker.name, outcome, state, exit)
    )
  })

const record = (
  circuit: string,
  outcome: CircuitBreaker.CallOutcome | undefined,
  state: CircuitBreaker.State,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<void> => {
  // Interrupted before admission: the breaker never saw the call.
  if (outcome === undefined) return Effect.void
  if (outcome === "rejected") {
    const rejection = exit._tag === "Failure" ? ownError(exit.cause, circuit) : undefined
    return rejection === undefined ? Effect.void : recordRejection(circuit, rejection)
  }
  const timedOut = exit._tag === "Failure" && ownTimeout(exit.cause, circuit)
  const result: Result = timedOut ? "timeout" : outcome
  return Effect.annotateCurrentSpan({
    [attributes.name]: circuit,
    [attributes.state]: stateLabel[state],
    [attributes.result]: result
  })
}

const recordRejection = (circuit: string, error: CircuitBreakerError): Effect.Effect<void> =>
  Effect.flatMap(Effect.option(Effect.currentSpan), (span) => {
    if (span._tag === "None") return Effect.void
    const retryAfterMillis = Duration.toMillis(error.retryAfter)
    return Effect.map(Clock.currentTimeNanos, (now) => {
      span.value.attribute(attributes.name, circuit)
      span.value.attribute(attributes.state, stateLabel[error.state])
      span.value.attribute(attributes.result, "rejected")
      span.value.attribute(attributes.rejected, true)
      span.value.attribute(attributes.reason, error.reason)
      span.value.event(attributes.rejectedEvent, now, {
        [attributes.name]: circuit,
        [attributes.reason]: error.reason,
        // A forced-open breaker has no end to wait for: the attribute is left out.
        ...(Number.isFinite(retryAfterMillis) ? { [attributes.retryAfterMillis]: retryAfterMillis } : {})
      })
    })
  })

/** Whether the call ended by this breaker's own callTimeout (not a nested breaker's). */
const ownTimeout = (cause: Cause.Cause<unknown>, circuit: string): boolean =>
  cause.reasons.some((reason) =>
    reason._tag === "Fail" && reason.error instanceof CircuitBreakerTimeoutError && reason.error.circuit === circuit
  )

/** The breaker's own rejection, not one from a nested breaker. */
const ownError = (cause: Cause.Cause<unknown>, circuit: string): CircuitBreakerError | undefined => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Fail" && reason.error instanceof CircuitBreakerError && reason.error.circuit === circuit) {
      return reason.error
    }
  }
  return undefined
}
