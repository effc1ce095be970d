/**
 * `Facade.make` and `Facade.makeRegistry`: breakers for Promise code with no Effect in sight,
 * closed by `close()` or `await using`, whose timers never keep the process alive. These breakers
 * run on the live clock (their timers are real, unref'd Node timers: the property under test), so
 * the few waits below are short real ones, polled.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  CircuitBreaker,
  CircuitBreakerError,
  CircuitBreakerOptionsError,
  Facade,
  Registry,
  withBreaker
} from "@neural-hive/resilience"
import { Effect, Layer, Logger } from "effect"
import { spawnSync } from "node:child_process"
import { EXAMPLE_NODE, SOURCE_CONDITION } from "../../tools/rig/example.ts"

const refused = (): Promise<never> => Promise.reject(new Error("connection refused"))

const until = async (condition: () => boolean, millis = 2_000): Promise<void> => {
  const deadline = Date.now() + millis
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe("Facade.make", () => {
  it("guards Promise and sync calls, trips, rejects with CircuitBreakerError", async () => {
    await using breaker = Facade.make({ name: "users_api", failMax: 2 })
    const get = breaker.wrap((id: string) => id === "down" ? refused() : Promise.resolve(id))
    expect(await get("1")).toBe("1")
    await expect(get("down")).rejects.toThrow("connection refused")
    expect(breaker.state()).toBe("Closed")
    await expect(breaker.execute(refused)).rejects.toThrow("connection refused")
    expect(breaker.state()).toBe("Open")
    const rejection = await get("1").catch((error: unknown) => error)
    expect(rejection).toBeInstanceOf(CircuitBreakerError)
    expect(breaker.snapshot().totals).toMatchObject({ successes: 1, failures: 2, rejected: 1, trips: 1 })
    const parse = breaker.wrapSync((text: string) => JSON.parse(text) as unknown)
    expect(() => parse("[1]")).toThrow(CircuitBreakerError)
  })

  it("throws CircuitBreakerOptionsError naming a bad option, and leaves nothing running", () => {
    const error = (() => {
      try {
        Facade.make({ name: "bad", failMax: 0 })
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(CircuitBreakerOptionsError)
    expect((error as CircuitBreakerOptionsError).option).toBe("failMax")
  })

  it("listen returns an unsubscribe; close ends every listener and is idempotent", async () => {
    const breaker = Facade.make({ name: "events", failMax: 1 })
    const seen: Array<string> = []
    const calls: Array<string> = []
    const stop = breaker.listen({ onTransition: (t) => seen.push(`${t.from}->${t.to}:${t.reason}`) })
    breaker.listen({ onCall: (outcome) => calls.push(outcome) })
    await breaker.execute(() => Promise.resolve(1))
    await breaker.execute(refused).catch(() => undefined)
    expect(seen).toEqual(["Closed->Open:Tripped"])
    stop()
    expect(breaker.reset()).toBe(true)
    expect(seen).toHaveLength(1)
    expect(calls).toEqual(["success", "failure"])
    expect(breaker.closed).toBe(false)
    const first = breaker.close()
    expect(breaker.close()).toBe(first)
    await first
    expect(breaker.closed).toBe(true)
    expect(breaker.forceOpen()).toBe(true)
    await breaker.execute(() => Promise.resolve(1)).catch(() => undefined)
    expect(calls).toEqual(["success", "failure"])
  })

  it("forceOpen, disable and reset answer whether they changed the breaker", async () => {
    await using breaker = Facade.make({ name: "admin" })
    expect(breaker.forceOpen()).toBe(true)
    expect(breaker.forceOpen()).toBe(false)
    await expect(breaker.execute(() => Promise.resolve(1))).rejects.toBeInstanceOf(CircuitBreakerError)
    expect(breaker.disable()).toBe(true)
    await expect(breaker.execute(refused)).rejects.toThrow("connection refused")
    expect(breaker.state()).toBe("Closed")
    expect(breaker.reset()).toBe(true)
    expect(breaker.reset()).toBe(false)
  })

  it("runs a Promise probe while idle in HALF_OPEN and closes on its success", async () => {
    let probes = 0
    await using breaker = Facade.make({
      name: "probed",
      failMax: 1,
      recoveryTimeout: 20,
      probeGrace: 5,
      probe: () => {
        probes++
        return Promise.resolve("PONG")
      }
    })
    await breaker.execute(refused).catch(() => undefined)
    expect(breaker.state()).toBe("Open")
    await until(() => breaker.state() === "Closed")
    expect(probes).toBe(1)
  })

  it("after close an elapsed open period still admits a trial call (no probe runs)", async () => {
    let probes = 0
    const breaker = Facade.make({
      name: "closed_early",
      failMax: 1,
      recoveryTimeout: 20,
      probeGrace: 5,
      probe: () => Promise.resolve(probes++)
    })
    await breaker.execute(refused).catch(() => undefined)
    await breaker.close()
    await until(() => breaker.state() === "HalfOpen")
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(probes).toBe(0)
    expect(await breaker.execute(() => Promise.resolve("ok"))).toBe("ok")
    expect(breaker.state()).toBe("Closed")
  })
})

describe("Facade.makeRegistry", () => {
  it("keeps names unique, lists and finds its breakers, closes them together", async () => {
    const registry = Facade.makeRegistry()
    const users = registry.make({ name: "users_api" })
    const orders = registry.make({ name: "orders_api", failMax: 3 })
    expect(() => registry.make({ name: "users_api" })).toThrow(CircuitBreakerOptionsError)
    expect(registry.get("users_api")).toBe(users)
    expect(registry.get("nope")).toBeUndefined()
    expect(registry.breakers().map((b) => b.name)).toEqual(["users_api", "orders_api"])
    await orders.close()
    expect(registry.breakers().map((b) => b.name)).toEqual(["users_api"])
    await registry[Symbol.asyncDispose]()
    expect(users.closed).toBe(true)
    expect(registry.breakers()).toEqual([])
  })

  it("its registry service shows the breakers to Effect code (Metrics, /health)", async () => {
    await using registry = Facade.makeRegistry()
    registry.make({ name: "a" })
    const b = registry.make({ name: "b", failMax: 1 })
    await b.execute(refused).catch(() => undefined)
    const snapshots = await Effect.runPromise(
      Effect.gen(function*() {
        return yield* (yield* Registry.Registry).snapshots
      }).pipe(
        Effect.provide(Layer.succeed(Registry.Registry, registry.registry))
      )
    )
    expect(snapshots.map((s) => [s.name, s.state])).toEqual([["a", "Closed"], ["b", "Open"]])
  })
})

const runChild = (code: string): { readonly lag: number; readonly out: string } => {
  const child = spawnSync(EXAMPLE_NODE, [SOURCE_CONDITION, "--input-type=module", "-e", code], {
    encoding: "utf8",
    timeout: 30_000
  })
  const exitedAt = Date.now()
  expect(child.status, child.stderr).toBe(0)
  const last = Number(/last line at (\d+)/.exec(child.stdout)?.[1])
  return { lag: exitedAt - last, out: child.stdout }
}

describe("a facade breaker's timers never hold the process", () => {
  it("an OPEN breaker with a one-minute period, never closed, lets the process exit at once", () => {
    const { lag, out } = runChild(`
      import { Facade } from "@neural-hive/resilience"
      const breaker = Facade.make({ name: "left_open", failMax: 1, recoveryTimeout: "60 seconds", probe: () => Promise.resolve() })
      await breaker.execute(() => Promise.reject(new Error("down"))).catch(() => undefined)
      console.log(breaker.state())
      console.log("last line at " + Date.now())
    `)
    expect(out).toContain("Open")
    // The bug this guards against held the process for the whole open period (60 s).
    expect(lag).toBeLessThan(5_000)
  })
})

describe("a breaker used after its scope closed", () => {
  it.effect("says so once, on its first opening, in the log of the context it was made in", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const capture = Logger.make((options) => {
        logs.push(`${options.logLevel}: ${String(options.message)}`)
      })
      yield* Effect.gen(function*() {
        // The mistake: the scope closes as soon as the breaker is made.
        const breaker = yield* Effect.scoped(CircuitBreaker.make({ name: "short_lived", failMax: 1 }))
        for (let i = 0; i < 2; i++) {
          yield* breaker.reset
          yield* Effect.ignore(Effect.fail("down").pipe(withBreaker(breaker)))
          expect(yield* breaker.state).toBe("Open")
        }
        yield* Effect.yieldNow
        yield* Effect.yieldNow
      }).pipe(Effect.provide(Logger.layer([capture])))
      const warnings = logs.filter((line) => line.includes("opened after its scope closed"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/^Warn: circuit breaker "short_lived"/)
    }))
})

describe("CircuitBreakerError.retryAfterMillis", () => {
  it("is retryAfter in milliseconds, Infinity while forced open", async () => {
    await using breaker = Facade.make({ name: "retry_after", failMax: 1, recoveryTimeout: "30 seconds" })
    await breaker.execute(refused).catch(() => undefined)
    const open = (await breaker.execute(() => Promise.resolve(1)).catch((e: unknown) => e)) as CircuitBreakerError
    expect(open.retryAfterMillis).toBeGreaterThan(29_000)
    expect(open.retryAfterMillis).toBeLessThanOrEqual(30_000)
    breaker.forceOpen()
    const forced = (await breaker.execute(() => Promise.resolve(1)).catch((e: unknown) => e)) as CircuitBreakerError
    expect(forced.retryAfterMillis).toBe(Infinity)
  })
})
