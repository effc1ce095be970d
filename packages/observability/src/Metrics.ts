/**
 * Prometheus metrics (prom-client) for every breaker of a `Registry.Registry`.
 *
 * Almost nothing runs on the call path. The breaker already keeps cumulative
 * totals; the gauge and the counters read them when Prometheus scrapes
 * (`collect()`), so a scrape shows the breaker exactly as it is at that moment,
 * including an OPEN breaker whose open period has ended (it reads HALF_OPEN).
 * Transitions are counted as they happen (they are rare). Only the optional
 * duration histogram runs per call.
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
import { CircuitBreaker, Registry as Breakers } from "@neural-hive/resilience"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Prometheus from "prom-client"
import { Histogram, type Series } from "./internal/histogram.ts"
import { stateLabel, stateValue } from "./internal/labels.ts"
import { oncePerScrape } from "./internal/oncePerScrape.ts"
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
export const names = {
  state: "circuit_breaker_state",
  failures: "circuit_breaker_failures_total",
  trips: "circuit_breaker_trips_total",
  calls: "circuit_breaker_calls_total",
  transitions: "circuit_breaker_transitions_total",
  duration: "circuit_breaker_call_duration_seconds"
} as const

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
export const results: ReadonlyArray<Result> = ["success", "failure", "slow", "ignored", "rejected"]

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

type Labels = { readonly service: string; readonly circuit: string }

interface Wired {
  readonly labels: Labels
  /** This breaker's duration series, dropped with it. */
  readonly series: Array<Series>
  readonly resultLabels: Record<Result, Labels & { readonly result: Result }>
  /** Totals already added to the counters. */
  readonly seen: {
    successes: number
    failures: number
    slow: number
    ignored: number
    rejected: number
    trips: number
  }
  readonly scope: Scope.Closeable
}

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
    const wired = new Map<CircuitBreaker.CircuitBreaker, Wired>()
    const owned: Array<{ readonly name: string; readonly metric: unknown }> = []

    yield* Scope.addFinalizer(
      scope,
      Effect.sync(() => {
        for (const { metric, name } of owned) {
          if (registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name)
        }
        wired.clear()
      })
    )

    // Brings every scrape-time metric up to date, once per scrape; each metric's collect() calls it.
    const refresh = oncePerScrape(() => {
      for (const [breaker, w] of wired) catchUp(instruments, breaker, w)
    })
    const instruments = registerInstruments(registry, options, refresh, owned)
    yield* breakers.onRegister((breaker) => wire({ service, scope, wired, instruments }, breaker))
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

/** The breaker metrics, registered in one prom-client registry. */
interface Instruments {
  readonly stateGauge: Prometheus.Gauge<"service" | "circuit">
  readonly failures: Prometheus.Counter<"service" | "circuit">
  readonly trips: Prometheus.Counter<"service" | "circuit">
  readonly calls: Prometheus.Counter<"service" | "circuit" | "result">
  readonly transitions: Prometheus.Counter<"service" | "circuit" | "from" | "to">
  readonly duration: Histogram | undefined
}

/** Registers the metrics in `registry`, each remembered in `owned` (removed with the scope); `refresh` runs at scrape time. */
const registerInstruments = (
  registry: Registry,
  options: Options | undefined,
  refresh: () => void,
  owned: Array<{ readonly name: string; readonly metric: unknown }>
): Instruments => {
  const register = <M>(name: string, make: (name: string) => M): M => {
    const metric = make(name)
    owned.push({ name, metric })
    return metric
  }
  const registers = [registry]
  const labelNames = ["service", "circuit"] as const
  const collect = refresh
  return {
    stateGauge: register(names.state, (name) =>
      new Prometheus.Gauge({
        name,
        help: "Circuit breaker state: 0 CLOSED, 1 OPEN, 2 HALF_OPEN",
        labelNames,
        registers,
        collect
      })),
    failures: register(names.failures, (name) =>
      new Prometheus.Counter({
        name,
        help: "Calls the circuit breaker counted as failures (slow calls included)",
        labelNames,
        registers,
        collect
      })),
    trips: register(
      names.trips,
      (name) =>
        new Prometheus.Counter({ name, help: "Times the circuit breaker opened", labelNames, registers, collect })
    ),
    calls: register(names.calls, (name) =>
      new Prometheus.Counter({
        name,
        help: "Calls through the circuit breaker by result: success, failure, slow, ignored, rejected",
        labelNames: ["service", "circuit", "result"] as const,
        registers,
        collect
      })),
    transitions: register(names.transitions, (name) =>
      new Prometheus.Counter({
        name,
        help: "Circuit breaker state transitions by from and to state (closed, open, half_open)",
        labelNames: ["service", "circuit", "from", "to"] as const,
        registers,
        collect
      })),
    duration: options?.histogram === false ?
      undefined :
      register(names.duration, (name) => {
        const histogram = new Histogram({
          name,
          help: "Duration of the calls the circuit breaker let through, in seconds, by result",
          buckets: options?.buckets ?? defaultBuckets
        })
        registry.registerMetric(histogram as unknown as Prometheus.Metric)
        return histogram
      })
  }
}

/** At scrape time: sets one breaker's state gauge and adds to its counters what its totals gained since the last scrape. */
const catchUp = (m: Instruments, breaker: CircuitBreaker.CircuitBreaker, w: Wired): void => {
  // snapshot() first moves an elapsed OPEN breaker to HALF_OPEN, so the transition is counted before the gauge is read.
  const { state, totals } = breaker.view.snapshot()
  m.stateGauge.set(w.labels, stateValue[state])
  const seen = w.seen
  add(m.failures, w.labels, totals.failures - seen.failures)
  add(m.trips, w.labels, totals.trips - seen.trips)
  add(m.calls, w.resultLabels.success, totals.successes - seen.successes)
  add(m.calls, w.resultLabels.failure, totals.failures - totals.slow - (seen.failures - seen.slow))
  add(m.calls, w.resultLabels.slow, totals.slow - seen.slow)
  add(m.calls, w.resultLabels.ignored, totals.ignored - seen.ignored)
  add(m.calls, w.resultLabels.rejected, totals.rejected - seen.rejected)
  seen.successes = totals.successes
  seen.failures = totals.failures
  seen.slow = totals.slow
  seen.ignored = totals.ignored
  seen.rejected = totals.rejected
  seen.trips = totals.trips
}

/** What wiring a breaker needs: the label, the scope its listener lives in, the wired breakers, the metrics. */
interface Wiring {
  readonly service: string
  readonly scope: Scope.Scope
  readonly wired: Map<CircuitBreaker.CircuitBreaker, Wired>
  readonly instruments: Instruments
}

/**
 * Wires a breaker that joined the registry: its series (at zero), its duration series and its listener. Returns what
 * runs when it leaves the registry: its state series goes at once.
 */
const wire = (ctx: Wiring, breaker: CircuitBreaker.CircuitBreaker): (() => void) | undefined => {
  const { calls, duration, failures, stateGauge, transitions, trips } = ctx.instruments
  const service = ctx.service
  if (ctx.wired.has(breaker)) return
  const labels: Labels = { service, circuit: breaker.name }
  const resultLabels = {} as Record<Result, Labels & { readonly result: Result }>
  for (const result of results) resultLabels[result] = { service, circuit: breaker.name, result }
  const w: Wired = {
    labels,
    resultLabels,
    series: [],
    seen: { successes: 0, failures: 0, slow: 0, ignored: 0, rejected: 0, trips: 0 },
    scope: Scope.forkUnsafe(ctx.scope)
  }
  ctx.wired.set(breaker, w)
  // Every series exists from the start, so rate() and the alerts see zeros before the first failure.
  failures.inc(labels, 0)
  trips.inc(labels, 0)
  for (const result of results) calls.inc(resultLabels[result], 0)
  // One series per result, made now: observing then is a few array writes per call.
  const observers = duration === undefined ? undefined : {
    success: duration.add(resultLabels.success),
    failure: duration.add(resultLabels.failure),
    slow: duration.add(resultLabels.slow),
    ignored: duration.add(resultLabels.ignored)
  }
  if (observers !== undefined) w.series.push(...Object.values(observers))
  // Listen before the first snapshot: reading it may move an elapsed OPEN breaker, and that move must be counted.
  Effect.runSync(
    Scope.provide(w.scope)(breaker.listen({
      onTransition: (transition) =>
        transitions.inc({
          service,
          circuit: breaker.name,
          from: stateLabel[transition.from],
          to: stateLabel[transition.to]
        }),
      onCall: observers === undefined ? undefined : (outcome, durationMillis) => {
        // A rejection ran nothing; a call admitted before this listener was not timed (NaN).
        if (outcome === "rejected" || Number.isNaN(durationMillis)) return
        observers[outcome].observe(durationMillis / 1000)
      }
    }))
  )
  stateGauge.set(labels, stateValue[breaker.view.state()])
  return () => {
    if (ctx.wired.get(breaker) === w) forget(ctx, breaker, w)
  }
}

/** A breaker that left the registry: its state series and duration series go; its counters stay, as counters do. */
const forget = (ctx: Wiring, breaker: CircuitBreaker.CircuitBreaker, w: Wired) => {
  ctx.wired.delete(breaker)
  ctx.instruments.stateGauge.remove(w.labels)
  for (const series of w.series) ctx.instruments.duration?.remove(series)
  Effect.runSync(Scope.close(w.scope, Exit.void))
}

const add = <T extends string>(counter: Prometheus.Counter<T>, labels: Prometheus.LabelValues<T>, delta: number) => {
  // A negative delta cannot happen with cumulative totals; skip rather than let prom-client throw.
  if (delta > 0) counter.inc(labels, delta)
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
