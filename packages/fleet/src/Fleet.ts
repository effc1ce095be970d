/**
 * Breakers that act as one across the replicas of a service, through Redis,
 * with nothing added to the call path.
 *
 * Each replica keeps its own breakers, admitting and counting calls locally and
 * synchronously. The fleet layer listens to every breaker of the `Registry` and
 * shares what matters through Redis:
 *
 * - a trip (or a failed probe) is published with the open period as a duration
 *   computed from Redis `TIME` and the openings in a row; every replica of the
 *   group adopts it (same remaining period, same doubling);
 * - at the end of the open period one replica wins a lease (`SET NX PX`,
 *   renewed while its probe runs) and probes; the others keep rejecting until
 *   the outcome is published;
 * - force open, disable and reset through any replica apply to the fleet.
 *
 * Every decision goes through one Lua script that orders it with an epoch, so a
 * late or duplicated message never reopens a closed circuit or shortens an open
 * period. When Redis is down, slow or partitioned each replica falls back to
 * its local breakers within `heartbeat + timeout` (no call waits, no caller
 * sees an error), sets `circuit_breaker_fleet_connected` to 0 and logs one line;
 * on reconnection it reconciles with the stored state.
 *
 * **Example** (Sharing the breakers of every replica of a service)
 *
 * ```ts
 * import { Fleet } from "@neural-hive/fleet"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 * import { Effect, Layer } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
 *   return yield* breaker.state
 * })
 *
 * const FleetLive = Fleet.layer({ redis: "redis://127.0.0.1:6379", group: "orchestrator-dynamic", pod: "pod-a" })
 * const main = program.pipe(Effect.scoped, Effect.provide(FleetLive.pipe(Layer.provideMerge(Registry.layer))))
 * ```
 *
 * @since 0.1.0
 */
import { Metrics, ServiceName } from "@neural-hive/observability"
import { CircuitBreaker, type CircuitBreakerOptionsError, redact, Registry, Remote } from "@neural-hive/resilience"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Prometheus from "prom-client"
import { adoptDecision } from "./internal/adopt.ts"
import { budgetLoop, unshareAll } from "./internal/budget.ts"
import * as Circuit from "./internal/circuit.ts"
import * as Connection from "./internal/connection.ts"
import * as Connections from "./internal/connections.ts"
import * as internalOptions from "./internal/options.ts"
import { onTransition } from "./internal/publish.ts"
import type { Replica } from "./internal/replica.ts"
import * as Scripts from "./internal/scripts.ts"
import { countLoop } from "./internal/sharedCount.ts"
import * as Views from "./internal/views.ts"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `redis://[:password@]host:port[/db]` of the fleet's own connections; never logged. */
  readonly redis: string | Redacted.Redacted<string>
  /** The replicas that act as one: every replica of a service uses the same group (e.g. the service's name). */
  readonly group: string
  /** This replica's identity in logs, messages and the metrics' pod label (default: the host name, a pod's name). */
  readonly pod?: string | undefined
  /** The `service` label of `circuit_breaker_fleet_connected` (default: the `ServiceName` reference). */
  readonly service?: string | undefined
  /** How often the connection is checked (default 500 ms). */
  readonly heartbeat?: CircuitBreaker.Options["recoveryTimeout"]
  /** A command with no answer within this counts as Redis down (default 1 second). */
  readonly timeout?: CircuitBreaker.Options["recoveryTimeout"]
  /** The probe lease's time to live, renewed while the probe runs (default 5 seconds). */
  readonly lease?: CircuitBreaker.Options["recoveryTimeout"]
  /**
   * How long past the fleet's open period a replica keeps rejecting while it
   * asks for the probe lease (default 2 seconds): if Redis cannot answer by
   * then, the replica probes on its own.
   */
  readonly hold?: CircuitBreaker.Options["recoveryTimeout"]
  /** Prefix of the keys and channel (default `nh:fleet`). */
  readonly keyPrefix?: string | undefined
  /**
   * Trip on the replicas' consecutive counts added up (default `false`: each
   * replica counts alone). For breakers with the `consecutive` policy: when the
   * counts of all replicas reach `failMax`, the fleet opens. Sooner in an
   * outage (about `failMax` calls fleet-wide instead of up to N x `failMax`),
   * but N replicas each with a trailing failure can open a healthy fleet when N
   * >= `failMax`; see docs/fleet.md.
   */
  readonly shareCounts?: boolean | undefined
  /** How often each replica reads its counts for `shareCounts` (default 10 ms); off the call path. */
  readonly countInterval?: CircuitBreaker.Options["recoveryTimeout"]
  /** The label that carries `pod` on every metric of the Prometheus registry (default `pod`; `false`: none). */
  readonly podLabel?: string | false | undefined
  /**
   * The circuits the replicas share (default: every breaker of the registry). List the dependencies
   * every replica reaches alike; leave out one private to a pod (a sidecar, a local socket), so that
   * one pod's failure does not open that breaker on every replica, nor fail their `/ready` when it
   * is a readiness breaker. A circuit not listed stays a local breaker.
   */
  readonly circuits?: ReadonlyArray<string> | undefined
}

/**
 * What a replica knows of its fleet.
 *
 * @since 0.1.0
 * @category models
 */
export interface Status {
  readonly group: string
  readonly pod: string
  readonly connected: boolean
  /** The fleet epoch each circuit last adopted (0: none yet). */
  readonly epochs: Readonly<Record<string, number>>
}

/**
 * One replica's last report: its pod, how old the report is, and its state of each circuit.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReplicaView {
  readonly pod: string
  readonly ageMillis: number
  readonly circuits: Readonly<Record<string, "closed" | "open" | "half_open">>
}

/**
 * Each replica's own view of its circuits, as published with its heartbeat:
 * the shape `Board.make`'s `fleet` option reads, so an operator sees replicas
 * that disagree and who holds each probe lease.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReplicaViews {
  readonly group: string
  readonly pod: string
  readonly connected: boolean
  /** Every replica whose last report has not expired (this one first), with its state of each circuit. */
  readonly replicas: ReadonlyArray<ReplicaView>
  /** The replica holding each circuit's probe lease, for circuits whose lease is held now. */
  readonly leases: Readonly<Record<string, string>>
}

/**
 * @since 0.1.0
 * @category services
 */
export class Fleet extends Context.Service<Fleet, {
  readonly group: string
  readonly pod: string
  readonly status: Effect.Effect<Status>
  /** Reads every replica's view from Redis (two round trips); only this replica's while Redis is away. */
  readonly views: Effect.Effect<ReplicaViews>
}>()("@neural-hive/fleet/Fleet") {}

/**
 * @since 0.1.0
 * @category constants
 */
export const names = { connected: "circuit_breaker_fleet_connected" } as const

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Joins the fleet: every breaker of the `Registry`, now and later, shares its
 * trips, probes and admin actions with the replicas of `group`, and every retry
 * budget registered with a circuit's policies becomes fleet-wide (each replica
 * publishes its window every `heartbeat` and counts the others'). Starts even
 * when Redis is down (the breakers and budgets stay local until it answers).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<Fleet["Service"], CircuitBreakerOptionsError, Registry.Registry | Scope.Scope> = Effect.fnUntraced(
  function*(options: Options) {
    const settings = yield* internalOptions.validate(options)
    const { circuits: shared, group, pod } = settings
    const prefix = `${options.keyPrefix ?? "nh:fleet"}:${group}`
    const registry = yield* Registry.Registry
    const service = options.service ?? (yield* ServiceName.ServiceName)
    const clock = yield* Clock.Clock
    const run = Effect.runForkWith(yield* Effect.context<never>())
    const scope = yield* Effect.scope
    const gauge = yield* connectedGauge(options, service, group, pod)
    // A dedicated pair: the protected redis_client's connection must never carry the fleet's traffic, nor wait on it.
    const { client, subscriber } = Connections.make(settings.url, settings.timeout)
    const { countInterval, heartbeat, hold, lease, timeout } = settings
    const r: Replica = {
      group,
      pod,
      heartbeat,
      timeout,
      lease,
      hold,
      countInterval,
      service,
      prefix,
      channel: prefix,
      client,
      subscriber,
      circuits: new Map(),
      budgets: new Map(),
      gauge,
      run,
      now: () => clock.currentTimeMillisUnsafe(),
      connected: false,
      closed: false
    }
    listenToConnections(r)

    yield* Effect.acquireRelease(
      Effect.sync(() => {
        subscriber.subscribe(r.channel).catch(() => undefined)
        return [
          run(Connection.heartbeatLoop(r)),
          run(budgetLoop(r)),
          options.shareCounts === true ? run(countLoop(r)) : undefined
        ] as const
      }),
      (fibers) =>
        Effect.sync(() => {
          r.closed = true
          for (const fiber of fibers) fiber?.interruptUnsafe()
          for (const c of r.circuits.values()) Circuit.stopLoop(c)
          unshareAll(r)
          r.gauge?.remove({ service, group })
          client.disconnect()
          subscriber.disconnect()
        })
    )

    yield* registry.onRegister((breaker) => {
      // A circuit the fleet does not share stays local: no listener, no Redis key, no adoption.
      if (shared !== undefined && !shared.has(breaker.name)) return
      const c = Circuit.make(breaker, prefix)
      r.circuits.set(breaker.name, c)
      // One scope per breaker, closed when it leaves the registry or the fleet stops.
      const listening = Scope.forkUnsafe(scope)
      Effect.runSync(Scope.provide(listening)(Remote.observe(breaker, onTransition(r, c))))
      if (r.connected) run(Connection.reconcile(r, c))
      return () => {
        Effect.runSync(Scope.close(listening, Exit.void))
        Circuit.stopLoop(c)
        r.circuits.delete(breaker.name)
      }
    })

    // Each shared circuit's retry budget is fleet-wide: the replicas' windows are added up through Redis.
    yield* registry.onRegisterPolicies(({ circuit, policies }) => {
      const budget = policies.retryBudget
      if (budget === undefined || (shared !== undefined && !shared.has(circuit))) return
      r.budgets.set(circuit, budget)
      return () => {
        Remote.shareBudget(budget, undefined)
        r.budgets.delete(circuit)
      }
    })

    const status = Effect.sync((): Status => ({
      group,
      pod,
      connected: r.connected,
      epochs: Object.fromEntries(Array.from(r.circuits, ([name, c]) => [name, c.epoch]))
    }))
    return Fleet.of({ group, pod, status, views: Views.replicaViews(r) })
  }
)

/** The connected gauge, when observability is in the context, at 0; the pod label goes on every metric of its registry. */
const connectedGauge = (options: Options, service: string, group: string, pod: string) =>
  Effect.map(Effect.serviceOption(Metrics.PrometheusRegistry), (prometheus) => {
    if (Option.isNone(prometheus)) return undefined
    const podLabel = options.podLabel ?? "pod"
    if (podLabel !== false) prometheus.value.setDefaultLabels({ [podLabel]: pod })
    const existing = prometheus.value.getSingleMetric(names.connected)
    const gauge = (existing as Prometheus.Gauge<"service" | "group"> | undefined) ?? new Prometheus.Gauge({
      name: names.connected,
      help: "1 while this replica shares its breakers with its fleet through Redis, 0 while it runs them locally",
      labelNames: ["service", "group"] as const,
      registers: [prometheus.value]
    })
    gauge.set({ service, group }, 0)
    return gauge
  })

/** Errors logged (never a crash), decisions adopted from the channel, a dropped socket noticed at once. */
const listenToConnections = (r: Replica): void => {
  const { client, group, pod, subscriber } = r
  // ioredis emits `error` on every failed (re)connection; without a listener Node would crash the process.
  const onError = (error: Error) =>
    r.run(Effect.logDebug("fleet_redis_error").pipe(Effect.annotateLogs({ group, pod, error: redact(error.message) })))
  client.on("error", onError)
  subscriber.on("error", onError)
  subscriber.on("message", (from: string, text: string) => {
    if (from !== r.channel || !r.connected) return
    const answer = Scripts.parse(text)
    if (answer !== undefined) adoptDecision(r, answer)
  })
  // A dropped socket is noticed at once; a stalled one by the heartbeat.
  const onClose = () => r.run(Connection.setConnected(r, false))
  client.on("close", onClose)
  subscriber.on("close", onClose)
}

/**
 * Provides `Fleet` and joins the fleet for the life of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Fleet, CircuitBreakerOptionsError, Registry.Registry> =>
  Layer.effect(Fleet, make(options))

/**
 * The options from configuration, e.g. `Config.all({ redis: Config.Redacted("FLEET_REDIS_URL"), group: ... })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<Fleet, CircuitBreakerOptionsError | Config.ConfigError, Registry.Registry> =>
  Layer.effect(Fleet, Effect.flatMap(Config.unwrap(options), make))
