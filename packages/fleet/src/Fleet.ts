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
import {
  CircuitBreaker,
  type CircuitBreakerOptionsError,
  Machine,
  redact,
  Registry,
  type TripPolicy
} from "@neural-hive/resilience"
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
import * as Circuit from "./internal/circuit.ts"
import * as Connections from "./internal/connections.ts"
import * as internalOptions from "./internal/options.ts"
import * as Scripts from "./internal/scripts.ts"
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
 * trips, probes and admin actions with the replicas of `group`. Starts even when
 * Redis is down (the breakers stay local until it answers).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<Fleet["Service"], CircuitBreakerOptionsError, Registry.Registry | Scope.Scope> = Effect.fnUntraced(
  function*(options: Options) {
    const { circuits: shared, countInterval, group, heartbeat, hold, lease, pod, timeout, url } = yield* internalOptions
      .validate(options)
    const prefix = `${options.keyPrefix ?? "nh:fleet"}:${group}`
    const channel = prefix
    const registry = yield* Registry.Registry
    const service = options.service ?? (yield* ServiceName.ServiceName)
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const run = Effect.runForkWith(context)
    const now = () => clock.currentTimeMillisUnsafe()
    const scope = yield* Effect.scope
    const circuits = new Map<string, Circuit.Circuit>()
    let connected = false
    let closed = false

    // The Prometheus registry, when observability is in the context: the gauge, and the pod label on every metric.
    const prometheus = yield* Effect.serviceOption(Metrics.PrometheusRegistry)
    let gauge: Prometheus.Gauge<"service" | "group"> | undefined
    if (Option.isSome(prometheus)) {
      const podLabel = options.podLabel ?? "pod"
      if (podLabel !== false) prometheus.value.setDefaultLabels({ [podLabel]: pod })
      const existing = prometheus.value.getSingleMetric(names.connected)
      gauge = (existing as Prometheus.Gauge<"service" | "group"> | undefined) ?? new Prometheus.Gauge({
        name: names.connected,
        help: "1 while this replica shares its breakers with its fleet through Redis, 0 while it runs them locally",
        labelNames: ["service", "group"] as const,
        registers: [prometheus.value]
      })
      gauge.set({ service, group }, 0)
    }

    // A dedicated pair: the protected redis_client's connection must never carry the fleet's traffic, nor wait on it.
    const { client, subscriber } = Connections.make(url, timeout)
    // ioredis emits `error` on every failed (re)connection; without a listener Node would crash the process.
    const onError = (error: Error) =>
      run(Effect.logDebug("fleet_redis_error").pipe(Effect.annotateLogs({ group, pod, error: redact(error.message) })))
    client.on("error", onError)
    subscriber.on("error", onError)

    const command = <A>(name: string, f: () => Promise<A>): Effect.Effect<A, Error> =>
      Effect.tryPromise({
        try: f,
        catch: (cause) => new Error(`${name}: ${redact(cause instanceof Error ? cause.message : String(cause))}`)
      }).pipe(
        Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(new Error(`${name}: timed out`)) })
      )

    // --- applying the fleet's decisions ---------------------------------------

    /** Adopts `answer` when it is newer than what this replica knows (fencing by epoch). */
    const apply = (answer: Scripts.Answer): void => {
      const c = circuits.get(answer.circuit)
      if (c === undefined || answer.epoch <= c.epoch || closed) return
      c.epoch = answer.epoch
      Circuit.stopLoop(c)
      switch (answer.kind) {
        case "open": {
          c.fleetUntil = now() + answer.remaining
          // Held past the fleet's period while this replica asks for the lease; the lease decides who probes.
          Circuit.adopt(c, { _tag: "Open", remainingMillis: answer.remaining + hold, openings: answer.openings })
          c.loop = run(Effect.andThen(Effect.sleep(answer.remaining), leaseLoop(c, answer.epoch)))
          return
        }
        case "closed":
          c.fleetUntil = NaN
          Circuit.adopt(c, { _tag: "Closed" })
          return
        case "forced":
          c.fleetUntil = NaN
          Circuit.adopt(c, { _tag: "ForcedOpen" })
          return
        case "disabled":
          c.fleetUntil = NaN
          Circuit.adopt(c, { _tag: "Disabled" })
          return
      }
    }

    /** At the end of the open period: one replica wins the lease and probes; the others hold until the outcome. */
    const leaseLoop = (c: Circuit.Circuit, epoch: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        // Only a breaker holding the fleet's opening asks for the probe (not one forced open or disabled here).
        const local = c.breaker.unsafe.phase()
        if (c.epoch !== epoch || !connected || local._tag !== "Open" || local.mode !== "Normal") return Effect.void
        const holder = `${pod}:${epoch}`
        return command("SET", () => client.set(c.leaseKey, holder, "PX", lease, "NX")).pipe(
          Effect.flatMap((won) => {
            if (c.epoch !== epoch) return Effect.void
            if (won === "OK") {
              Circuit.adopt(c, { _tag: "HalfOpen" })
              return renewLoop(c, epoch, holder, now())
            }
            return command("PTTL", () => client.pttl(c.leaseKey)).pipe(
              Effect.flatMap((ttl) => {
                if (c.epoch !== epoch) return Effect.void
                const wait = Math.max(ttl, 50)
                Circuit.adopt(c, { _tag: "Open", remainingMillis: wait + hold, openings: Circuit.openings(c) })
                return Effect.andThen(Effect.sleep(wait), leaseLoop(c, epoch))
              })
            )
          }),
          // Redis failed: the hold runs out and the breaker probes locally; the heartbeat reports the outage.
          Effect.ignore
        )
      })

    /** Renews the lease while this replica's probe runs; an idle winner gives the turn back. */
    const renewLoop = (c: Circuit.Circuit, epoch: number, holder: string, since: number): Effect.Effect<void> =>
      Effect.andThen(
        Effect.sleep(Math.max(Math.floor(lease / 3), 10)),
        Effect.suspend(() => {
          const phase = c.breaker.unsafe.phase()
          if (c.epoch !== epoch || phase._tag !== "HalfOpen") return Effect.void
          const idle = phase.admitted === 0 && now() - since >= lease
          if (idle) {
            // No call and no probe took the permit for a whole lease: hold again and let another replica try.
            Circuit.adopt(c, { _tag: "Open", remainingMillis: lease + hold, openings: phase.openings })
            return Effect.andThen(Effect.sleep(lease), leaseLoop(c, epoch))
          }
          return command("RENEW", () => client.eval(Scripts.renew, 1, c.leaseKey, holder, lease)).pipe(
            Effect.flatMap((renewed) => renewed === 1 ? renewLoop(c, epoch, holder, since) : Effect.void),
            Effect.ignore
          )
        })
      )

    // --- publishing this replica's decisions ------------------------------------

    const decide = (
      c: Circuit.Circuit,
      rule: Circuit.Rule,
      kind: Scripts.Answer["kind"],
      duration: number,
      openings: number
    ) =>
      command(
        "DECIDE",
        () =>
          client.eval(
            Scripts.decide,
            3,
            c.stateKey,
            c.leaseKey,
            c.countsKey,
            channel,
            rule,
            kind,
            Math.max(0, Math.round(duration)),
            openings,
            pod,
            c.breaker.name
          )
      ).pipe(
        Effect.flatMap((reply) =>
          Effect.sync(() => {
            const answer = Scripts.parse(reply)
            if (answer !== undefined) apply(answer)
          })
        ),
        Effect.catch((error) =>
          Effect.sync(() => {
            c.dirty = true
          }).pipe(
            Effect.andThen(Effect.logDebug("fleet_publish_failed")),
            Effect.annotateLogs({ group, pod, circuit: c.breaker.name, error: error.message })
          )
        )
      )

    const onTransition = (c: Circuit.Circuit) => (transition: CircuitBreaker.Transition): void => {
      if (c.applying || transition.reason === "Remote" || closed) return
      if (!connected) {
        if (transition.reason !== "OpenElapsed") c.dirty = true
        return
      }
      switch (transition.reason) {
        case "Tripped":
        case "ProbeFailed": {
          const phase = c.breaker.unsafe.phase()
          if (phase._tag === "Open") run(decide(c, "trip", "open", transition.retryAfterMillis, phase.openings))
          return
        }
        case "ProbesSucceeded":
          run(decide(c, "probe", "closed", 0, 0))
          return
        case "ForcedOpen":
          run(decide(c, "admin", "forced", 0, Circuit.openings(c)))
          return
        case "Disabled":
          run(decide(c, "admin", "disabled", 0, 0))
          return
        case "Reset":
          run(decide(c, "admin", "closed", 0, 0))
          return
        default:
          return
      }
    }

    // --- connection state -------------------------------------------------------

    /** Reads the stored state, adopts it when newer, and publishes what this replica decided while apart. */
    const reconcile = (c: Circuit.Circuit): Effect.Effect<void> =>
      command("READ", () => client.eval(Scripts.read, 1, c.stateKey, c.breaker.name)).pipe(
        Effect.flatMap((reply) =>
          Effect.suspend(() => {
            const stored = Scripts.parse(reply)
            const dirty = c.dirty
            c.dirty = false
            if (stored !== undefined && stored.epoch > c.epoch) apply(stored)
            if (!dirty) return Effect.void
            // Decided while apart: publish it; the script fences it against the stored state.
            const phase = c.breaker.unsafe.phase()
            if (phase.mode === "ForcedOpen") return decide(c, "admin", "forced", 0, phase.openings)
            if (phase.mode === "Disabled") return decide(c, "admin", "disabled", 0, 0)
            if (phase._tag === "Open") {
              return decide(c, "trip", "open", Math.max(0, phase.until - now()), phase.openings)
            }
            if (phase._tag === "Closed" && stored?.kind === "open" && stored.remaining === 0) {
              return decide(c, "probe", "closed", 0, 0)
            }
            return Effect.void
          })
        ),
        Effect.catch(() => Effect.void)
      )

    const setConnected = (up: boolean): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (up === connected || closed) return Effect.void
        connected = up
        gauge?.set({ service, group }, up ? 1 : 0)
        if (!up) {
          // Back to local breakers: no hold past the fleet's own period, no lease loop.
          for (const c of circuits.values()) {
            Circuit.stopLoop(c)
            const phase = c.breaker.unsafe.phase()
            if (phase._tag === "Open" && phase.mode === "Normal" && !Number.isNaN(c.fleetUntil)) {
              Circuit.adopt(c, {
                _tag: "Open",
                remainingMillis: Math.max(0, c.fleetUntil - now()),
                openings: phase.openings
              })
            }
          }
          return Effect.logWarning("circuit_breaker_fleet_disconnected").pipe(
            Effect.annotateLogs({ service, group, pod, fallback: "local breakers" })
          )
        }
        return Effect.logInfo("circuit_breaker_fleet_connected").pipe(
          Effect.annotateLogs({ service, group, pod }),
          Effect.andThen(Effect.forEach(Array.from(circuits.values()), reconcile, { discard: true }))
        )
      })

    const healthy: Effect.Effect<boolean> = Effect.suspend(() =>
      subscriber.status !== "ready" || client.status !== "ready"
        ? Effect.succeed(false)
        : command("PING", () => client.ping()).pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false)))
    )

    subscriber.on("message", (from: string, text: string) => {
      if (from !== channel || !connected) return
      const answer = Scripts.parse(text)
      if (answer !== undefined) apply(answer)
    })
    // A dropped socket is noticed at once; a stalled one by the heartbeat.
    const onClose = () => run(setConnected(false))
    client.on("close", onClose)
    subscriber.on("close", onClose)

    // The shared count: each replica reads its breakers' consecutive counts off the call path and reports changes.
    const report = (c: Circuit.Circuit): Effect.Effect<void> => {
      const policy = c.breaker.unsafe.settings().policy
      const phase = c.breaker.unsafe.phase()
      if (policy._tag !== "Consecutive" || phase._tag !== "Closed" || phase.mode !== "Normal") {
        c.reported = 0
        return Effect.void
      }
      const failures = c.breaker.unsafe.snapshot().failures
      if (failures === c.reported) return Effect.void
      c.reported = failures
      const threshold = (policy as TripPolicy.Consecutive).failMax
      const duration = Machine.openDuration(c.breaker.unsafe.settings(), 1)
      return command(
        "COUNT",
        () =>
          client.eval(
            Scripts.count,
            3,
            c.stateKey,
            c.leaseKey,
            c.countsKey,
            channel,
            pod,
            failures,
            threshold,
            duration,
            c.breaker.name,
            Math.max(10 * countInterval, 1000)
          )
      ).pipe(
        Effect.flatMap((reply) =>
          Effect.sync(() => {
            const answer = Scripts.parse(reply)
            if (answer !== undefined) apply(answer)
          })
        ),
        Effect.ignore
      )
    }
    const countLoop: Effect.Effect<void> = Effect.suspend(() =>
      connected ? Effect.forEach(Array.from(circuits.values()), report, { discard: true }) : Effect.void
    ).pipe(Effect.andThen(Effect.sleep(countInterval)), Effect.forever)

    // Each replica's view of its circuits rides on the heartbeat (off the call path), for the board's fleet view.
    const viewTtl = Math.max(3 * heartbeat + timeout, 2000)
    const publishView: Effect.Effect<void> = Effect.suspend(() =>
      connected
        ? command("VIEW", () => Views.publish(client, prefix, pod, viewTtl, localStates())).pipe(Effect.ignore)
        : Effect.void
    )
    const localStates = () =>
      Object.fromEntries(Array.from(circuits, ([name, c]) => [name, Views.stateLabels[c.breaker.unsafe.state()]]))

    const heartbeatLoop: Effect.Effect<void> = Effect.flatMap(healthy, (up) => setConnected(up)).pipe(
      Effect.andThen(publishView),
      Effect.andThen(Effect.sleep(heartbeat)),
      Effect.forever
    )

    yield* Effect.acquireRelease(
      Effect.sync(() => {
        subscriber.subscribe(channel).catch(() => undefined)
        return [run(heartbeatLoop), options.shareCounts === true ? run(countLoop) : undefined] as const
      }),
      (fibers) =>
        Effect.sync(() => {
          closed = true
          for (const fiber of fibers) fiber?.interruptUnsafe()
          for (const c of circuits.values()) Circuit.stopLoop(c)
          gauge?.remove({ service, group })
          client.disconnect()
          subscriber.disconnect()
        })
    )

    yield* registry.onRegister((breaker) => {
      // A circuit the fleet does not share stays local: no listener, no Redis key, no adoption.
      if (shared !== undefined && !shared.has(breaker.name)) return
      const c = Circuit.make(breaker, prefix)
      circuits.set(breaker.name, c)
      // One scope per breaker, closed when it leaves the registry or the fleet stops.
      const listening = Scope.forkUnsafe(scope)
      Effect.runSync(Scope.provide(listening)(breaker.listen({ onTransition: onTransition(c) })))
      if (connected) run(reconcile(c))
      return () => {
        Effect.runSync(Scope.close(listening, Exit.void))
        Circuit.stopLoop(c)
        circuits.delete(breaker.name)
      }
    })

    const status = Effect.sync((): Status => ({
      group,
      pod,
      connected,
      epochs: Object.fromEntries(Array.from(circuits, ([name, c]) => [name, c.epoch]))
    }))
    const own = () => ({ pod, ageMillis: 0, circuits: localStates() })
    const views = Effect.suspend(() => {
      const alone: ReplicaViews = { group, pod, connected, replicas: [own()], leases: {} }
      if (!connected) return Effect.succeed(alone)
      const names = Array.from(circuits.keys())
      return command("VIEWS", () => Views.read(client, prefix, names)).pipe(
        Effect.map(({ leases, replicas }): ReplicaViews => ({
          group,
          pod,
          connected,
          replicas: [own(), ...replicas.filter((r) => r.pod !== pod)],
          leases
        })),
        Effect.catch(() => Effect.succeed(alone))
      )
    })
    return Fleet.of({ group, pod, status, views })
  }
)

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
