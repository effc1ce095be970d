/**
 * A breaker opening and recovering, in about six seconds of real time.
 *
 * A fake dependency fails for its first three seconds. The breaker opens after
 * three consecutive failures, rejects calls while open, half-opens after one
 * second, and closes once the dependency answers again. Every transition is
 * printed as one JSON line, the way the seed's service logs them.
 *
 * Run: npm start
 */
import { CircuitBreaker, CircuitBreakerError, withBreaker } from "@neural-hive/resilience"
import { Clock, Data, Effect, Logger, Stream } from "effect"

class DependencyDown extends Data.TaggedError("DependencyDown")<{ readonly message: string }> {}

const logName = { Open: "circuit_breaker_open", HalfOpen: "circuit_breaker_half_open", Closed: "circuit_breaker_reset" }

const program = Effect.gen(function*() {
  const startedAt = yield* Clock.currentTimeMillis
  const breaker = yield* CircuitBreaker.make({
    name: "example_dependency",
    failMax: 3,
    recoveryTimeout: "1 second",
    maxOpenDuration: "2 seconds"
  })

  // One log line per transition, printed the moment it happens (HALF_OPEN included, with no call needed).
  yield* breaker.transitions.pipe(
    Stream.runForEach((t) =>
      Effect.log(logName[t.to]).pipe(
        Effect.annotateLogs({
          circuit: breaker.name,
          from: t.from,
          reason: t.reason,
          failures: t.failures,
          retry_after_seconds: t.retryAfterMillis / 1000
        })
      )
    ),
    Effect.forkScoped
  )

  // The dependency is down for its first three seconds.
  const callDependency = Effect.gen(function*() {
    const elapsed = (yield* Clock.currentTimeMillis) - startedAt
    if (elapsed < 3000) return yield* new DependencyDown({ message: "connection refused" })
    return "pong"
  })

  for (let i = 1; i <= 24; i++) {
    const result = yield* callDependency.pipe(
      withBreaker(breaker),
      Effect.map((value) => `ok: ${value}`),
      Effect.catchTag(
        "CircuitBreakerError",
        (e: CircuitBreakerError) =>
          Effect.succeed(`rejected fast (${e.reason}, retry after ${e.retryAfter.toString()})`)
      ),
      Effect.catchTag("DependencyDown", (e) => Effect.succeed(`failed: ${e.message}`))
    )
    yield* Effect.log(`call ${i}: ${result}`).pipe(Effect.annotateLogs({ state: yield* breaker.state }))
    yield* Effect.sleep("250 millis")
  }
  const snapshot = yield* breaker.snapshot
  yield* Effect.log("summary").pipe(Effect.annotateLogs({ ...snapshot.totals, state: snapshot.state }))
}).pipe(Effect.scoped, Effect.provide(Logger.layer([Logger.consoleJson])))

Effect.runFork(program)
