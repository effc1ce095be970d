/**
 * A focused loop of our breaker, for `node --cpu-prof`, and a summary of the
 * profile it writes (self time per function).
 *
 * ```sh
 * npm exec -- node --conditions=@neural-hive/source --cpu-prof --cpu-prof-interval 100 --cpu-prof-dir=/tmp/prof tools/bench/profile.ts per-call  # or: bare, suspend, closed, closed-mixed, observed, rejection, promise
 * npm exec -- node --conditions=@neural-hive/source tools/bench/profile.ts top /tmp/prof/CPU.*.cpuprofile  # top self-time frames
 * ```
 *
 * Env: `PROFILE_CALLS` (default 10,000,000), `PROFILE_TOP` (default 25).
 */
import { Metrics, TransitionLog } from "@neural-hive/observability"
import { CircuitBreaker, Facade, Registry, withBreaker } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { selfTimes } from "./cpuProfile.ts"

const top = (file: string, limit: number): void => {
  const { byFile, byFunction, total } = selfTimes(file)
  const print = (title: string, entries: ReadonlyMap<string, number>, count: number) => {
    console.log(`${title}\nself ms   self %  where`)
    for (const [key, micros] of [...entries].toSorted((a, b) => b[1] - a[1]).slice(0, count)) {
      console.log(
        `${(micros / 1000).toFixed(1).padStart(7)}  ${(100 * micros / total).toFixed(1).padStart(6)}%  ${key}`
      )
    }
  }
  console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`)
  print("top functions by self time", byFunction, limit)
  print("self time by file", byFile, 10)
}

/**
 * What the benchmark process runs before the closed path: breakers guarding
 * Promise-based effects, one of them with a listener. The closed path of a
 * breaker is several times slower afterwards (shared code, polymorphic sites).
 */
const pollute = async (make: (options: CircuitBreaker.Options) => CircuitBreaker.CircuitBreaker) => {
  const listened = make({ name: "listened" })
  Effect.runSync(breakerListen(listened))
  const viaPromise = Effect.promise(() => Promise.resolve(1)).pipe(withBreaker(make({ name: "promise_effect" })))
  const viaListened = Effect.succeed(1).pipe(withBreaker(listened))
  const wrapped = Facade.wrapPromise(make({ name: "facade" }), () => Promise.resolve(1))
  await Effect.runPromise(Effect.gen(function*() {
    for (let i = 0; i < 200_000; i++) {
      yield* viaPromise
      yield* viaListened
    }
  }))
  for (let i = 0; i < 200_000; i++) await wrapped()
}

const breakerListen = (breaker: CircuitBreaker.CircuitBreaker) =>
  breaker.listen({ onCall: () => {} }).pipe(Scope.provide(Scope.makeUnsafe()))

const loop = async (path: string, calls: number): Promise<void> => {
  const scope = Scope.makeUnsafe()
  const make = (options: CircuitBreaker.Options) =>
    Effect.runSync(CircuitBreaker.make(options).pipe(Scope.provide(scope)))
  const start = process.hrtime.bigint()
  switch (path) {
    case "bare": {
      const bare = Effect.succeed(1)
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* bare
      }))
      break
    }
    case "closed":
    case "closed-mixed": {
      if (path === "closed-mixed") await pollute(make)
      const guarded = Effect.succeed(1).pipe(withBreaker(make({ name: "closed" })))
      const started = process.hrtime.bigint()
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* guarded
      }))
      console.log(`closed loop alone: ${(Number(process.hrtime.bigint() - started) / calls).toFixed(0)} ns/call`)
      break
    }
    case "per-call": {
      // The guard built inside the loop, as a handler builds it: the bench's headline shape.
      const breaker = make({ name: "per_call" })
      const succeed = Effect.succeed(1)
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* succeed.pipe(withBreaker(breaker))
      }))
      break
    }
    case "suspend": {
      // The cheapest wrapper there is, for scale: what leaving the `Exit` fast path costs by itself.
      const succeed = Effect.succeed(1)
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* Effect.suspend(() => succeed)
      }))
      break
    }
    case "observed": {
      const breaker = Effect.runSync(
        Effect.gen(function*() {
          const context = yield* Layer.build(
            Layer.mergeAll(Metrics.layer({ service: "profile" }), TransitionLog.layerJson({ service: "profile" })).pipe(
              Layer.provideMerge(Registry.layer)
            )
          )
          return yield* CircuitBreaker.make({ name: "observed" }).pipe(Effect.provideContext(context))
        }).pipe(Scope.provide(scope))
      )
      const guarded = Effect.succeed(1).pipe(withBreaker(breaker))
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* guarded
      }))
      break
    }
    case "rejection": {
      const breaker = make({ name: "open", failMax: 1, recoveryTimeout: "1 hour", maxOpenDuration: "1 hour" })
      Effect.runSync(Effect.exit(Effect.fail("down").pipe(withBreaker(breaker))))
      const guarded = Effect.exit(Effect.succeed(1).pipe(withBreaker(breaker)))
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* guarded
      }))
      break
    }
    case "promise": {
      const wrapped = Facade.wrapPromise(make({ name: "promise" }), () => Promise.resolve(1))
      for (let i = 0; i < calls; i++) await wrapped()
      break
    }
    default:
      throw new Error(
        `unknown path ${path}: bare, suspend, closed, per-call, closed-mixed, observed, rejection or promise`
      )
  }
  const ns = Number(process.hrtime.bigint() - start) / calls
  // Interrupts the open breaker's timer, which would keep the process alive for an hour.
  await Effect.runPromise(Scope.close(scope, Exit.void))
  console.log(`${path}: ${calls.toLocaleString("en-US")} calls, ${ns.toFixed(0)} ns/call (profiler attached)`)
}

const [command = "closed", ...rest] = process.argv.slice(2)
if (command === "top") {
  for (const file of rest) top(file, Number(process.env["PROFILE_TOP"] ?? 25))
} else {
  await loop(command, Number(process.env["PROFILE_CALLS"] ?? 10_000_000))
}
