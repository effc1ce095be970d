/**
 * Prometheus metrics, in a prom-client registry, for every breaker of a
 * `Registry.Registry`.
 *
 * Almost nothing runs on the call path. The breaker already keeps cumulative
 * totals; the gauge and the counters read them when Prometheus scrapes, so a
 * scrape shows the breaker exactly as it is at that moment, including an OPEN
 * breaker whose open period has ended (it reads HALF_OPEN). Transitions are
 * counted as they happen (they are rare). Only the optional duration histogram
 * runs per call. The metrics write their own exposition text, with the label
 * text of every line prepared once, which `registry.metrics()` takes beside the
 * registry's other metrics: a scrape's cost grows with the lines it writes.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `circuit_breaker_state` | gauge: 0 CLOSED, 1 OPEN, 2 HALF_OPEN | service, circuit |
 * | `circuit_breaker_failures_total` | counter of counted failures (slow calls included) | service, circuit |
 * | `circuit_breaker_trips_total` | counter of openings | service, circuit |
 * | `circuit_breaker_calls_total` | counter | service, circuit, result |
 * | `circuit_breaker_transitions_total` | counter | service, circuit, from, to |
 * | `circuit_breaker_call_duration_seconds` | histogram | service, circuit, result |
 *
 * A gauge read at scrape time can miss an OPEN period shorter than the scrape
 * interval; `circuit_breaker_trips_total` never does.
 *
 * **Example** (Exposing the breakers of the program)
 *
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 * import { Metrics } from "@neural-hive/observability"
 *
 * const program = Effect.gen(function*() {
 *   yield* CircuitBreaker.make({ name: "kafka_producer" })
 *   const registry = yield* Metrics.PrometheusRegistry
 *   return yield* Effect.promise(() => registry.metrics())
 * })
 *
 * const MainLayer = Metrics.layer({ service: "orchestrator-dynamic" }).pipe(
 *   Layer.provideMerge(Registry.layer)
 * )
 * Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(MainLayer)))
 * ```
 *
 * @since 0.1.0
 */
import { type CircuitBreaker, Registry as Breakers } from "@neural-hive/resilience"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Prometheus from "prom-client"
import * as Series from "./internal/breakerSeries.ts"
import * as Exposition from "./internal/exposition.ts"
import { Durations } from "./internal/histogram.ts"
import { ServiceName } from "./ServiceName.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The names of the metrics this module exports.
 *
 * @since 0.1.0
 * @category constants
 */
export const names: {
  readonly state: "circuit_breaker_state"
  readonly failures: "circuit_breaker_failures_total"
  readonly trips: "circuit_breaker_trips_total"
  readonly calls: "circuit_breaker_calls_total"
  readonly transitions: "circuit_breaker_transitions_total"
  readonly duration: "circuit_breaker_call_duration_seconds"
} = Series.names

/**
 * The values of the `result` label: every call ends as exactly one of them.
 * `slow` is a success slower than the breaker's slow-call threshold, counted
 * as a failure by the breaker.
 *
 * @since 0.1.0
 * @category models
 */
export type Result = "success" | "failure" | "slow" | "ignored" | "rejected"

/**
 * @since 0.1.0
 * @category constants
 */
export const results: ReadonlyArray<Result> = Series.results

/**
 * Buckets of the duration histogram, in seconds (prom-client's defaults).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBuckets: ReadonlyArray<number> = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * A prom-client registry, in either exposition format.
 *
 * @since 0.1.0
 * @category models
 */
export type Registry = Prometheus.Registry<Prometheus.RegistryContentType>

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where to register the metrics: your registry (with your own metrics) or, by default, a new one. */
  readonly registry?: Registry | undefined
  /** The `service` label (default: the `ServiceName` reference, `orchestrator-dynamic`). */
  readonly service?: string | undefined
  /** Record `circuit_breaker_call_duration_seconds` (default `true`); it is the only per-call cost. */
  readonly histogram?: boolean | undefined
  /** Histogram buckets in seconds (default `defaultBuckets`). */
  readonly buckets?: ReadonlyArray<number> | undefined
}

// -----------------------------------------------------------------------------
// services
// -----------------------------------------------------------------------------

/**
 * The prom-client registry the breaker metrics live in; `/metrics` serves it.
 *
 * @since 0.1.0
 * @category services
 */
export class PrometheusRegistry extends Context.Service<PrometheusRegistry, Registry>()(
  "@neural-hive/observability/PrometheusRegistry"
) {}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Registers the breaker metrics in a prom-client registry and wires every
 * breaker of the `Registry.Registry` to them, including breakers made
 * later. The metrics leave the prom-client registry when the scope closes.
 * Registering twice in one prom-client registry is a defect (prom-client
 * refuses duplicate metric names).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Registry, never, Breakers.Registry | Scope.Scope> = Effect
  .fnUntraced(function*(options?: Options) {
    const breakers = yield* Breakers.Registry
    const service = options?.service ?? (yield* ServiceName)
    const registry: Registry = options?.registry ?? new Prometheus.Registry()
    const scope = yield* Effect.scope
    const series = new Series.BreakerSeries(
      service,
      options?.histogram === false ? undefined : new Durations(options?.buckets ?? defaultBuckets)
    )
    const keys: ReadonlyArray<Series.Key> = series.durations === undefined
      ? ["state", "failures", "trips", "calls", "transitions"]
      : ["state", "failures", "trips", "calls", "transitions", "duration"]
    const families = keys.map((key) => new Series.Family(key, series))
    for (const family of families) registry.registerMetric(family as unknown as Prometheus.Metric)
    const detach = Exposition.attach(registry)

    yield* Scope.addFinalizer(
      scope,
      Effect.sync(() => {
        for (const family of families) {
          const name = Series.names[family.key]
          if (registry.getSingleMetric(name) === (family as unknown)) registry.removeSingleMetric(name)
        }
        detach()
        for (const circuit of series.circuits.values()) unwire(series, circuit)
        series.circuits.clear()
      })
    )
    yield* breakers.onRegister((breaker) => wire(series, breaker))
    return registry
  })

/**
 * Provides the `PrometheusRegistry` holding the breaker metrics, wired to
 * every breaker of the `Registry.Registry`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<PrometheusRegistry, never, Breakers.Registry> =>
  Layer.effect(PrometheusRegistry, make(options))

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

/**
 * Wires a breaker that joined the registry: the series of its name (new, or those a breaker of the same name
 * left) and its listener. Returns what runs when it leaves the registry.
 */
const wire = (series: Series.BreakerSeries, breaker: CircuitBreaker.CircuitBreaker): (() => void) | undefined => {
  const circuit = series.circuit(breaker.name)
  if (circuit.breaker === breaker) return
  unwire(series, circuit)
  circuit.breaker = breaker
  // A subscription, not breaker.listen: no scope and no finalizer per breaker (they were a third of its metrics' heap).
  breaker.view.subscribe(circuit)
  return () => {
    if (circuit.breaker === breaker) unwire(series, circuit)
  }
}

/** Its breaker left: the listener goes, the counts stay with the name, the state and duration series go. */
const unwire = (series: Series.BreakerSeries, circuit: Series.Circuit): void => {
  if (circuit.breaker === undefined) return
  circuit.breaker.view.unsubscribe(circuit)
  series.leave(circuit)
}

// -----------------------------------------------------------------------------
// process and runtime metrics
// -----------------------------------------------------------------------------

/**
 * The process and runtime metrics of prom-client (`collectDefaultMetrics`):
 * CPU (`process_cpu_seconds_total`), memory (`process_resident_memory_bytes`),
 * heap (`nodejs_heap_size_used_bytes`), GC (`nodejs_gc_duration_seconds`),
 * event-loop lag (`nodejs_eventloop_lag_seconds`), handles, file descriptors,
 * each with the `service` label. Kept apart from `make` so the breaker metrics
 * stay usable on their own (a library embedding them may not own the process).
 * They leave the registry when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDefaultMetrics: (
  options?: { readonly service?: string | undefined; readonly prefix?: string | undefined }
) => Effect.Effect<void, never, PrometheusRegistry | Scope.Scope> = Effect.fnUntraced(
  function*(options?: { readonly service?: string | undefined; readonly prefix?: string | undefined }) {
    const registry = yield* PrometheusRegistry
    const service = options?.service ?? (yield* ServiceName)
    const before = new Set(registry.getMetricsAsArray().map((metric) => metric.name))
    Prometheus.collectDefaultMetrics({
      register: registry,
      labels: { service },
      ...(options?.prefix === undefined ? {} : { prefix: options.prefix })
    })
    const added = registry.getMetricsAsArray().map((metric) => metric.name).filter((name) => !before.has(name))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const name of added) registry.removeSingleMetric(name)
      })
    )
  }
)

/**
 * `makeDefaultMetrics` as a layer over the `PrometheusRegistry`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDefaultMetrics = (
  options?: { readonly service?: string | undefined; readonly prefix?: string | undefined }
): Layer.Layer<never, never, PrometheusRegistry> => Layer.effectDiscard(makeDefaultMetrics(options))
