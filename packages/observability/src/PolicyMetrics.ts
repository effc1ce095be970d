/**
 * Prometheus metrics (prom-client) for the policies beside the breakers:
 * bulkheads (fixed and adaptive), retry budgets and hedges of
 * `@neural-hive/resilience`.
 *
 * Nothing runs on the call path: each policy keeps its own counters
 * (`stats()`), read when Prometheus scrapes (`collect()`), as `Metrics` does
 * for the breakers. Register the policies of a circuit once, with the
 * prom-client registry `/metrics` serves (`Metrics.PrometheusRegistry`); they
 * leave it when the scope closes. Or let them be found: `layerRegistry`
 * exports the policies of every circuit registered in the breakers'
 * `Registry.Registry` (as `GuardedClient.make` registers them), now and later.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `resilience_bulkhead_limit` | gauge: calls in flight allowed now (an adaptive limit moves it) | service, circuit |
 * | `resilience_bulkhead_limit_min` | gauge: the least the limit can be (`maxConcurrent` for a fixed bulkhead) | service, circuit |
 * | `resilience_bulkhead_limit_max` | gauge: the most the limit can be | service, circuit |
 * | `resilience_bulkhead_in_flight` | gauge | service, circuit |
 * | `resilience_bulkhead_queued` | gauge | service, circuit |
 * | `resilience_bulkhead_admitted_total` | counter | service, circuit |
 * | `resilience_bulkhead_rejected_total` | counter | service, circuit, reason (`queue_full`, `queue_timeout`) |
 * | `resilience_retry_calls_total` | counter: calls the budget counted | service, circuit |
 * | `resilience_retry_attempts_total` | counter: retries the budget granted (hedges included) | service, circuit |
 * | `resilience_retries_denied_total` | counter: retries the budget refused (hedges included) | service, circuit |
 * | `resilience_retry_budget_available` | gauge: retries the budget allows now | service, circuit |
 * | `resilience_hedge_calls_total` | counter | service, circuit |
 * | `resilience_hedges_total` | counter: second attempts sent | service, circuit |
 * | `resilience_hedges_won_total` | counter: hedges whose answer was kept | service, circuit |
 * | `resilience_hedges_denied_total` | counter: hedges the retry budget refused | service, circuit |
 * | `resilience_hedge_delay_seconds` | gauge: the hedging delay now (absent until learnt) | service, circuit |
 *
 * **Example** (The policies of a circuit on `/metrics`)
 *
 * ```ts
 * import { Metrics, PolicyMetrics } from "@neural-hive/observability"
 * import { Bulkhead, RetryBudget } from "@neural-hive/resilience"
 * import { Effect } from "effect"
 * import * as Prometheus from "prom-client"
 *
 * const program = Effect.gen(function*() {
 *   const registry: Metrics.Registry = new Prometheus.Registry()
 *   const bulkhead = yield* Bulkhead.adaptive({ name: "mongodb_client" })
 *   const retryBudget = yield* RetryBudget.make({ name: "mongodb_client" })
 *   yield* PolicyMetrics.register(registry, { bulkhead, retryBudget })
 *   return yield* Effect.promise(() => registry.metrics())
 * })
 *
 * Effect.runPromise(Effect.scoped(program))
 * ```
 *
 * @since 0.1.0
 */
import { type Bulkhead, type Hedge, Registry as Breakers, type RetryBudget } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Prometheus from "prom-client"
import { oncePerScrape } from "./internal/oncePerScrape.ts"
import { PrometheusRegistry, type Registry } from "./Metrics.ts"
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
  bulkheadLimit: "resilience_bulkhead_limit",
  bulkheadLimitMin: "resilience_bulkhead_limit_min",
  bulkheadLimitMax: "resilience_bulkhead_limit_max",
  bulkheadInFlight: "resilience_bulkhead_in_flight",
  bulkheadQueued: "resilience_bulkhead_queued",
  bulkheadAdmitted: "resilience_bulkhead_admitted_total",
  bulkheadRejected: "resilience_bulkhead_rejected_total",
  retryCalls: "resilience_retry_calls_total",
  retryAttempts: "resilience_retry_attempts_total",
  retriesDenied: "resilience_retries_denied_total",
  retryBudgetAvailable: "resilience_retry_budget_available",
  hedgeCalls: "resilience_hedge_calls_total",
  hedges: "resilience_hedges_total",
  hedgesWon: "resilience_hedges_won_total",
  hedgesDenied: "resilience_hedges_denied_total",
  hedgeDelay: "resilience_hedge_delay_seconds"
} as const

/**
 * The policies of one circuit to export, as `ResilienceConfig.policiesOf`
 * makes them; each is labelled with its own `name` as the `circuit`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Policies {
  readonly bulkhead?: Bulkhead.Bulkhead | undefined
  readonly retryBudget?: RetryBudget.RetryBudget | undefined
  readonly hedge?: Hedge.Hedge | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The `service` label (default: the `ServiceName` reference, `orchestrator-dynamic`). */
  readonly service?: string | undefined
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Exports the policies in a prom-client registry until the scope closes.
 * The metrics are registered with the first policies and removed with the
 * last; a policy registered twice counts once. Each policy's gauges leave
 * with it; its counters stay, as counters do. One policy of each kind per
 * circuit name: two bulkheads named alike add up in the counters and the
 * last one read sets the gauges.
 *
 * @since 0.1.0
 * @category constructors
 */
export const register = (
  registry: Registry,
  policies: Policies,
  options?: Options
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const service = options?.service ?? (yield* ServiceName)
    const state = stateOf(registry)
    const added: Array<Entry> = []
    for (const policy of [policies.bulkhead, policies.retryBudget, policies.hedge]) {
      if (policy === undefined || state.entries.has(policy)) continue
      const entry = entryOf(policies, policy, service)
      state.entries.set(policy, entry)
      zero(state.instruments, entry)
      added.push(entry)
    }
    if (added.length === 0) return
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        // The counts since the last scrape, before the gauges go.
        state.refresh()
        for (const entry of added) {
          state.entries.delete(entry.policy)
          forget(state.instruments, entry)
        }
        if (state.entries.size === 0) unregister(registry, state)
      })
    )
  })

/**
 * Exports the policies in the `PrometheusRegistry` (`Metrics.layer`'s) for
 * the layer's lifetime.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  policies: Policies | ReadonlyArray<Policies>,
  options?: Options
): Layer.Layer<never, never, PrometheusRegistry> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const registry = yield* PrometheusRegistry
    for (const one of Array.isArray(policies) ? policies : [policies as Policies]) {
      yield* register(registry, one, options)
    }
  }))

/**
 * Exports the policies of every circuit of the breakers' `Registry.Registry`,
 * those registered now and later (`GuardedClient.make` registers the policies
 * it composes), each until it leaves the registry or the scope closes.
 *
 * **Example** (Every circuit's policies on `/metrics`, found in the Registry)
 *
 * ```ts
 * import { Metrics, PolicyMetrics } from "@neural-hive/observability"
 * import { Bulkhead, Registry } from "@neural-hive/resilience"
 * import { Effect } from "effect"
 * import * as Prometheus from "prom-client"
 *
 * const program = Effect.gen(function*() {
 *   const registry: Metrics.Registry = new Prometheus.Registry()
 *   yield* PolicyMetrics.registerEach(registry)
 *   const breakers = yield* Registry.Registry
 *   yield* breakers.registerPolicies("mongodb_client", { bulkhead: yield* Bulkhead.adaptive({ name: "mongodb_client" }) })
 *   return yield* Effect.promise(() => registry.metrics()) // resilience_bulkhead_limit{circuit="mongodb_client"} 20
 * })
 *
 * Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Registry.layer)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const registerEach = (
  registry: Registry,
  options?: Options
): Effect.Effect<void, never, Breakers.Registry | Scope.Scope> =>
  Effect.gen(function*() {
    const breakers = yield* Breakers.Registry
    const service = options?.service ?? (yield* ServiceName)
    const scope = yield* Effect.scope
    yield* breakers.onRegisterPolicies((entry) => {
      // One scope per circuit, closed when its policies leave the registry or the subscription ends.
      const exported = Scope.forkUnsafe(scope)
      Effect.runSync(Scope.provide(exported)(register(registry, entry.policies, { service })))
      return () => Effect.runSync(Scope.close(exported, Exit.void))
    })
  })

/**
 * Exports the policies of every circuit of the `Registry.Registry`, now and
 * later, in the `PrometheusRegistry` (`Metrics.layer`'s) for the layer's
 * lifetime: `/metrics` shows them without listing them.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRegistry = (
  options?: Options
): Layer.Layer<never, never, PrometheusRegistry | Breakers.Registry> =>
  Layer.effectDiscard(Effect.gen(function*() {
    yield* registerEach(yield* PrometheusRegistry, options)
  }))

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

type Policy = Bulkhead.Bulkhead | RetryBudget.RetryBudget | Hedge.Hedge
type Labels = { readonly service: string; readonly circuit: string }

/** One exported policy: its labels and the totals already added to the counters. */
type Entry =
  | {
    readonly _tag: "Bulkhead"
    readonly policy: Bulkhead.Bulkhead
    readonly labels: Labels
    readonly seen: { admitted: number; queueFull: number; queueTimeouts: number }
  }
  | {
    readonly _tag: "RetryBudget"
    readonly policy: RetryBudget.RetryBudget
    readonly labels: Labels
    readonly seen: { calls: number; retries: number; denied: number }
  }
  | {
    readonly _tag: "Hedge"
    readonly policy: Hedge.Hedge
    readonly labels: Labels
    readonly seen: { calls: number; hedged: number; won: number; denied: number }
  }

const entryOf = (policies: Policies, policy: Policy, service: string): Entry => {
  const labels = { service, circuit: policy.name }
  if (policy === policies.bulkhead) {
    return {
      _tag: "Bulkhead",
      policy: policies.bulkhead,
      labels,
      seen: { admitted: 0, queueFull: 0, queueTimeouts: 0 }
    }
  }
  if (policy === policies.retryBudget) {
    return { _tag: "RetryBudget", policy: policies.retryBudget, labels, seen: { calls: 0, retries: 0, denied: 0 } }
  }
  return { _tag: "Hedge", policy: policy as Hedge.Hedge, labels, seen: { calls: 0, hedged: 0, won: 0, denied: 0 } }
}

type Gauge = Prometheus.Gauge<"service" | "circuit">
type Counter = Prometheus.Counter<"service" | "circuit">

interface Instruments {
  readonly limit: Gauge
  readonly limitMin: Gauge
  readonly limitMax: Gauge
  readonly inFlight: Gauge
  readonly queued: Gauge
  readonly admitted: Counter
  readonly rejected: Prometheus.Counter<"service" | "circuit" | "reason">
  readonly retryCalls: Counter
  readonly retryAttempts: Counter
  readonly retriesDenied: Counter
  readonly budgetAvailable: Gauge
  readonly hedgeCalls: Counter
  readonly hedges: Counter
  readonly hedgesWon: Counter
  readonly hedgesDenied: Counter
  readonly hedgeDelay: Gauge
}

interface State {
  readonly entries: Map<Policy, Entry>
  readonly instruments: Instruments
  readonly metrics: ReadonlyArray<Prometheus.Metric>
  readonly refresh: () => void
}

/** The exported policies of each prom-client registry. */
const states = new WeakMap<Registry, State>()

const stateOf = (registry: Registry): State => {
  const known = states.get(registry)
  if (known !== undefined) return known
  const entries = new Map<Policy, Entry>()
  // Every policy's metrics brought up to date, once per scrape; each metric's collect() calls it.
  const refresh = oncePerScrape(() => {
    for (const entry of entries.values()) catchUp(instruments, entry)
  })
  const metrics: Array<Prometheus.Metric> = []
  const registers = [registry]
  const labelNames = ["service", "circuit"] as const
  const gauge = (name: string, help: string): Gauge => {
    const metric = new Prometheus.Gauge({ name, help, labelNames, registers, collect: refresh })
    metrics.push(metric)
    return metric
  }
  const counter = (name: string, help: string): Counter => {
    const metric = new Prometheus.Counter({ name, help, labelNames, registers, collect: refresh })
    metrics.push(metric)
    return metric
  }
  const rejected = new Prometheus.Counter({
    name: names.bulkheadRejected,
    help: "Calls the bulkhead rejected without running them, by reason: queue_full, queue_timeout",
    labelNames: ["service", "circuit", "reason"] as const,
    registers,
    collect: refresh
  })
  metrics.push(rejected)
  const instruments: Instruments = {
    limit: gauge(names.bulkheadLimit, "Calls in flight the bulkhead allows now (an adaptive limit moves it)"),
    limitMin: gauge(names.bulkheadLimitMin, "The least the bulkhead's limit can be (maxConcurrent when fixed)"),
    limitMax: gauge(names.bulkheadLimitMax, "The most the bulkhead's limit can be (maxConcurrent when fixed)"),
    inFlight: gauge(names.bulkheadInFlight, "Calls in flight through the bulkhead"),
    queued: gauge(names.bulkheadQueued, "Calls waiting for a slot of the bulkhead"),
    admitted: counter(names.bulkheadAdmitted, "Calls the bulkhead let run (at once or after waiting)"),
    rejected,
    retryCalls: counter(names.retryCalls, "Calls the retry budget counted (each adds its ratio of a retry)"),
    retryAttempts: counter(
      names.retryAttempts,
      "Retries the retry budget granted (attempts after the first, hedges included)"
    ),
    retriesDenied: counter(names.retriesDenied, "Retries the retry budget refused, hedges included (it was exhausted)"),
    budgetAvailable: gauge(names.retryBudgetAvailable, "Retries the retry budget allows now"),
    hedgeCalls: counter(names.hedgeCalls, "Calls through the hedge"),
    hedges: counter(names.hedges, "Second attempts the hedge sent"),
    hedgesWon: counter(names.hedgesWon, "Hedges whose answer was the one kept"),
    hedgesDenied: counter(names.hedgesDenied, "Hedges the retry budget refused"),
    hedgeDelay: gauge(names.hedgeDelay, "The hedging delay now, in seconds (absent until enough latencies are known)")
  }
  const state: State = { entries, instruments, metrics, refresh }
  states.set(registry, state)
  return state
}

/** The last policy left: the metrics leave the registry (only those this module registered). */
const unregister = (registry: Registry, state: State) => {
  for (const metric of state.metrics) {
    const name = (metric as unknown as { readonly name: string }).name
    if (registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name)
  }
  states.delete(registry)
}

/** Every counter series of a new policy exists from the start, so rate() and the alerts see zeros. */
const zero = (m: Instruments, entry: Entry) => {
  const labels = entry.labels
  switch (entry._tag) {
    case "Bulkhead":
      m.admitted.inc(labels, 0)
      m.rejected.inc({ ...labels, reason: "queue_full" }, 0)
      m.rejected.inc({ ...labels, reason: "queue_timeout" }, 0)
      break
    case "RetryBudget":
      m.retryCalls.inc(labels, 0)
      m.retryAttempts.inc(labels, 0)
      m.retriesDenied.inc(labels, 0)
      break
    case "Hedge":
      m.hedgeCalls.inc(labels, 0)
      m.hedges.inc(labels, 0)
      m.hedgesWon.inc(labels, 0)
      m.hedgesDenied.inc(labels, 0)
      break
  }
}

/** At scrape time: sets a policy's gauges and adds to its counters what its totals gained since the last scrape. */
const catchUp = (m: Instruments, entry: Entry): void => {
  const labels = entry.labels
  switch (entry._tag) {
    case "Bulkhead": {
      const s = entry.policy.stats()
      m.limit.set(labels, s.limit)
      m.limitMin.set(labels, s.minLimit)
      m.limitMax.set(labels, s.maxLimit)
      m.inFlight.set(labels, s.inFlight)
      m.queued.set(labels, s.queued)
      const queueFull = s.rejected - s.queueTimeouts
      add(m.admitted, labels, s.admitted - entry.seen.admitted)
      add(m.rejected, { ...labels, reason: "queue_full" }, queueFull - entry.seen.queueFull)
      add(m.rejected, { ...labels, reason: "queue_timeout" }, s.queueTimeouts - entry.seen.queueTimeouts)
      entry.seen.admitted = s.admitted
      entry.seen.queueFull = queueFull
      entry.seen.queueTimeouts = s.queueTimeouts
      return
    }
    case "RetryBudget": {
      const s = entry.policy.stats()
      m.budgetAvailable.set(labels, s.available)
      add(m.retryCalls, labels, s.callsTotal - entry.seen.calls)
      add(m.retryAttempts, labels, s.retriesTotal - entry.seen.retries)
      add(m.retriesDenied, labels, s.denied - entry.seen.denied)
      entry.seen.calls = s.callsTotal
      entry.seen.retries = s.retriesTotal
      entry.seen.denied = s.denied
      return
    }
    case "Hedge": {
      const s = entry.policy.stats()
      if (Number.isFinite(s.delayMillis)) m.hedgeDelay.set(labels, s.delayMillis / 1000)
      add(m.hedgeCalls, labels, s.calls - entry.seen.calls)
      add(m.hedges, labels, s.hedged - entry.seen.hedged)
      add(m.hedgesWon, labels, s.hedgesWon - entry.seen.won)
      add(m.hedgesDenied, labels, s.denied - entry.seen.denied)
      entry.seen.calls = s.calls
      entry.seen.hedged = s.hedged
      entry.seen.won = s.hedgesWon
      entry.seen.denied = s.denied
      return
    }
  }
}

/** A policy that left: its gauge series go; its counters stay. */
const forget = (m: Instruments, entry: Entry) => {
  const labels = entry.labels
  switch (entry._tag) {
    case "Bulkhead":
      for (const gauge of [m.limit, m.limitMin, m.limitMax, m.inFlight, m.queued]) gauge.remove(labels)
      return
    case "RetryBudget":
      m.budgetAvailable.remove(labels)
      return
    case "Hedge":
      m.hedgeDelay.remove(labels)
      return
  }
}

const add = <T extends string>(counter: Prometheus.Counter<T>, labels: Prometheus.LabelValues<T>, delta: number) => {
  // A negative delta cannot happen with cumulative totals; skip rather than let prom-client throw.
  if (delta > 0) counter.inc(labels, delta)
}
