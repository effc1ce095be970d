/**
 * The fleet on a real redis-server: three in-process replicas, each with its own
 * registry, breaker and Redis connections, share trips, the probe and admin
 * actions; Redis stalled and cut through a fault proxy makes them fall back to
 * local breakers without blocking a call, and they rejoin when it heals.
 * Real time (Redis TIME decides the open periods), short durations.
 */
import { assert, describe, it } from "@effect/vitest"
import { Fleet } from "@neural-hive/fleet"
import { Metrics } from "@neural-hive/observability"
import { CircuitBreaker, CircuitBreakerOptionsError, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect, Exit, Layer, Redacted } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { type ServerHandle, startRedis } from "../../tools/rig/servers.ts"
import { eventually } from "../integration/eventually.ts"
import { phaseOf } from "../support/resilienceInternals.ts"

let server: ServerHandle
let admin: Redis

beforeAll(async () => {
  server = await startRedis()
  admin = new Redis(server.endpoint)
})

afterAll(async () => {
  admin?.disconnect()
  await server?.stop()
})

const FAIL_MAX = 3
const RECOVERY = 1000
const HOLD = 1000

let groups = 0
const newGroup = () => `test-${process.pid}-${++groups}`

interface Replica {
  readonly pod: string
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly fleet: Fleet.Fleet["Service"]
  readonly transitions: Array<CircuitBreaker.Transition>
  readonly metrics: Metrics.Registry
}

/** One replica: its own registry, metrics, breaker and fleet connections (to `url`). */
const replica = (
  url: string,
  group: string,
  pod: string,
  probe?: Effect.Effect<unknown, unknown>,
  shareCounts = false
) =>
  Effect.gen(function*() {
    const registry = yield* Registry.make
    const metrics = yield* Metrics.make({ service: "orchestrator-dynamic" }).pipe(
      Effect.provideService(Registry.Registry, registry)
    )
    const fleet = yield* Fleet.make({
      redis: url,
      group,
      pod,
      heartbeat: 100,
      timeout: 300,
      lease: 1000,
      hold: HOLD,
      shareCounts
    })
      .pipe(
        Effect.provideService(Registry.Registry, registry),
        Effect.provideService(Metrics.PrometheusRegistry, metrics)
      )
    const breaker = yield* CircuitBreaker.make({
      name: "kafka_producer",
      failMax: FAIL_MAX,
      recoveryTimeout: RECOVERY,
      maxOpenDuration: 4 * RECOVERY,
      probeGrace: 200,
      ...(probe === undefined ? {} : { probe })
    }).pipe(Effect.provideService(Registry.Registry, registry))
    const transitions: Array<CircuitBreaker.Transition> = []
    yield* breaker.listen({ onTransition: (t) => transitions.push(t) })
    yield* eventually(fleet.status, (s) => s.connected, 5000)
    return { pod, breaker, fleet, transitions, metrics } satisfies Replica
  })

/** A dependency the test turns on and off, counting the calls that reach it. */
const dependency = () => {
  const state = { up: true, reached: 0 }
  const call = Effect.suspend(() => {
    state.reached++
    return state.up ? Effect.succeed("ok") : Effect.fail(new Error("ECONNREFUSED"))
  })
  return { state, call }
}

const states = (replicas: ReadonlyArray<Replica>) => Effect.forEach(replicas, (r) => r.breaker.state)

const trip = (r: Replica, call: Effect.Effect<string, Error>) =>
  Effect.gen(function*() {
    for (let i = 0; i < FAIL_MAX; i++) yield* Effect.exit(call.pipe(withBreaker(r.breaker)))
    assert.strictEqual(yield* r.breaker.state, "Open")
  })

/** Each replica's view of kafka_producer, as `pod:state`. */
const pods = (v: Fleet.ReplicaViews) => v.replicas.map((r) => `${r.pod}:${r.circuits["kafka_producer"]}`)

const makeBad = (options: Partial<Fleet.Options>) =>
  Fleet.make({ redis: "redis://127.0.0.1:1", group: "g", pod: "p", ...options }).pipe(
    Effect.provide(Registry.layer),
    Effect.flip
  )

describe("Fleet", () => {
  it.live("a trip on one replica opens every replica for the same remaining period, not counted as their trip", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const replicas = yield* Effect.forEach(["a", "b", "c"], (pod) => replica(server.endpoint, group, pod))
      const [a, b, c] = replicas as [Replica, Replica, Replica]
      const dep = dependency()
      dep.state.up = false
      yield* trip(a, dep.call)
      const tripped = performance.now()
      yield* eventually(states(replicas), (s) => s.every((x) => x === "Open"), 2000)
      assert.isBelow(performance.now() - tripped, 1000, "the fleet opened within a second, even on a loaded machine")
      for (const r of [b, c]) {
        const t = r.transitions.at(-1)!
        assert.strictEqual(t.reason, "Remote")
        assert.strictEqual(t.to, "Open")
        // The same period as the origin's (less the propagation), plus the hold while the lease is asked for.
        assert.isAtMost(t.retryAfterMillis, RECOVERY + HOLD)
        assert.isAbove(t.retryAfterMillis, RECOVERY + HOLD - 500)
        assert.strictEqual((yield* r.breaker.snapshot).totals.trips, 0)
      }
      assert.strictEqual((yield* a.breaker.snapshot).totals.trips, 1)
      // No call of b or c reached the dead dependency.
      assert.strictEqual(dep.state.reached, FAIL_MAX)
      const rejected = yield* Effect.exit(dep.call.pipe(withBreaker(c.breaker)))
      assert.isTrue(Exit.isFailure(rejected))
      assert.strictEqual(dep.state.reached, FAIL_MAX)
    }))

  it.live("one probe for the fleet: the lease winner probes, the others reject until it closes them", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const replicas = yield* Effect.forEach(["a", "b", "c"], (pod) => replica(server.endpoint, group, pod))
      const dep = dependency()
      dep.state.up = false
      yield* trip(replicas[0]!, dep.call)
      yield* eventually(states(replicas), (s) => s.every((x) => x === "Open"), 2000)
      dep.state.up = true
      const before = dep.state.reached
      // Steady calls on every replica until all are closed again.
      let rounds = 0
      let probes = 0
      while (!(yield* states(replicas)).every((x) => x === "Closed")) {
        for (const r of replicas) {
          const phase = phaseOf(r.breaker)
          const reached = dep.state.reached
          yield* Effect.exit(dep.call.pipe(withBreaker(r.breaker)))
          if (phase._tag !== "Closed" && dep.state.reached > reached) probes++
        }
        yield* Effect.sleep("10 millis")
        assert.isBelow(++rounds, 1000, "the fleet never closed")
      }
      assert.strictEqual(probes, 1, "one probe reached the recovering dependency")
      assert.isAtLeast(dep.state.reached - before, 1)
      for (const r of replicas.slice(1)) {
        assert.include(r.transitions.map((t) => t.reason), "Remote")
      }
    }))

  it.live("a failed probe reopens the fleet with the next, doubled, period", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const dep = dependency()
      const replicas = yield* Effect.forEach(
        ["a", "b", "c"],
        (pod) => replica(server.endpoint, group, pod, Effect.asVoid(dep.call))
      )
      dep.state.up = false
      yield* trip(replicas[0]!, dep.call)
      const reached = dep.state.reached
      // No traffic: the lease winner's own probe fails and every replica reopens with openings 2.
      yield* eventually(
        Effect.sync(() => replicas.map((r) => phaseOf(r.breaker))),
        (ps) => ps.every((p) => p._tag === "Open" && p.openings === 2),
        6000
      )
      assert.strictEqual(dep.state.reached - reached, 1, "one probe for the fleet")
      for (const r of replicas) {
        const p = phaseOf(r.breaker)
        assert.isTrue(p._tag === "Open" && p.until - Date.now() > RECOVERY, "the second period is doubled")
      }
    }))

  it.live("force open, disable and reset through any replica apply to the fleet, logged as Remote on the others", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const replicas = yield* Effect.forEach(["a", "b", "c"], (pod) => replica(server.endpoint, group, pod))
      const [a, b, c] = replicas as [Replica, Replica, Replica]
      const modes = Effect.sync(() => replicas.map((r) => phaseOf(r.breaker).mode))
      yield* b.breaker.forceOpen
      yield* eventually(modes, (m) => m.every((x) => x === "ForcedOpen"), 2000)
      assert.deepStrictEqual(
        a.transitions.at(-1),
        { ...a.transitions.at(-1)!, reason: "Remote", to: "Open", mode: "ForcedOpen" }
      )
      yield* c.breaker.disable
      yield* eventually(modes, (m) => m.every((x) => x === "Disabled"), 2000)
      yield* a.breaker.reset
      yield* eventually(modes, (m) => m.every((x) => x === "Normal"), 2000)
      assert.deepStrictEqual(yield* states(replicas), ["Closed", "Closed", "Closed"])
    }))

  it.live("fencing: a late or duplicated message never reopens a closed circuit nor shortens an open period", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const replicas = yield* Effect.forEach(["a", "b"], (pod) => replica(server.endpoint, group, pod))
      const [a, b] = replicas as [Replica, Replica]
      const dep = dependency()
      dep.state.up = false
      yield* trip(a, dep.call)
      yield* eventually(states(replicas), (s) => s.every((x) => x === "Open"), 2000)
      const opened = (yield* b.fleet.status).epochs["kafka_producer"]!
      yield* b.breaker.reset // an admin reset: the fleet closes, with a newer epoch
      yield* eventually(states(replicas), (s) => s.every((x) => x === "Closed"), 2000)
      // The old opening arrives again, late: same epoch, then an older one with a long period.
      const channel = `nh:fleet:${group}`
      const stale = { circuit: "kafka_producer", kind: "open", openings: 1, pod: "a", accepted: true }
      yield* Effect.promise(() =>
        admin.publish(channel, JSON.stringify({ ...stale, epoch: opened, remaining: 60_000 }))
      )
      yield* Effect.promise(() =>
        admin.publish(channel, JSON.stringify({ ...stale, epoch: opened - 1, remaining: 60_000 }))
      )
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(yield* states(replicas), ["Closed", "Closed"])
      // Open again; a probe result for the old period is refused while the new one is in force.
      yield* trip(a, dep.call)
      yield* eventually(states(replicas), (s) => s.every((x) => x === "Open"), 2000)
      const until = (phaseOf(b.breaker) as { until: number }).until
      yield* Effect.promise(() => admin.publish(channel, JSON.stringify({ ...stale, epoch: opened, remaining: 10 })))
      yield* Effect.sleep("200 millis")
      assert.strictEqual((phaseOf(b.breaker) as { until: number }).until, until)
    }))

  it.live("Redis stalled: every replica falls back to local breakers within heartbeat + timeout, no call blocked; healed: it rejoins and adopts the open period", () =>
    Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => FaultProxy.start({ targetPort: server.port })),
        (p) => Effect.promise(() => p.close())
      )
      const group = newGroup()
      const via = `redis://127.0.0.1:${proxy.port}`
      const [a, b] = (yield* Effect.forEach(["a", "b"], (pod) => replica(via, group, pod))) as [Replica, Replica]
      const c = yield* replica(server.endpoint, group, "c") // c keeps its Redis
      const dep = dependency()
      yield* Effect.promise(() => proxy.stall())
      const stalled = performance.now()
      // Calls never wait for Redis, during the fall back either.
      let slowest = 0
      while ((yield* a.fleet.status).connected || (yield* b.fleet.status).connected) {
        const started = performance.now()
        yield* dep.call.pipe(withBreaker(a.breaker))
        slowest = Math.max(slowest, performance.now() - started)
        yield* Effect.sleep("5 millis")
        assert.isBelow(performance.now() - stalled, 2000, "no fall back")
      }
      const fallback = performance.now() - stalled
      assert.isBelow(fallback, 100 + 300 + 600, "fell back within heartbeat + timeout (+ scheduling margin)")
      // A call that waited for Redis would take the command timeout (300 ms).
      assert.isBelow(slowest, 200, "no call waited for Redis")
      const text = yield* Effect.promise(() => a.metrics.metrics())
      assert.match(text, /circuit_breaker_fleet_connected\{service="orchestrator-dynamic",group="[^"]+",pod="a"\} 0/)
      assert.match(text, /circuit_breaker_state\{service="orchestrator-dynamic",circuit="kafka_producer",pod="a"\} 0/)
      // Apart, a trips locally: its breaker works alone; c trips too and publishes.
      dep.state.up = false
      yield* trip(a, dep.call)
      yield* trip(c, dep.call)
      assert.strictEqual(yield* b.breaker.state, "Closed", "b did not hear of it")
      yield* Effect.promise(() => proxy.pass())
      yield* eventually(
        Effect.all([a.fleet.status, b.fleet.status]),
        (s) => s.every((x) => x.connected),
        3000
      )
      yield* eventually(b.breaker.state, (s) => s === "Open", 2000)
      assert.strictEqual(b.transitions.at(-1)!.reason, "Remote")
      const text2 = yield* Effect.promise(() => a.metrics.metrics())
      assert.match(text2, /circuit_breaker_fleet_connected\{[^}]*pod="a"\} 1/)
    }))

  it.live("Redis killed: the connection drop is noticed, and the replica rejoins when Redis is back", () =>
    Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => FaultProxy.start({ targetPort: server.port })),
        (p) => Effect.promise(() => p.close())
      )
      const a = yield* replica(`redis://127.0.0.1:${proxy.port}`, newGroup(), "a")
      yield* Effect.promise(() => proxy.refuse())
      proxy.cut()
      const cut = performance.now()
      yield* eventually(a.fleet.status, (s) => !s.connected, 2000)
      assert.isBelow(performance.now() - cut, 1000)
      yield* Effect.promise(() => proxy.pass())
      yield* eventually(a.fleet.status, (s) => s.connected, 5000)
    }))

  it.effect("bad options fail with CircuitBreakerOptionsError (circuit fleet) naming the option; a password never shows", () =>
    Effect.gen(function*() {
      const group = yield* makeBad({ group: "a group with spaces" })
      assert.instanceOf(group, CircuitBreakerOptionsError)
      assert.strictEqual(group._tag, "CircuitBreakerOptionsError")
      assert.strictEqual(group.circuit, "fleet")
      assert.strictEqual(group.option, "group")
      assert.strictEqual(group.value, "a group with spaces")
      assert.include(group.message, "a group with spaces")
      const pod = yield* makeBad({ pod: "" })
      assert.deepStrictEqual([pod.circuit, pod.option, pod.value], ["fleet", "pod", ""])
      const url = yield* makeBad({ redis: "http://user:s3cret@host" })
      assert.strictEqual(url.option, "redis")
      assert.strictEqual(url.value, "http://user:***@host")
      assert.notInclude(url.message, "s3cret")
      // A URL too malformed for the redaction patterns loses everything before its '@'.
      const malformed = yield* makeBad({ redis: Redacted.make("redis:/:s3cret@host") })
      assert.strictEqual(malformed.option, "redis")
      assert.notInclude(malformed.message, "s3cret")
      assert.notInclude(String(malformed.value), "s3cret")
      const heartbeat = yield* makeBad({ heartbeat: -1 })
      assert.deepStrictEqual([heartbeat.circuit, heartbeat.option, heartbeat.value], ["fleet", "heartbeat", -1])
      const lease = yield* makeBad({ lease: "soon" as never })
      assert.strictEqual(lease.option, "lease")
    }).pipe(Effect.scoped))

  it.live("shared counts: failures spread over the replicas open the fleet at failMax in total; local counts do not", () =>
    Effect.gen(function*() {
      const dep = dependency()
      dep.state.up = false
      const fail = (r: Replica) => Effect.exit(dep.call.pipe(withBreaker(r.breaker)))
      const local = yield* Effect.forEach(["a", "b", "c"], (pod) => replica(server.endpoint, newGroup(), pod))
      yield* Effect.forEach(local, fail)
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(yield* states(local), ["Closed", "Closed", "Closed"])

      const group = newGroup()
      const shared = yield* Effect.forEach(
        ["a", "b", "c"],
        (pod) => replica(server.endpoint, group, pod, undefined, true)
      )
      dep.state.reached = 0
      const key = `nh:fleet:${group}:kafka_producer`
      const stored = Effect.promise(() => Promise.all([admin.hvals(`${key}:counts`), admin.exists(`${key}:state`)]))
      // One failure per replica, round after round, as a balanced load does, until every replica refuses.
      for (let round = 0; !(yield* states(shared)).every((x) => x === "Open"); round++) {
        for (const r of shared) yield* fail(r)
        // Counts are reported off the call path: the next round waits for Redis to hold them (or for the fleet's
        // opening to reach every replica), so a loaded machine cannot let a round through on stale counts.
        const [counts, opened] = yield* eventually(
          stored,
          ([counts, opened]) => opened === 1 || counts.reduce((sum, n) => sum + Number(n), 0) === dep.state.reached,
          5000
        )
        if (opened === 1) yield* eventually(states(shared), (s) => s.every((x) => x === "Open"), 5000)
        else assert.strictEqual(counts.length, shared.length, "every replica reports its count")
        assert.isBelow(round, 100, "the fleet never opened")
      }
      assert.isAtMost(dep.state.reached, FAIL_MAX + shared.length - 1)
      assert.isBelow(dep.state.reached, FAIL_MAX * shared.length)
    }))

  it.live("circuits: only the listed breakers are shared; one left out stays local to each replica", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const twoBreakers = (pod: string) =>
        Effect.gen(function*() {
          const registry = yield* Registry.make
          const fleet = yield* Fleet.make({
            redis: server.endpoint,
            group,
            pod,
            heartbeat: 100,
            timeout: 300,
            circuits: ["kafka_producer"]
          }).pipe(Effect.provideService(Registry.Registry, registry))
          const make = (name: string) =>
            CircuitBreaker.make({ name, failMax: FAIL_MAX, recoveryTimeout: 60_000 }).pipe(
              Effect.provideService(Registry.Registry, registry)
            )
          const kafka = yield* make("kafka_producer")
          const sidecar = yield* make("sidecar_cache")
          yield* eventually(fleet.status, (st) => st.connected, 5000)
          return { pod, fleet, kafka, sidecar }
        })
      const a = yield* twoBreakers("a")
      const b = yield* twoBreakers("b")
      assert.deepStrictEqual(Object.keys((yield* a.fleet.status).epochs), ["kafka_producer"])
      const dep = dependency()
      dep.state.up = false
      // The pod-private breaker trips on a alone: b's stays closed, through many heartbeats.
      for (let i = 0; i < FAIL_MAX; i++) yield* Effect.exit(dep.call.pipe(withBreaker(a.sidecar)))
      assert.strictEqual(yield* a.sidecar.state, "Open")
      yield* Effect.sleep(1000)
      assert.strictEqual(yield* b.sidecar.state, "Closed")
      // The shared one trips on a and opens b too.
      for (let i = 0; i < FAIL_MAX; i++) yield* Effect.exit(dep.call.pipe(withBreaker(a.kafka)))
      yield* eventually(b.kafka.state, (state) => state === "Open", 3000)
      // A circuit name that cannot be a breaker's is refused before any connection.
      const bad = yield* makeBad({ circuits: ["Kafka Producer"] })
      assert.strictEqual(bad.option, "circuits")
    }))

  it.live("views: every replica publishes its circuits' states with its heartbeat; the lease holder shows; a gone replica expires", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const replicas = yield* Effect.forEach(["a", "b"], (pod) => replica(server.endpoint, group, pod))
      const [a] = replicas as [Replica, Replica]
      yield* Effect.scoped(Effect.gen(function*() {
        yield* replica(server.endpoint, group, "c")
        const views = yield* eventually(a.fleet.views, (v) => v.replicas.length === 3, 3000)
        assert.deepStrictEqual(pods(views), ["a:closed", "b:closed", "c:closed"])
        assert.deepStrictEqual([views.group, views.pod, views.connected], [group, "a", true])
        for (const r of views.replicas) assert.isAtMost(r.ageMillis, 2000)
        assert.deepStrictEqual(views.leases, {})
        // The probe lease's holder is the pod before `:epoch`.
        yield* Effect.promise(() => admin.set(`nh:fleet:${group}:kafka_producer:lease`, "b:42", "PX", 5000))
        const leased = yield* a.fleet.views
        assert.deepStrictEqual(leased.leases, { kafka_producer: "b" })
        const dep = dependency()
        dep.state.up = false
        yield* trip(a, dep.call)
        // Every replica's own report follows the fleet's decision within a heartbeat or so.
        yield* eventually(a.fleet.views, (v) => pods(v).join() === "a:open,b:open,c:open", 3000)
      }))
      // c stopped: its report expires (3 heartbeats + timeout, at least 2 s) and it leaves the set.
      const after = yield* eventually(a.fleet.views, (v) => v.replicas.length === 2, 5000)
      assert.deepStrictEqual(after.replicas.map((r) => r.pod), ["a", "b"])
      assert.notInclude(yield* Effect.promise(() => admin.smembers(`nh:fleet:${group}:replicas`)), "c")
    }))

  it.live("with no fleet layer nothing is shared", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const a = yield* replica(server.endpoint, group, "a")
      const registry = yield* Registry.make
      const alone = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: FAIL_MAX, recoveryTimeout: RECOVERY })
        .pipe(Effect.provideService(Registry.Registry, registry))
      const dep = dependency()
      dep.state.up = false
      yield* trip(a, dep.call)
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* alone.state, "Closed")
    }))
})

// Layer form compiles with the registry below it.
export const _layer = Fleet.layer({ redis: "redis://127.0.0.1:6379", group: "g", pod: "p" }).pipe(
  Layer.provideMerge(Registry.layer)
)
