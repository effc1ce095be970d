/**
 * One structured log line per breaker transition, through Effect's `Logger`.
 *
 * | transition to | message | level |
 * |---|---|---|
 * | OPEN | `circuit_breaker_open` | WARN |
 * | HALF_OPEN | `circuit_breaker_half_open` | INFO |
 * | CLOSED | `circuit_breaker_reset` | INFO |
 *
 * Each line carries the annotations `service`, `circuit`, `from`, `to`,
 * `reason`, `failures`, `retry_after_seconds` (`null` while forced open) and,
 * on a line into OPEN only, `last_error` (the message of the last counted
 * failure with passwords and tokens removed by the breaker, or `null`). Its
 * `logger` is `circuit_breaker`. `layer` logs through the loggers of the
 * program; `layerJson` always writes the flat JSON lines of `Logging` (the
 * Python service's schema).
 *
 * **Example** (JSON lines for every transition)
 *
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 * import { TransitionLog } from "@neural-hive/observability"
 *
 * const Logs = TransitionLog.layerJson({ service: "orchestrator-dynamic" }).pipe(
 *   Layer.provideMerge(Registry.layer)
 * )
 * ```
 *
 * @since 0.1.0
 */
import { CircuitBreaker, Registry } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { reasonLabel, seconds, stateLabel } from "./internal/labels.ts"
import * as Logging from "./Logging.ts"
import { ServiceName } from "./ServiceName.ts"

/**
 * The log message of a transition into each state.
 *
 * @since 0.1.0
 * @category constants
 */
export const messages = {
  Open: "circuit_breaker_open",
  HalfOpen: "circuit_breaker_half_open",
  Closed: "circuit_breaker_reset"
} as const satisfies Record<CircuitBreaker.State, string>

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The `service` annotation (default: the `ServiceName` reference, `orchestrator-dynamic`). */
  readonly service?: string | undefined
}

/**
 * The annotations of one transition's log line.
 *
 * @since 0.1.0
 * @category models
 */
export interface Annotations {
  readonly service: string
  readonly circuit: string
  readonly from: string
  readonly to: string
  readonly reason: string
  readonly failures: number
  readonly retry_after_seconds: number | null
  /** Only on a transition into OPEN: the error that tripped it is news there, and stale anywhere else. */
  readonly last_error?: string | null
}

/**
 * The annotations logged for `transition` of `breaker`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const annotations = (
  service: string,
  breaker: CircuitBreaker.CircuitBreaker,
  transition: CircuitBreaker.Transition
): Annotations => ({
  service,
  circuit: breaker.name,
  from: stateLabel[transition.from],
  to: stateLabel[transition.to],
  reason: reasonLabel[transition.reason],
  failures: transition.failures,
  retry_after_seconds: seconds(transition.retryAfterMillis),
  ...(transition.to === "Open" ? { last_error: transition.lastError ?? null } : {})
})

/**
 * The `logger` of the transition lines.
 *
 * @since 0.1.0
 * @category constants
 */
export const LOGGER = "circuit_breaker"

/**
 * Logs one line per transition of every breaker of the registry, including
 * breakers made later, until the scope closes. Lines are written at the moment
 * of the transition, in order, with the timestamp of the `Clock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<void, never, Registry.Registry | Scope.Scope> = Effect
  .fnUntraced(function*(options?: Options) {
    const breakers = yield* Registry.Registry
    const service = options?.service ?? (yield* ServiceName)
    // The loggers, console and clock of the layer's context; the breaker's callback is synchronous, and a
    // fiber forked for a synchronous log effect completes before runForkWith returns, so lines keep their order.
    const run = Effect.runForkWith(yield* Effect.context<never>())
    yield* breakers.listenEach((breaker) => ({
      onTransition: (transition) => {
        run(log(service, breaker, transition))
      }
    }))
  })

/**
 * Transition logs through the loggers of the program.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<never, never, Registry.Registry> =>
  Layer.effectDiscard(make(options))

/**
 * Transition logs as flat JSON lines on stdout (`Logging.layer`, the
 * Python service's schema), whatever the loggers of the rest of the program.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerJson = (options?: Options): Layer.Layer<never, never, Registry.Registry> =>
  layer(options).pipe(Layer.provide(Logging.layer()))

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

const log = (service: string, breaker: CircuitBreaker.CircuitBreaker, transition: CircuitBreaker.Transition) => {
  const message = messages[transition.to]
  return Effect.annotateLogs(
    transition.to === "Open" ? Effect.logWarning(message) : Effect.logInfo(message),
    { ...annotations(service, breaker, transition), logger: LOGGER }
  )
}
