/**
 * The breaker metrics as they were written before the exposition writer (prom-client's counters and gauge
 * brought up to date at scrape time, the histogram handed to prom-client as label sets): the reference the
 * writer's text is compared with in `MetricsExposition.test.ts`. Kept as it was; not used by the packages.
 */
import { Metrics } from "@neural-hive/observability"
import { type CircuitBreaker, Registry as Breakers } from "@neural-hive/resilience"
import { Effect, Exit, Scope } from "effect"
import * as Prometheus from "prom-client"

type Result = Metrics.Result
const results = Metrics.results
const names = Metrics.names
const stateLabel = { Closed: "closed", Open: "open", HalfOpen: "half_open" } as const
const stateValue = { Closed: 0, Open: 1, HalfOpen: 2 } as const

// --- the histogram, as internal/histogram.ts was -------------------------------------------------------------

class Series {
  readonly labels: Readonly<Record<string, string>>
  readonly bounds: ReadonlyArray<number>
  readonly counts: Float64Array
  readonly lineLabels: ReadonlyArray<Readonly<Record<string, string | number>>>
  sum = 0
  count = 0
  constructor(labels: Readonly<Record<string, string>>, bounds: ReadonlyArray<number>) {
    this.labels = labels
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length)
    this.lineLabels = [...bounds.map((le) => ({ ...labels, le })), { ...labels, le: "+Inf" }, labels]
  }
  observe(value: number): void {
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++
        break
      }
    }
    this.sum += value
    this.count++
  }
}

const noLabels: Record<string, string | number> = {}

class Histogram {
  readonly name: string
  readonly help: string
  readonly type = "histogram"
  readonly aggregator = "sum"
  readonly bounds: ReadonlyArray<number>
  readonly series = new Set<Series>()
  constructor(options: { readonly name: string; readonly help: string; readonly buckets: ReadonlyArray<number> }) {
    this.name = options.name
    this.help = options.help
    this.bounds = options.buckets.toSorted((a, b) => a - b)
  }
  add(labels: Readonly<Record<string, string>>): Series {
    const series = new Series(labels, this.bounds)
    this.series.add(series)
    return series
  }
  remove(series: Series): void {
    this.series.delete(series)
  }
  get() {
    const values: Array<unknown> = []
    for (const s of this.series) {
      if (s.count === 0) continue
      let cumulative = 0
      for (let i = 0; i < s.bounds.length; i++) {
        cumulative += s.counts[i]!
        values.push({
          metricName: `${this.name}_bucket`,
          labels: noLabels,
          sharedLabels: s.lineLabels[i]!,
          value: cumulative
        })
      }
      const n = s.bounds.length
      values.push({
        metricName: `${this.name}_bucket`,
        labels: noLabels,
        sharedLabels: s.lineLabels[n]!,
        value: s.count
      })
      values.push({
        metricName: `${this.name}_sum`,
        labels: noLabels,
        sharedLabels: s.lineLabels[n + 1]!,
        value: s.sum
      })
      values.push({
        metricName: `${this.name}_count`,
        labels: noLabels,
        sharedLabels: s.lineLabels[n + 1]!,
        value: s.count
      })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
  reset(): void {}
}

// --- the metrics, as Metrics.make was --------------------------------------------------------------------------

const oncePerScrape = (refresh: () => void): () => void => {
  let fresh = false
  return () => {
    if (fresh) return
    fresh = true
    queueMicrotask(() => {
      fresh = false
    })
    refresh()
  }
}
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

/** The old `Metrics.make`: the same metrics in `registry`, wired to every breaker of the `Registry.Registry`. */
export const make = (options: {
  readonly registry: Metrics.Registry
  readonly service: string
  readonly buckets?: ReadonlyArray<number>
}): Effect.Effect<Metrics.Registry, never, Breakers.Registry | Scope.Scope> =>
  Effect.gen(function*() {
    const breakers = yield* Breakers.Registry
    const service = options.service
    const registry = options.registry
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
    const refresh = oncePerScrape(() => {
      for (const [breaker, w] of wired) catchUp(instruments, breaker, w)
    })
    const instruments = registerInstruments(registry, options.buckets, refresh, owned)
    yield* breakers.onRegister((breaker) => wire({ service, scope, wired, instruments }, breaker))
    return registry
  })
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
  registry: Metrics.Registry,
  buckets: ReadonlyArray<number> | undefined,
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
    duration: register(names.duration, (name) => {
      const histogram = new Histogram({
        name,
        help: "Duration of the calls the circuit breaker let through, in seconds, by result",
        buckets: buckets ?? Metrics.defaultBuckets
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
