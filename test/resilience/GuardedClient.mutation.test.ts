/**
 * GuardedClient at its edges, over an in-memory client that records what it is asked: the bound of `close`
 * and what runs after it, which client is retired (and never closed twice), a client that cannot be made
 * again, whose probe the breaker runs, the breaker's own timeout, spans, the log of a retirement, and the
 * two layers. Written for behaviour a mutation run showed unpinned (docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { type CircuitBreakerError, GuardedClient } from "@neural-hive/resilience"
import { Config, ConfigProvider, Context, Effect, Exit, Fiber, Logger, References, Scope, Tracer } from "effect"
import { TestClock } from "effect/testing"

/** The integration's error: which operation, what kind, and the call's detail. */
class ApiError extends Error {
  readonly operation: string
  readonly kind: "Failed" | "Timeout"
  readonly detail: string | undefined
  constructor(operation: string, kind: "Failed" | "Timeout", detail: string | undefined) {
    super(`${operation}: ${kind}${detail === undefined ? "" : ` (${detail})`}`)
    this.operation = operation
    this.kind = kind
    this.detail = detail
  }
}

/** A fake dependency recording every client made and closed; `healthy`, `hang` and `dial` decide what happens. */
const dependency = () => {
  const state = {
    healthy: true,
    hang: false,
    dial: true,
    made: [] as Array<Client>,
    closed: [] as Array<Client | undefined>,
    abandoned: [] as Array<Client>,
    pings: 0
  }
  class Client {
    readonly id = state.made.length + 1
    ping(): Promise<string> {
      state.pings++
      if (state.hang) return new Promise(() => undefined)
      return state.healthy ? Promise.resolve(`PONG ${this.id}`) : Promise.reject(new Error("ECONNREFUSED"))
    }
  }
  const options = (overrides: Partial<GuardedClient.Options<Client, ApiError>> = {}) =>
    ({
      breaker: { name: "api_client", failMax: 1, recoveryTimeout: "10 seconds", probeGrace: "1 second" },
      connect: () => {
        if (!state.dial) throw new Error("getaddrinfo ENOTFOUND")
        const client = new Client()
        state.made.push(client)
        return client
      },
      close: (client: Client) => {
        state.closed.push(client)
        return Promise.resolve()
      },
      deadline: 500,
      onError: (operation: string, _cause: unknown, detail: string | undefined) =>
        new ApiError(operation, "Failed", detail),
      onTimeout: (operation: string, detail: string | undefined) => new ApiError(operation, "Timeout", detail),
      span: { prefix: "Api", attributes: (detail: string | undefined) => ({ "api.key": detail }) },
      probe: (client: Client) => client.ping(),
      ...overrides
    }) satisfies GuardedClient.Options<Client, ApiError>
  return { state, options }
}

const ids = (clients: ReadonlyArray<{ readonly id: number } | undefined>) => clients.map((c) => c?.id)

describe("GuardedClient: closing a client", () => {
  it.effect("close is bounded by 2 seconds unless told; abandon runs after it, with the client", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const hanging = options({
        close: (client) => {
          state.closed.push(client)
          return new Promise(() => undefined)
        },
        abandon: (client) => void state.abandoned.push(client)
      })
      const scope = yield* Scope.make()
      yield* GuardedClient.make(hanging).pipe(Scope.provide(scope))
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1999 millis")
      assert.deepStrictEqual([ids(state.closed), ids(state.abandoned)], [[1], []], "still waiting for close")
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(closing)))
      assert.deepStrictEqual(ids(state.abandoned), [1])

      const quick = yield* Scope.make()
      yield* GuardedClient.make({ ...hanging, closeTimeout: "100 millis" }).pipe(Scope.provide(quick))
      const closingQuick = yield* Effect.forkChild(Scope.close(quick, Exit.void))
      yield* TestClock.adjust("99 millis")
      assert.deepStrictEqual(ids(state.abandoned), [1])
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(closingQuick)))
      assert.deepStrictEqual(ids(state.abandoned), [1, 2])
    }))

  it.effect("a close that fails, and no abandon, still end the scope cleanly", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const scope = yield* Scope.make()
      yield* GuardedClient.make(options({
        close: (client) => {
          state.closed.push(client)
          return Promise.reject(new Error("already closed"))
        }
      })).pipe(Scope.provide(scope))
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(ids(state.closed), [1])
    }))

  it.effect("a client retired when the breaker opened is not closed again when the scope ends", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const scope = yield* Scope.make()
      const guarded = yield* GuardedClient.make(options({ checkOnStart: false })).pipe(Scope.provide(scope))
      state.healthy = false
      yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      assert.strictEqual(yield* guarded.breaker.state, "Open")
      yield* Effect.yieldNow
      assert.deepStrictEqual(ids(state.closed), [1])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(ids(state.closed), [1], "nothing left to close")
    }))
})

describe("GuardedClient: which client serves a call", () => {
  it.effect("only a transition into Open retires the client: HALF_OPEN and CLOSED keep the one the probe made", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options())
      state.healthy = false
      yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      yield* Effect.yieldNow
      assert.deepStrictEqual(ids(state.closed), [1])
      state.healthy = true
      yield* TestClock.adjust("11 seconds") // HALF_OPEN, then the idle probe closes the breaker
      assert.strictEqual(yield* guarded.breaker.state, "Closed")
      yield* Effect.yieldNow
      for (let i = 0; i < 3; i++) assert.strictEqual(yield* guarded.call("ping", (c) => c.ping()), "PONG 2")
      assert.deepStrictEqual([ids(state.made), ids(state.closed)], [[1, 2], [1]])

      // Forcing the breaker open retires the client too; resetting it does not dial until a call comes.
      assert.isTrue(yield* guarded.breaker.forceOpen)
      yield* Effect.yieldNow
      assert.deepStrictEqual(ids(state.closed), [1, 2])
      assert.isTrue(yield* guarded.breaker.reset)
      assert.deepStrictEqual(ids(state.made), [1, 2])
      assert.strictEqual(yield* guarded.call("ping", (c) => c.ping()), "PONG 3")
    }).pipe(Effect.scoped))

  it.effect("a client that cannot be made again fails the call as `connect`, with its detail, and counts", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options({ breaker: { name: "api_client", failMax: 2 } }))
      assert.isTrue(yield* guarded.breaker.forceOpen)
      assert.isTrue(yield* guarded.breaker.reset)
      state.dial = false
      const error = yield* Effect.flip(guarded.call("get", (c) => c.ping(), "user:1"))
      assert.instanceOf(error, ApiError)
      assert.deepStrictEqual([(error as ApiError).operation, (error as ApiError).detail], ["connect", "user:1"])
      assert.strictEqual((yield* guarded.breaker.snapshot).totals.failures, 1)
      assert.strictEqual(state.pings, 1, "only the start check reached a client")
    }).pipe(Effect.scoped))

  it.effect("a probe that cannot make a client reopens the breaker, and closes nothing that does not exist", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options({ checkOnStart: false }))
      state.healthy = false
      yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      yield* Effect.yieldNow
      assert.deepStrictEqual(ids(state.closed), [1])
      state.dial = false
      yield* TestClock.adjust("11 seconds") // HALF_OPEN; the idle probe cannot dial: open again
      const snapshot = yield* guarded.breaker.snapshot
      assert.strictEqual(snapshot.state, "Open")
      assert.include(snapshot.lastError ?? "", "connect: Failed")
      yield* Effect.yieldNow
      assert.deepStrictEqual(ids(state.closed), [1], "the reopening had no client to close")
    }).pipe(Effect.scoped))
})

describe("GuardedClient: the probe", () => {
  it.effect("the idle probe runs as `probe` and times out with the client's own error", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options({ checkOnStart: false }))
      state.healthy = false
      yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      assert.include((yield* guarded.breaker.snapshot).lastError ?? "", "ping: Failed")
      state.hang = true
      yield* TestClock.adjust("11 seconds") // HALF_OPEN, then the probe starts and hangs
      yield* TestClock.adjust("500 millis") // its deadline
      const snapshot = yield* guarded.breaker.snapshot
      assert.strictEqual(snapshot.state, "Open")
      assert.include(snapshot.lastError ?? "", "probe: Timeout")
    }).pipe(Effect.scoped))

  it.effect("a probe given with the breaker's options is the breaker's trial; the client's probe is the start check", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      let trials = 0
      const guarded = yield* GuardedClient.make(options({
        breaker: {
          name: "api_client",
          failMax: 1,
          recoveryTimeout: "10 seconds",
          probeGrace: "1 second",
          probe: Effect.sync(() => trials++)
        }
      }))
      assert.strictEqual(state.pings, 1, "the start check")
      state.healthy = false
      yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      yield* TestClock.adjust("11 seconds")
      assert.strictEqual(yield* guarded.breaker.state, "Closed")
      assert.deepStrictEqual([trials, state.pings], [1, 2], "the trial was the breaker's own probe")
    }).pipe(Effect.scoped))

  it.effect("probe: false: an idle HALF_OPEN breaker waits for a real call", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options({ probe: false }))
      state.healthy = false
      yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
      yield* TestClock.adjust("10 seconds")
      yield* TestClock.adjust("5 seconds")
      const snapshot = yield* guarded.breaker.snapshot
      assert.deepStrictEqual([snapshot.state, snapshot.totals.failures], ["HalfOpen", 1])
      state.healthy = true
      assert.strictEqual(yield* guarded.call("ping", (c) => c.ping()), "PONG 2")
      assert.strictEqual(yield* guarded.breaker.state, "Closed")
    }).pipe(Effect.scoped))
})

describe("GuardedClient: timeouts, spans and logs", () => {
  it.effect("the breaker's callTimeout, shorter than the deadline, fails the call with the client's timeout error", () =>
    Effect.gen(function*() {
      const { options, state } = dependency()
      const guarded = yield* GuardedClient.make(options({
        breaker: { name: "api_client", failMax: 5, callTimeout: "100 millis" }
      }))
      state.hang = true
      const fiber = yield* Effect.forkChild(Effect.flip(guarded.call("get", (c) => c.ping(), "user:1")))
      yield* TestClock.adjust("100 millis")
      const error = yield* Fiber.join(fiber)
      assert.instanceOf(error, ApiError)
      assert.deepStrictEqual([(error as ApiError).operation, (error as ApiError).kind, (error as ApiError).detail], [
        "get",
        "Timeout",
        "user:1"
      ])
    }).pipe(Effect.scoped))

  it.effect("each call is one span `${prefix}.${operation}`, of kind client unless told, with the detail's attributes", () =>
    Effect.gen(function*() {
      const spans: Array<Tracer.NativeSpan> = []
      const tracer = Tracer.make({
        span: (options) => {
          const span = new Tracer.NativeSpan(options)
          spans.push(span)
          return span
        }
      })
      const { options } = dependency()
      const guarded = yield* GuardedClient.make(options({ checkOnStart: false }))
      yield* guarded.call("get", (c) => c.ping(), "user:1").pipe(Effect.withTracer(tracer))
      const producer = yield* GuardedClient.make(
        options({ breaker: { name: "api_2" }, checkOnStart: false, span: { ...options().span, kind: "producer" } })
      )
      yield* producer.call("send", (c) => c.ping()).pipe(Effect.withTracer(tracer))
      const shown = spans.map((s) => [s.name, s.kind, s.attributes.get("api.key")])
      assert.deepStrictEqual(shown, [["Api.get", "client", "user:1"], ["Api.send", "producer", undefined]])
    }).pipe(Effect.scoped))

  it.effect("retiring a client is logged at debug level with the circuit's name", () =>
    Effect.gen(function*() {
      const logs: Array<{ readonly message: unknown; readonly annotations: unknown }> = []
      const capture = Logger.make((options) => {
        logs.push({ message: options.message, annotations: options.fiber.getRef(References.CurrentLogAnnotations) })
      })
      yield* Effect.gen(function*() {
        const { options, state } = dependency()
        const guarded = yield* GuardedClient.make(options({ checkOnStart: false }))
        state.healthy = false
        yield* Effect.flip(guarded.call("ping", (c) => c.ping()))
        yield* Effect.yieldNow
        yield* Effect.yieldNow
      }).pipe(
        Effect.scoped,
        Effect.provide(Logger.layer([capture])),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
      const retired = logs.filter((log) => String(log.message).includes("client closed while the circuit is open"))
      assert.strictEqual(retired.length, 1, JSON.stringify(logs))
      assert.deepStrictEqual(retired[0]!.annotations, { circuit: "api_client" })
    }))
})

describe("GuardedClient: layers", () => {
  class Api extends Context.Service<
    Api,
    { readonly url: string; readonly calls: Effect.Effect<string, ApiError | CircuitBreakerError> }
  >()(
    "test/Api"
  ) {}

  it.effect("layer builds the service from its options; layerConfig reads each Config first", () =>
    Effect.gen(function*() {
      const { options } = dependency()
      const make = (config: { readonly url: string }) =>
        GuardedClient.make(options({ checkOnStart: false })).pipe(
          Effect.map((guarded) => Api.of({ url: config.url, calls: guarded.call("ping", (c) => c.ping()) }))
        )
      const { layer, layerConfig } = GuardedClient.layers(Api, make)

      const direct = yield* Effect.gen(function*() {
        const api = yield* Api
        return [api.url, yield* api.calls]
      }).pipe(Effect.provide(layer({ url: "http://a" })))
      assert.deepStrictEqual(direct, ["http://a", "PONG 1"])

      const url = Effect.map(
        Effect.gen(function*() {
          return yield* Api
        }),
        (api) => api.url
      )
      const configured = yield* url.pipe(
        Effect.provide(layerConfig({ url: Config.String("API_URL") })),
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ API_URL: "http://b" })))
      )
      assert.strictEqual(configured, "http://b")

      const missing = yield* url.pipe(
        Effect.provide(layerConfig({ url: Config.String("API_URL") })),
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({}))),
        Effect.flip
      )
      assert.instanceOf(missing, Config.ConfigError)
    }))
})
