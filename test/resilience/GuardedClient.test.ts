/**
 * The integrations' shared skeleton over an in-memory client whose health the test switches:
 * duration options checked, the start check counted, the client retired when the breaker opens
 * and re-made by the probe, the deadline, and the idle probe closing the breaker. TestClock
 * drives every wait.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  CircuitBreaker,
  CircuitBreakerError,
  CircuitBreakerOptionsError,
  failOpen,
  GuardedClient,
  withBreaker
} from "@neural-hive/resilience"
import { Cause, Effect, Exit, Fiber, Logger, References, Scope } from "effect"
import { TestClock } from "effect/testing"

class ApiError extends Error {
  readonly operation: string
  readonly kind: "Failed" | "Timeout" | "Caller"
  constructor(operation: string, kind: "Failed" | "Timeout" | "Caller") {
    super(`${operation}: ${kind}`)
    this.operation = operation
    this.kind = kind
  }
}

/** A fake dependency: every client made is recorded; `healthy` decides what each call answers. */
const dependency = () => {
  const state = { healthy: true, connects: 0, closes: 0, pings: 0, hang: false }
  class Client {
    closed = false
    ping(): Promise<string> {
      state.pings++
      if (this.closed) return Promise.reject(new Error("client closed"))
      if (state.hang) return new Promise(() => undefined)
      return state.healthy ? Promise.resolve("PONG") : Promise.reject(new Error("ECONNREFUSED"))
    }
  }
  const options = (overrides: Partial<GuardedClient.Options<Client, ApiError>> = {}) =>
    ({
      breaker: { name: "api_client", failMax: 2, recoveryTimeout: "10 seconds", probeGrace: "1 second" },
      connect: () => {
        state.connects++
        return new Client()
      },
      close: (client: Client) => {
        state.closes++
        client.closed = true
        return Promise.resolve()
      },
      deadline: 500,
      onError: (operation: string, cause: unknown) =>
        new ApiError(operation, String(cause).includes("caller") ? "Caller" : "Failed"),
      onTimeout: (operation: string, _detail: string | undefined, backstop?: { readonly message: string }) =>
        Object.assign(new ApiError(operation, "Timeout"), { backstop: backstop?.message }),
      span: { prefix: "Api", attributes: () => ({}) },
      probe: (client: Client) => client.ping(),
      ...overrides
    }) satisfies GuardedClient.Options<Client, ApiError>
  return { state, options }
}

describe("GuardedClient", () => {
  it.effect("durations: milliseconds with fallbacks, or CircuitBreakerOptionsError naming the bad option", () =>
    Effect.gen(function*() {
      const good = yield* GuardedClient.durations("api_client", {
        commandTimeout: ["300 millis", 1000],
        connectTimeout: [undefined, 2000]
      })
      assert.deepStrictEqual(good, { commandTimeout: 300, connectTimeout: 2000 })
      const bad = yield* Effect.flip(
        GuardedClient.durations("api_client", { commandTimeout: ["soon" as never, 1000] })
      )
      assert.instanceOf(bad, CircuitBreakerOptionsError)
      assert.strictEqual(bad.option, "commandTimeout")
      assert.include(bad.message, "api_client")
    }))

  it.effect("the start check runs the probe once through the breaker: a dead dependency is counted, never fatal", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      state.healthy = false
      const guarded = yield* GuardedClient.make(options())
      const snapshot = yield* guarded.breaker.snapshot
      assert.strictEqual(snapshot.totals.failures, 1)
      assert.include(snapshot.lastError ?? "", "probe: Failed")
      assert.strictEqual(snapshot.state, "Closed")

      const quiet = dependency()
      const unchecked = yield* GuardedClient.make(quiet.options({ checkOnStart: false }))
      assert.strictEqual((yield* unchecked.breaker.snapshot).totals.failures, 0)
      assert.strictEqual(quiet.state.pings, 0)
      const none = yield* GuardedClient.make(quiet.options({ breaker: { name: "api_2" }, probe: false }))
      assert.isUndefined(none.probe)
      assert.strictEqual(quiet.state.pings, 0)
    }).pipe(Effect.scoped))

  it.effect("the start check counts toward failMax: down from the start, failMax 3 opens at the second call", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      state.healthy = false
      const breaker = { name: "api_client", failMax: 3, recoveryTimeout: "10 seconds" } as const
      const guarded = yield* GuardedClient.make(options({ breaker }))
      const first = yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      assert.strictEqual(first instanceof ApiError && first.kind, "Failed")
      assert.strictEqual(yield* guarded.breaker.state, "Closed")
      yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      assert.strictEqual(yield* guarded.breaker.state, "Open")
      assert.deepStrictEqual((yield* guarded.breaker.snapshot).totals.failures, 3)
      // Without the check the same calls leave it closed: only the calls count.
      const unchecked = yield* GuardedClient.make(
        options({ breaker: { ...breaker, name: "api_2" }, checkOnStart: false })
      )
      for (let i = 0; i < 2; i++) yield* Effect.flip(unchecked.call("ping", (c) => c.ping()))
      assert.strictEqual(yield* unchecked.breaker.state, "Closed")
    }).pipe(Effect.scoped))

  it.effect("opening retires the client; while open nothing connects; the idle probe makes a fresh one and closes", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options())
      assert.deepStrictEqual([state.connects, state.pings], [1, 1]) // the start check
      state.healthy = false
      for (let i = 0; i < 2; i++) {
        const error = yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
        assert.strictEqual(error instanceof ApiError && error.kind, "Failed")
      }
      assert.strictEqual(yield* guarded.breaker.state, "Open")
      yield* Effect.yieldNow
      assert.strictEqual(state.closes, 1, "the client was closed when the breaker opened")
      const rejected = yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      assert.notInstanceOf(rejected, ApiError)
      assert.strictEqual(!(rejected instanceof ApiError) && rejected._tag, "CircuitBreakerError")
      assert.strictEqual(state.connects, 1, "no client is made while open")

      state.healthy = true
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* guarded.breaker.state, "HalfOpen")
      yield* TestClock.adjust("1 second") // the grace passes with no call: the breaker probes
      assert.strictEqual(yield* guarded.breaker.state, "Closed")
      assert.strictEqual(state.connects, 2, "the probe made a fresh client")
      assert.strictEqual(yield* guarded.call("ping", (c) => c.ping()), "PONG")
    }).pipe(Effect.scoped))

  it.effect("a call past its deadline fails with the client's own timeout error and counts", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options())
      state.hang = true
      const fiber = yield* Effect.forkChild(guarded.call("ping", (c) => c.ping()))
      yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      assert.strictEqual(error?._tag === "Fail" && error.error instanceof ApiError && error.error.kind, "Timeout")
      assert.strictEqual((yield* guarded.breaker.snapshot).totals.failures, 1)
    }).pipe(Effect.scoped))

  it.effect("a client that cannot be made at start fails make with the client's own error", () =>
    Effect.gen(function*() {
      const { options } = dependency()
      const error = yield* Effect.flip(
        GuardedClient.make(options({
          connect: () => {
            throw new Error("bad URL")
          }
        }))
      )
      assert.strictEqual(error instanceof ApiError && error.operation, "connect")
    }).pipe(Effect.scoped))

  it.effect("closing the scope closes the client of the moment", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const scope = yield* Scope.make()
      yield* GuardedClient.make(options()).pipe(Scope.provide(scope))
      assert.strictEqual(state.closes, 0)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(state.closes, 1)
    }))

  it.effect("guard runs an effect of the integration's own through the same path: counted, refused, its timeout", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options({
        breaker: { name: "api_client", failMax: 2, recoveryTimeout: "10 seconds", callTimeout: "300 millis" },
        checkOnStart: false
      }))
      assert.strictEqual(yield* guarded.guard("send", Effect.succeed("sent")), "sent")
      // No deadline of its own: only the breaker's callTimeout bounds it, as the integration's timeout error.
      const slow = yield* Effect.forkChild(Effect.flip(guarded.guard("send", Effect.never, "topic-a")))
      yield* TestClock.adjust("300 millis")
      const timedOut = yield* Fiber.join(slow)
      assert.deepStrictEqual([
        timedOut instanceof ApiError && timedOut.kind,
        (timedOut as { backstop?: string }).backstop
      ], [
        "Timeout",
        "call through circuit \"api_client\" timed out after 300ms"
      ])
      yield* Effect.flip(guarded.guard("send", Effect.fail(new ApiError("send", "Failed"))))
      assert.strictEqual(yield* guarded.breaker.state, "Open")
      const refused = yield* Effect.flip(guarded.guard("send", Effect.succeed("sent")))
      assert.instanceOf(refused, CircuitBreakerError)
      assert.strictEqual(state.connects, 1, "a guarded effect never dials the client")
    }).pipe(Effect.scoped))
})

const capture = (logs: Array<readonly [string, string, unknown]>) =>
  Logger.make((options) => {
    logs.push([
      options.logLevel,
      String(options.message),
      options.fiber.getRef(References.CurrentLogAnnotations)
    ])
  })

describe("failOpen", () => {
  it.effect("a failed call gives the fallback, logged at WARN with its reason and redacted error", () =>
    Effect.gen(function*() {
      const logs: Array<readonly [string, string, unknown]> = []
      const breaker = yield* CircuitBreaker.make({ name: "cache", failMax: 1, recoveryTimeout: "1 minute" })
      const down = Effect.fail(
        Object.assign(new Error("connect redis://user:hunter2@cache:6379 refused"), { reason: "Connection" })
      )
      const miss = yield* down.pipe(withBreaker(breaker), failOpen("redis GET", () => "miss")).pipe(
        Effect.provide(Logger.layer([capture(logs)])),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
      assert.strictEqual(miss, "miss")
      assert.deepStrictEqual(logs, [["Warn", "redis GET failed open", {
        reason: "Connection",
        error: "connect redis://user:***@cache:6379 refused"
      }]])
      // Open now: the refusal is the fallback too, logged at DEBUG, and the call did not run.
      let runs = 0
      const refused = yield* Effect.sync(() => runs++).pipe(withBreaker(breaker), failOpen("redis GET", () => -1)).pipe(
        Effect.provide(Logger.layer([capture(logs)])),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
      assert.deepStrictEqual([refused, runs, logs[1]?.[0], (logs[1]?.[2] as { reason?: string } | undefined)?.reason], [
        -1,
        0,
        "Debug",
        "Open"
      ])
      assert.strictEqual(yield* breaker.state, "Open")
    }).pipe(Effect.scoped))

  it.effect("a success passes through; a defect stays a defect; data-first works", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* failOpen(Effect.succeed("hit"), "redis GET", () => "miss"), "hit")
      const exit = yield* Effect.exit(failOpen(Effect.die("bug"), "redis GET", () => "miss"))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
    }))
})
