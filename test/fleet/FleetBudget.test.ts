/**
 * The fleet-wide retry budget on a real redis-server: replicas, each with its
 * own registry and budget (registered with the circuit's policies, as
 * `GuardedClient.make` does), add up their windows through Redis, so one ratio
 * and one reserve bound the retries of the fleet; Redis cut through the fault
 * proxy, each budget counts alone again; a replica that stops leaves the
 * others' sums; a circuit the fleet does not share keeps its budget local.
 * Real time (the windows are shared every heartbeat), short durations.
 */
import { assert, describe, it } from "@effect/vitest"
import { Fleet } from "@neural-hive/fleet"
import { Registry, RetryBudget } from "@neural-hive/resilience"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { type ServerHandle, startRedis } from "../../tools/rig/servers.ts"
import { eventually } from "../integration/eventually.ts"

let server: ServerHandle

beforeAll(async () => {
  server = await startRedis()
})

afterAll(async () => {
  await server?.stop()
})

let groups = 0
const newGroup = () => `budget-${process.pid}-${++groups}`

/** One replica: its registry, its fleet (heartbeat 100 ms) and the budget of `circuit`, in a scope of its own. */
const replica = (url: string, group: string, pod: string, options: {
  readonly circuit?: string
  readonly circuits?: ReadonlyArray<string>
  readonly minPerSecond?: number
} = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const registry = yield* Registry.make
    const circuit = options.circuit ?? "kafka_producer"
    const budget = yield* RetryBudget.make({
      name: circuit,
      ratio: 0.1,
      minPerSecond: options.minPerSecond ?? 0,
      window: "10 seconds"
    })
    const fleet = yield* Fleet.make({
      redis: url,
      group,
      pod,
      heartbeat: 100,
      timeout: 300,
      ...(options.circuits === undefined ? {} : { circuits: options.circuits })
    }).pipe(Effect.provideService(Registry.Registry, registry), Scope.provide(scope))
    yield* registry.registerPolicies(circuit, { retryBudget: budget }).pipe(Scope.provide(scope))
    yield* eventually(fleet.status, (s) => s.connected, 5000)
    return { budget, fleet, close: Scope.close(scope, Exit.void) }
  })

const calls = (budget: RetryBudget.RetryBudget, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => budget.recordCall, { discard: true })

describe("Fleet: retry budgets", () => {
  it.live("the replicas' windows add up: a replica with no calls may retry on the fleet's calls", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const a = yield* replica(server.endpoint, group, "a")
      const b = yield* replica(server.endpoint, group, "b")
      const c = yield* replica(server.endpoint, group, "c")
      yield* calls(a.budget, 100)
      yield* calls(b.budget, 50)
      // c made no call: alone it could not retry (no reserve); the fleet made 150.
      assert.strictEqual(c.budget.stats().available, 0)
      const shared = yield* eventually(
        Effect.sync(() => c.budget.stats()),
        (s) => s.shared?.calls === 150,
        3000
      )
      assert.deepStrictEqual(shared.shared, { calls: 150, retries: 0, replicas: 2 })
      assert.strictEqual(shared.available, 15)
      // a spends ten retries: the others see them at the next heartbeat, and have five left between them all.
      for (let i = 0; i < 10; i++) assert.isTrue(yield* a.budget.tryRetry)
      yield* eventually(Effect.sync(() => c.budget.stats()), (s) => s.shared?.retries === 10, 3000)
      yield* eventually(Effect.sync(() => b.budget.stats()), (s) => s.shared?.retries === 10, 3000)
      assert.strictEqual(c.budget.stats().available, 5)
      assert.strictEqual(b.budget.stats().available, 5)
      yield* Effect.forEach([a, b, c], (r) => r.close, { discard: true })
    }))

  it.live("one reserve for the fleet: three idle replicas share minPerSecond x window, not three of them", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const replicas = yield* Effect.forEach(
        ["a", "b", "c"],
        (pod) => replica(server.endpoint, group, pod, { minPerSecond: 1 })
      )
      // The reserve: 1/s over 10 s = 10 retries. Each replica alone would grant 10 (30 in all).
      let granted = 0
      for (const r of replicas) {
        for (let i = 0; i < 10; i++) if (yield* r.budget.tryRetry) granted++
        // Let every replica see the fleet's retries (its own and the others') before the next one tries.
        yield* eventually(
          Effect.sync(() =>
            replicas.every((o) => o.budget.stats().retries + (o.budget.stats().shared?.retries ?? -1) >= granted)
          ),
          (seen) => seen,
          3000
        )
      }
      assert.strictEqual(granted, 10)
      yield* Effect.forEach(replicas, (r) => r.close, { discard: true })
    }))

  it.live("Redis cut: each budget counts alone again; back: shared again; a stopped replica leaves the sums", () =>
    Effect.gen(function*() {
      const proxy = yield* Effect.promise(() => FaultProxy.start({ targetPort: server.port }))
      const group = newGroup()
      const a = yield* replica(server.endpoint, group, "a")
      const b = yield* replica(`redis://127.0.0.1:${proxy.port}`, group, "b")
      yield* calls(a.budget, 100)
      yield* eventually(Effect.sync(() => b.budget.stats()), (s) => s.shared?.calls === 100, 3000)

      yield* Effect.promise(() => proxy.refuse())
      proxy.cut()
      const alone = yield* eventually(Effect.sync(() => b.budget.stats()), (s) => s.shared === undefined, 3000)
      assert.strictEqual(alone.available, 0)

      yield* Effect.promise(() => proxy.pass())
      yield* eventually(Effect.sync(() => b.budget.stats()), (s) => s.shared?.calls === 100, 10_000)

      // a stops: its window leaves b's sums once its last report is older than the ttl (2 s here).
      yield* a.close
      const gone = yield* eventually(Effect.sync(() => b.budget.stats()), (s) => s.shared?.replicas === 0, 6000)
      assert.strictEqual(gone.shared?.calls, 0)
      assert.strictEqual(gone.available, 0)
      yield* b.close
      yield* Effect.promise(() => proxy.close())
    }))

  it.live("a circuit the fleet does not share keeps its budget local", () =>
    Effect.gen(function*() {
      const group = newGroup()
      const only = { circuit: "sidecar", circuits: ["kafka_producer"] }
      const a = yield* replica(server.endpoint, group, "a", only)
      const b = yield* replica(server.endpoint, group, "b", only)
      yield* calls(a.budget, 100)
      // Several heartbeats: nothing is shared.
      yield* Effect.sleep("600 millis")
      assert.strictEqual(b.budget.stats().shared, undefined)
      assert.strictEqual(b.budget.stats().available, 0)
      yield* Effect.forEach([a, b], (r) => r.close, { discard: true })
    }))
})
