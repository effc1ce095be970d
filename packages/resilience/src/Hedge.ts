/**
 * Hedged calls for idempotent reads (a Redis GET, a MongoDB find): when the
 * first attempt has not answered after a delay (a fixed one, or the recent
 * p95 latency), a second attempt is sent; the first success is kept and the
 * other attempt is interrupted. An attempt that ends before the delay, success
 * or failure, is the answer: hedging cuts a slow tail, it does not retry
 * errors. With a `RetryBudget`, every hedge takes one retry from it, so that
 * hedges and retries together stay a bounded share of the calls.
 *
 * Only for calls that are safe to run twice. Time comes from `Clock`.
 *
 * **Example**
 *
 * ```ts
 * import { Hedge, RetryBudget } from "@neural-hive/resilience"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* RetryBudget.make({ name: "redis_client", ratio: 0.1 })
 *   const hedge = yield* Hedge.make({ name: "redis_client", percentile: 0.95, budget })
 *   return yield* Effect.succeed("cached value").pipe(Hedge.withHedge(hedge))
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { CircuitBreakerOptionsError } from "./CircuitBreakerError.ts"
import type { RetryBudget } from "./RetryBudget.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The circuit's name, as in metrics and errors. */
  readonly name: string
  /** A fixed hedging delay; without it the delay is the `percentile` of recent latencies. */
  readonly delay?: Duration.Input | undefined
  /** The latency percentile after which a hedge is sent, between 0.5 and 0.999. Default 0.95. */
  readonly percentile?: number | undefined
  /** The delay never goes below this (a hedge at 0 ms would double every call). Default 5 ms. */
  readonly minDelay?: Duration.Input | undefined
  /** How many recent latencies the percentile is taken from; no hedge before 20 are known. Default 200. */
  readonly samples?: number | undefined
  /** When given, each hedge takes a retry from it, and none is sent when it is exhausted. */
  readonly budget?: RetryBudget | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly calls: number
  /** Second attempts sent. */
  readonly hedged: number
  /** Of `hedged`, those whose answer was the one kept. */
  readonly hedgesWon: number
  /** Hedges the budget refused. */
  readonly denied: number
  /** The delay now, in ms (`Infinity` until enough latencies are known). */
  readonly delayMillis: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Hedge {
  readonly name: string
  /** Runs `effect`, and a second copy of it if the first has not answered after the delay. */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** The counters now (a synchronous read, for metrics and health). */
  readonly stats: () => Stats
}

const WARM_UP = 20

const duration = (input: Duration.Input | undefined, fallback: number) =>
  input === undefined ? Option.some(Duration.millis(fallback)) : Duration.fromInput(input)

const validated = (o: Options) => {
  const circuit = typeof o?.name === "string" ? o.name : "?"
  const bad = (option: string, value: unknown, expected: string) =>
    Effect.fail(new CircuitBreakerOptionsError({ circuit, option, value, expected }))
  if (typeof o?.name !== "string" || o.name.trim() === "") return bad("name", o?.name, "a non-empty circuit name")
  const fixed = o.delay === undefined ? undefined : Duration.fromInput(o.delay)
  if (fixed !== undefined && (Option.isNone(fixed) || !Duration.isFinite(fixed.value))) {
    return bad("delay", o.delay, "a finite duration, e.g. \"50 millis\"")
  }
  const percentile = o.percentile ?? 0.95
  if (typeof percentile !== "number" || !(percentile >= 0.5 && percentile <= 0.999)) {
    return bad("percentile", o.percentile, "a number from 0.5 to 0.999")
  }
  const minDelay = duration(o.minDelay, 5)
  if (Option.isNone(minDelay) || !Duration.isFinite(minDelay.value)) {
    return bad("minDelay", o.minDelay, "a finite duration, e.g. \"5 millis\"")
  }
  const samples = o.samples ?? 200
  if (!Number.isSafeInteger(samples) || samples < WARM_UP) {
    return bad("samples", o.samples, `an integer of at least ${WARM_UP}`)
  }
  return Effect.succeed({
    fixedMillis: fixed === undefined ? undefined : Duration.toMillis(Option.getOrThrow(fixed)),
    percentile,
    minMillis: Duration.toMillis(minDelay.value),
    samples
  })
}

/**
 * Makes a hedge; a bad option is a `CircuitBreakerOptionsError` naming it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (o: Options): Effect.Effect<Hedge, CircuitBreakerOptionsError> =>
  Effect.map(validated(o), ({ fixedMillis, minMillis, percentile, samples }) => {
    const latencies: Array<number> = []
    let next = 0
    let learnt = Number.POSITIVE_INFINITY
    let calls = 0
    let hedged = 0
    let hedgesWon = 0
    let denied = 0

    const delayMillis = () => Math.max(minMillis, fixedMillis ?? learnt)
    const learn = (millis: number) => {
      if (latencies.length < samples) latencies.push(millis)
      else latencies[next] = millis
      next = (next + 1) % samples
      // The percentile is taken again every tenth sample: a sort of `samples` numbers, not one per call.
      if (latencies.length >= WARM_UP && next % 10 === 0) {
        const sorted = latencies.toSorted((a, b) => a - b)
        learnt = sorted[Math.min(sorted.length - 1, Math.floor(percentile * sorted.length))]!
      }
    }
    /** One attempt, its latency learnt when it succeeds. */
    const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (start) => Effect.tap(effect, () => Effect.map(Clock.currentTimeMillis, (end) => learn(end - start)))
      )
    const allowed = (budget: RetryBudget | undefined) =>
      budget === undefined ? Effect.succeed(true) : Effect.map(budget.tryRetry, (ok) => {
        if (!ok) denied++
        return ok
      })

    const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.gen(function*() {
        calls++
        const delay = delayMillis()
        if (!Number.isFinite(delay)) return yield* timed(effect)
        const first = yield* Effect.forkChild(timed(effect))
        const early = yield* Effect.timeoutOption(Fiber.await(first), Duration.millis(delay))
        if (Option.isSome(early)) return yield* early.value
        if (!(yield* allowed(o.budget))) return yield* Fiber.join(first)
        hedged++
        const [value, hedgeWon] = yield* Effect.race(
          Effect.map(Fiber.join(first), (a) => [a, false] as const),
          Effect.map(timed(effect), (a) => [a, true] as const)
        ).pipe(Effect.ensuring(Fiber.interrupt(first)))
        if (hedgeWon) hedgesWon++
        return value
      })

    const stats = (): Stats => ({ calls, hedged, hedgesWon, denied, delayMillis: delayMillis() })
    return { name: o.name, run, stats }
  })

/**
 * Runs an effect through a hedge (`hedge.run` as a pipeable combinator).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withHedge = (hedge: Hedge) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  hedge.run(effect)
