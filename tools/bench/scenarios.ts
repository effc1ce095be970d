/**
 * The scenarios and their competitors. Every breaker is made once, up front,
 * and reused by every round; only the memory scenario makes breakers while
 * it measures.
 */
import { Metrics, TransitionLog } from "@neural-hive/observability"
import { CircuitBreaker as Ours, Facade, Registry, TripPolicy, withBreaker } from "@neural-hive/resilience"
import { circuitBreaker as cockatielBreaker, ConsecutiveBreaker, handleAll } from "cockatiel"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as EffectBreaker from "effect/persistence/CircuitBreaker"
import * as Scope from "effect/Scope"
import Opossum from "opossum"
import { type Case, now, type Sample, type Scenario, since, stopwatch } from "./harness.ts"

// -----------------------------------------------------------------------------
// labels
// -----------------------------------------------------------------------------

export const ID = {
  bareEffect: "bare Effect",
  bareEffectPromise: "bare Effect.promise",
  barePromise: "bare Promise",
  bareEffectFail: "bare Effect.fail",
  barePromiseReject: "bare Promise.reject",
  ours: "ours: withBreaker, built per call",
  oursBreaker: "ours",
  oursOnce: "ours: withBreaker, built once",
  oursExecute: "ours: Facade.execute",
  oursPromise: "ours: Facade.wrapPromise",
  oursObserved: "ours + metrics & logging",
  oursObservedNoHistogram: "ours + metrics (histogram: false) & logging",
  effect: "Effect CircuitBreaker, built per call",
  effectOnce: "Effect CircuitBreaker, built once",
  effectPerMake: "Effect CircuitBreaker (make per circuit)",
  effectPerKey: "Effect CircuitBreaker (key per circuit)",
  opossumNoTimeout: "opossum (timeout: false)",
  opossumDefaults: "opossum (defaults)",
  cockatiel: "cockatiel (consecutive)"
} as const

export const SCENARIO = {
  closedEffect: "closed-effect",
  closedPromise: "closed-promise",
  inFlight: "in-flight",
  rejection: "rejection",
  halfOpen: "half-open",
  memory: "memory",
  observability: "observability",
  policies: "policies",
  concurrency: "concurrency"
} as const

/** In-flight counts of the concurrency scenario. */
export const CONCURRENCY: ReadonlyArray<number> = [1, 100, 1_000, 10_000]

export const IN_FLIGHT = 1_000
export const HALF_OPEN_CALLERS = 10_000
export const BREAKERS = 10_000

/** What scenario (6) attached to our breaker; the report prints it. */
export const OBSERVABILITY_VARIANT = "the real layers of `@neural-hive/observability`: `Metrics.layer` (prom-client; " +
  "counters and the state gauge are read from the breaker's totals at scrape time, the call-duration histogram, " +
  "on by default, is observed on every call) and `TransitionLog.layerJson` (one JSON line per transition), over " +
  "`Registry.layer`, so the breaker is wired the way an application wires it. No scrape runs during " +
  "the measurement."

// -----------------------------------------------------------------------------
// helpers
// -----------------------------------------------------------------------------

class DownstreamError extends Error {}

const value = 1
const failure = new DownstreamError("down")
const call = (): Promise<number> => Promise.resolve(value)
const failingCall = (): Promise<number> => Promise.reject(failure)
const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))
const noop = () => {}

/** Breakers live for the whole run. */
const scope = Scope.makeUnsafe()

const ours = (options: Ours.Options): Ours.CircuitBreaker =>
  Effect.runSync(Ours.make(options).pipe(Scope.provide(scope)))

const effectBreaker = (options: Parameters<typeof EffectBreaker.make>[0]): EffectBreaker.CircuitBreaker =>
  Effect.runSync(
    EffectBreaker.make(options).pipe(Scope.provide(scope), Effect.provide(EffectBreaker.layerStoreMemory()))
  )

const opossum = <A>(fn: () => Promise<A>, defaults: boolean, resetTimeout?: number): Opossum<[], A> =>
  new Opossum(fn, {
    ...(defaults ? {} : { timeout: false as const }),
    ...(resetTimeout === undefined ? {} : { resetTimeout })
  })

const cockatiel = (halfOpenAfter: number) =>
  cockatielBreaker(handleAll, { halfOpenAfter, breaker: new ConsecutiveBreaker(1) })

/** `n` sequential runs of `body` inside one fiber: the loop measures the effect, not `runPromise`. */
const effectLoop = (body: Effect.Effect<unknown, unknown>) => (n: number): Promise<Sample> =>
  Effect.runPromise(Effect.gen(function*() {
    const watch = stopwatch()
    watch.start()
    for (let i = 0; i < n; i++) yield* body
    watch.stop()
    return watch.sample(n)
  }))

/**
 * `n` sequential runs of an effect built inside the loop, as application code
 * builds it (`yield* publish(ticket).pipe(withBreaker(kafka))` in a handler).
 */
const effectLoopBuilt = (build: () => Effect.Effect<unknown, unknown>) => (n: number): Promise<Sample> =>
  Effect.runPromise(Effect.gen(function*() {
    const watch = stopwatch()
    watch.start()
    for (let i = 0; i < n; i++) yield* build()
    watch.stop()
    return watch.sample(n)
  }))

/** `n` sequential runs of an effect that must fail; a success is a broken setup. */
const effectRejectLoop = (body: Effect.Effect<unknown, unknown>) => (n: number): Promise<Sample> =>
  Effect.runPromise(Effect.gen(function*() {
    let rejected = 0
    const watch = stopwatch()
    watch.start()
    for (let i = 0; i < n; i++) {
      const exit = yield* Effect.exit(body)
      if (exit._tag === "Failure") rejected++
    }
    watch.stop()
    if (rejected !== n) throw new Error(`expected ${n} rejections, got ${rejected}`)
    return watch.sample(n)
  }))

/** `effectRejectLoop` with the effect built inside the loop. */
const effectRejectLoopBuilt = (build: () => Effect.Effect<unknown, unknown>) => (n: number): Promise<Sample> =>
  Effect.runPromise(Effect.gen(function*() {
    let rejected = 0
    const watch = stopwatch()
    watch.start()
    for (let i = 0; i < n; i++) {
      const exit = yield* Effect.exit(build())
      if (exit._tag === "Failure") rejected++
    }
    watch.stop()
    if (rejected !== n) throw new Error(`expected ${n} rejections, got ${rejected}`)
    return watch.sample(n)
  }))

const promiseLoop = (fn: () => PromiseLike<unknown>) => async (n: number): Promise<Sample> => {
  const watch = stopwatch()
  watch.start()
  for (let i = 0; i < n; i++) await fn()
  watch.stop()
  return watch.sample(n)
}

const promiseRejectLoop = (fn: () => PromiseLike<unknown>) => async (n: number): Promise<Sample> => {
  let rejected = 0
  const watch = stopwatch()
  watch.start()
  for (let i = 0; i < n; i++) {
    try {
      await fn()
    } catch {
      rejected++
    }
  }
  watch.stop()
  if (rejected !== n) throw new Error(`expected ${n} rejections, got ${rejected}`)
  return watch.sample(n)
}

const batch: ReadonlyArray<number> = Array.from({ length: IN_FLIGHT }, (_, i) => i)

/** `n` batches of `size` concurrent fibers, each building its guarded call; reports ns per call. */
const effectBatches = (build: () => Effect.Effect<unknown, unknown>, size = IN_FLIGHT) => {
  const items: ReadonlyArray<number> = size === IN_FLIGHT ? batch : Array.from({ length: size }, (_, i) => i)
  return (n: number): Promise<Sample> =>
    Effect.runPromise(Effect.gen(function*() {
      const watch = stopwatch()
      watch.start()
      for (let i = 0; i < n; i++) {
        yield* Effect.forEach(items, build, { concurrency: "unbounded", discard: true })
      }
      watch.stop()
      return watch.sample(n * size)
    }))
}

/** `n` batches of `IN_FLIGHT` Promises started at once; reports ns per call. */
const promiseBatches = (fn: () => PromiseLike<unknown>) => async (n: number): Promise<Sample> => {
  const watch = stopwatch()
  watch.start()
  for (let i = 0; i < n; i++) await Promise.all(batch.map(fn))
  watch.stop()
  return watch.sample(n * IN_FLIGHT)
}

/**
 * A gate the probe waits on. The last of the callers opens it when it arrives,
 * so every caller reaches the breaker while the probe is still in flight,
 * whatever order the scheduler runs them in.
 */
const gate = () => {
  let arrived = 0
  let admitted = 0
  let open = noop
  const opened = new Promise<number>((resolve) => {
    open = () => resolve(value)
  })
  return {
    arrive: () => {
      if (++arrived === HALF_OPEN_CALLERS) open()
    },
    /** The guarded call: counts the callers the breaker let through. */
    call: (): Promise<number> => {
      admitted++
      return opened
    },
    admitted: () => admitted
  }
}

interface HalfOpenTally {
  admitted: number
  rejected: number
}

const tallyCounts = (tally: HalfOpenTally, batches: number) => ({
  "admitted per batch": tally.admitted / batches,
  "rejected per batch": tally.rejected / batches
})

/**
 * `n` batches: trip the breaker, wait out its 1 ms open period (not timed),
 * then time `HALF_OPEN_CALLERS` concurrent fibers arriving at it.
 */
const effectHalfOpen = (
  trip: Effect.Effect<unknown>,
  guard: (call: () => Promise<number>) => Effect.Effect<number, unknown>
) =>
(n: number): Promise<Sample> =>
  Effect.runPromise(Effect.gen(function*() {
    const callers: ReadonlyArray<number> = Array.from({ length: HALF_OPEN_CALLERS }, (_, i) => i)
    const tally: HalfOpenTally = { admitted: 0, rejected: 0 }
    const watch = stopwatch()
    for (let i = 0; i < n; i++) {
      yield* trip
      yield* Effect.sleep("5 millis")
      const g = gate()
      const guarded = Effect.exit(guard(g.call))
      const caller = Effect.suspend(() => {
        g.arrive()
        return guarded
      })
      watch.start()
      const exits = yield* Effect.forEach(callers, () => caller, { concurrency: "unbounded" })
      watch.stop()
      tally.admitted += g.admitted()
      for (const exit of exits) if (Exit.isFailure(exit)) tally.rejected++
    }
    return watch.sample(n * HALF_OPEN_CALLERS, tallyCounts(tally, n))
  }))

/** The Promise flavour of `effectHalfOpen`, with `Promise.allSettled`. */
const promiseHalfOpen = (
  trip: () => Promise<void>,
  guard: (call: () => Promise<number>) => Promise<unknown>
) =>
async (n: number): Promise<Sample> => {
  const tally: HalfOpenTally = { admitted: 0, rejected: 0 }
  const watch = stopwatch()
  for (let i = 0; i < n; i++) {
    await trip()
    await sleep(5)
    const g = gate()
    const pending: Array<Promise<unknown>> = []
    watch.start()
    for (let c = 0; c < HALF_OPEN_CALLERS; c++) {
      g.arrive()
      pending.push(guard(g.call))
    }
    const settled = await Promise.allSettled(pending)
    watch.stop()
    tally.admitted += g.admitted()
    for (const result of settled) if (result.status === "rejected") tally.rejected++
  }
  return watch.sample(n * HALF_OPEN_CALLERS, tallyCounts(tally, n))
}

/** `heapUsed` once pending callbacks have run and two full collections are done. */
const settledHeap = async (): Promise<number> => {
  const gc = globalThis.gc!
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    gc()
  }
  return process.memoryUsage().heapUsed
}

/**
 * Heap bytes per breaker: `create` makes `n` breakers (and calls each once so
 * any lazily made state exists); they stay referenced until the second reading.
 */
const memoryCase = (
  id: string,
  create: (n: number) => Promise<{ readonly kept: ReadonlyArray<unknown>; readonly dispose: () => Promise<void> }>
): Case => ({
  id,
  run: async (n) => {
    const before = await settledHeap()
    const start = now()
    const made = await create(n)
    const totalNs = since(start)
    const after = await settledHeap()
    const kept = made.kept.length
    await made.dispose()
    if (kept !== n) throw new Error(`${id}: made ${kept} breakers, expected ${n}`)
    return { perUnit: (after - before) / n, totalNs }
  }
})

// -----------------------------------------------------------------------------
// observability, scenario (6)
// -----------------------------------------------------------------------------

/**
 * A breaker wired the way an application wires it: made with a
 * `Registry.Registry` in context, next to `Metrics.layer` (prom-client
 * metrics, with the per-call duration histogram on, its default) and
 * `TransitionLog.layerJson` (one JSON log line per transition).
 */
const observed = async (name: string, histogram: boolean): Promise<Ours.CircuitBreaker> => {
  const [breaker, registry] = Effect.runSync(
    Effect.gen(function*() {
      const context = yield* Layer.build(
        Layer.mergeAll(
          Metrics.layer({ service: "bench", histogram }),
          TransitionLog.layerJson({ service: "bench" })
        ).pipe(Layer.provideMerge(Registry.layer))
      )
      const breaker = yield* Ours.make({ name }).pipe(Effect.provideContext(context))
      return [breaker, Context.get(context, Metrics.PrometheusRegistry)] as const
    }).pipe(Scope.provide(scope))
  )
  // Check the wiring: one call must show in the metrics.
  Effect.runSync(Effect.succeed(value).pipe(withBreaker(breaker)))
  const [metric, series] = histogram
    ? [Metrics.names.duration, `${Metrics.names.duration}_count`]
    : [Metrics.names.calls, Metrics.names.calls]
  const text = await registry.getSingleMetricAsString(metric)
  if (!text.includes(`${series}{service="bench",circuit="${name}",result="success"} 1`)) {
    throw new Error(`the observability layers did not record the call of ${name}:\n${text}`)
  }
  return breaker
}

// -----------------------------------------------------------------------------
// scenarios
// -----------------------------------------------------------------------------

export const makeScenarios = async (): Promise<Array<Scenario>> => {
  const succeed = Effect.succeed(value)
  const effectPromise = Effect.promise(call)
  const effectKey = { key: "bench" }

  // (1) closed circuit, success path
  const closedOurs = ours({ name: "closed" })
  const closedOursOnce = ours({ name: "closed_once" })
  const closedEffect = effectBreaker({ tripPolicy: EffectBreaker.consecutive(5), openDuration: "30 seconds" })
  const closedEffectOnce = effectBreaker({ tripPolicy: EffectBreaker.consecutive(5), openDuration: "30 seconds" })
  const closedOurs2 = ours({ name: "closed_promise" })
  const closedOursFacade = ours({ name: "closed_facade" })
  const closedEffect2 = effectBreaker({ tripPolicy: EffectBreaker.consecutive(5), openDuration: "30 seconds" })
  const wrapped = Facade.wrapPromise(closedOursFacade, call)
  const opossumFast = opossum(call, false)
  const opossumDefault = opossum(call, true)
  const cockatielClosed = cockatiel(30_000)

  // (2) 1,000 calls in flight
  const flightOurs = ours({ name: "in_flight" })
  const flightOursFacade = ours({ name: "in_flight_facade" })
  const flightWrapped = Facade.wrapPromise(flightOursFacade, call)
  const flightEffect = effectBreaker({ tripPolicy: EffectBreaker.consecutive(5), openDuration: "30 seconds" })
  const flightOpossumFast = opossum(call, false)
  const flightOpossumDefault = opossum(call, true)
  const flightCockatiel = cockatiel(30_000)

  // (3) open circuit: every breaker is tripped by one failure and stays open for an hour
  const hour = 3_600_000
  const openOurs = ours({ name: "open", failMax: 1, recoveryTimeout: hour, maxOpenDuration: hour })
  Effect.runSync(Effect.exit(Effect.fail(failure).pipe(withBreaker(openOurs))))
  const openWrapped = Facade.wrapPromise(openOurs, call)
  const openEffect = effectBreaker({ tripPolicy: EffectBreaker.consecutive(1), openDuration: "1 hour" })
  Effect.runSync(Effect.exit(Effect.fail(failure).pipe(openEffect.execute(effectKey))))
  const openOpossumFast = opossum(call, false, hour)
  openOpossumFast.open()
  const openOpossumDefault = opossum(call, true, hour)
  openOpossumDefault.open()
  const openCockatiel = cockatiel(hour)
  await openCockatiel.execute(failingCall).catch(noop)
  const openFailure = Effect.fail(failure)

  // (4) half-open: a 1 ms open period, re-tripped before every batch
  const halfOurs = ours({ name: "half_open", failMax: 1, recoveryTimeout: 1, maxOpenDuration: 1 })
  const halfOursFacade = ours({ name: "half_open_facade", failMax: 1, recoveryTimeout: 1, maxOpenDuration: 1 })
  let facadeTarget = failingCall
  const halfWrapped = Facade.wrapPromise(halfOursFacade, () => facadeTarget())
  const halfEffect = effectBreaker({ tripPolicy: EffectBreaker.consecutive(1), openDuration: "1 millis" })
  let opossumTarget = call
  const halfOpossumFast = new Opossum(() => opossumTarget(), { timeout: false, resetTimeout: 1 })
  const halfOpossumDefault = new Opossum(() => opossumTarget(), { resetTimeout: 1 })
  const halfCockatiel = cockatiel(1)

  // (7) policies: windows of calls and of time, on breakers that never trip (every call succeeds)
  const policyDefault = ours({ name: "policy_default" })
  const policyBreakers: ReadonlyArray<readonly [string, Ours.CircuitBreaker]> = [
    ...[10, 100, 1_000, 10_000].map((size) =>
      [
        `failureRate, last ${size.toLocaleString("en-US")} calls`,
        ours({ name: `rate_${size}`, policy: TripPolicy.failureRate({ threshold: 0.5, size }) })
      ] as const
    ),
    ...([["1 s", "1 second"], ["1 min", "1 minute"], ["1 h", "1 hour"]] as const).map(([label, window]) =>
      [
        `failureRateOverTime, ${label} window`,
        ours({
          name: `rate_over_${label.replace(" ", "")}`,
          policy: TripPolicy.failureRateOverTime({ threshold: 0.5, window, minimumCalls: 10 })
        })
      ] as const
    )
  ]

  // (8) concurrency: one breaker, from 1 to 10,000 calls in flight
  const concurrencyOurs = ours({ name: "concurrency" })

  // (6) observability
  const plainOurs = ours({ name: "plain" })
  const observedOurs = await observed("observed", true)
  const observedNoHistogram = await observed("observed_no_histogram", false)

  const scenarios: Array<Scenario> = [
    {
      id: SCENARIO.closedEffect,
      title: "(1a) Closed circuit, success path, sequential, on `Effect.succeed`",
      unit: "ns/call",
      iteration: "call",
      reference: ID.ours,
      calibration: { start: 2_000, min: 2_000, max: 2_000_000 },
      notes: [
        "Built per call: `yield* succeed.pipe(withBreaker(breaker))` inside the loop, the way a handler builds its " +
        "guarded call (Effect's breaker: `succeed.pipe(breaker.execute({ key }))`). Built once: the guarded effect " +
        "is made before the loop and the loop re-yields it."
      ],
      cases: [
        { id: ID.bareEffect, bare: true, run: effectLoop(succeed) },
        {
          id: ID.ours,
          baseline: ID.bareEffect,
          run: effectLoopBuilt(() => succeed.pipe(withBreaker(closedOurs)))
        },
        { id: ID.oursOnce, baseline: ID.bareEffect, run: effectLoop(succeed.pipe(withBreaker(closedOursOnce))) },
        {
          id: ID.effect,
          baseline: ID.bareEffect,
          run: effectLoopBuilt(() => succeed.pipe(closedEffect.execute(effectKey)))
        },
        {
          id: ID.effectOnce,
          baseline: ID.bareEffect,
          run: effectLoop(succeed.pipe(closedEffectOnce.execute(effectKey)))
        }
      ]
    },
    {
      id: SCENARIO.closedPromise,
      title: "(1b) Closed circuit, success path, sequential, on a Promise-based call",
      unit: "ns/call",
      iteration: "call",
      reference: ID.ours,
      calibration: { start: 2_000, min: 2_000, max: 2_000_000 },
      notes: [
        "The call is `() => Promise.resolve(1)`. Effect-based rows wrap it in `Effect.promise` and are compared " +
        "with bare `Effect.promise`; Promise-based rows `await` it and are compared with the bare `await`.",
        "Call shapes: `Facade.execute(breaker, call)`, opossum's `fire()` and cockatiel's `execute(call)` are one " +
        "call per call; `Facade.wrapPromise` wraps the function once, like opossum's constructor. Effect rows as in (1a)."
      ],
      cases: [
        { id: ID.barePromise, bare: true, run: promiseLoop(call) },
        { id: ID.bareEffectPromise, bare: true, run: effectLoop(effectPromise) },
        {
          id: ID.ours,
          baseline: ID.bareEffectPromise,
          run: effectLoopBuilt(() => effectPromise.pipe(withBreaker(closedOurs2)))
        },
        {
          id: ID.oursOnce,
          baseline: ID.bareEffectPromise,
          run: effectLoop(effectPromise.pipe(withBreaker(closedOurs2)))
        },
        {
          id: ID.oursExecute,
          baseline: ID.barePromise,
          run: promiseLoop(() => Facade.execute(closedOursFacade, call))
        },
        { id: ID.oursPromise, baseline: ID.barePromise, run: promiseLoop(wrapped) },
        {
          id: ID.effect,
          baseline: ID.bareEffectPromise,
          run: effectLoopBuilt(() => effectPromise.pipe(closedEffect2.execute(effectKey)))
        },
        { id: ID.opossumNoTimeout, baseline: ID.barePromise, run: promiseLoop(() => opossumFast.fire()) },
        { id: ID.opossumDefaults, baseline: ID.barePromise, run: promiseLoop(() => opossumDefault.fire()) },
        { id: ID.cockatiel, baseline: ID.barePromise, run: promiseLoop(() => cockatielClosed.execute(call)) }
      ]
    },
    {
      id: SCENARIO.inFlight,
      title: `(2) Closed circuit, ${IN_FLIGHT.toLocaleString("en-US")} calls in flight at once`,
      unit: "ns/call",
      iteration: `batch of ${IN_FLIGHT.toLocaleString("en-US")} concurrent calls`,
      reference: ID.ours,
      calibration: { start: 5, min: 5, max: 2_000 },
      notes: [
        "Effect-based rows: `Effect.forEach` over 1,000 items with `concurrency: \"unbounded\"`; Promise-based rows: " +
        "`Promise.all` of 1,000 calls. The call is `Promise.resolve(1)`, so every call is still pending when the " +
        "last one starts. The figure is the batch time divided by 1,000. Effect rows build the guarded call in " +
        "each fiber."
      ],
      cases: [
        { id: ID.barePromise, bare: true, run: promiseBatches(call) },
        { id: ID.bareEffectPromise, bare: true, run: effectBatches(() => effectPromise) },
        {
          id: ID.ours,
          baseline: ID.bareEffectPromise,
          run: effectBatches(() => effectPromise.pipe(withBreaker(flightOurs)))
        },
        { id: ID.oursPromise, baseline: ID.barePromise, run: promiseBatches(flightWrapped) },
        {
          id: ID.effect,
          baseline: ID.bareEffectPromise,
          run: effectBatches(() => effectPromise.pipe(flightEffect.execute(effectKey)))
        },
        { id: ID.opossumNoTimeout, baseline: ID.barePromise, run: promiseBatches(() => flightOpossumFast.fire()) },
        {
          id: ID.opossumDefaults,
          baseline: ID.barePromise,
          run: promiseBatches(() => flightOpossumDefault.fire())
        },
        { id: ID.cockatiel, baseline: ID.barePromise, run: promiseBatches(() => flightCockatiel.execute(call)) }
      ]
    },
    {
      id: SCENARIO.rejection,
      title: "(3) Open circuit, rejection path, sequential",
      unit: "ns/call",
      iteration: "rejected call",
      reference: ID.ours,
      calibration: { start: 2_000, min: 2_000, max: 2_000_000 },
      notes: [
        "Every breaker was tripped by one failure (opossum: `.open()`) with an open period of an hour (opossum: " +
        "`resetTimeout`; its other options as in the row name). Effect-based " +
        "rows catch the rejection with `Effect.exit`, Promise-based rows with `try { await } catch`. Bare rows fail " +
        "with a pre-built error. Each run checks that every call was rejected."
      ],
      cases: [
        { id: ID.bareEffectFail, bare: true, run: effectRejectLoop(openFailure) },
        { id: ID.barePromiseReject, bare: true, run: promiseRejectLoop(failingCall) },
        {
          id: ID.ours,
          baseline: ID.bareEffectFail,
          run: effectRejectLoopBuilt(() => succeed.pipe(withBreaker(openOurs)))
        },
        { id: ID.oursOnce, baseline: ID.bareEffectFail, run: effectRejectLoop(succeed.pipe(withBreaker(openOurs))) },
        {
          id: ID.oursExecute,
          baseline: ID.barePromiseReject,
          run: promiseRejectLoop(() => Facade.execute(openOurs, call))
        },
        { id: ID.oursPromise, baseline: ID.barePromiseReject, run: promiseRejectLoop(openWrapped) },
        {
          id: ID.effect,
          baseline: ID.bareEffectFail,
          run: effectRejectLoopBuilt(() => succeed.pipe(openEffect.execute(effectKey)))
        },
        {
          id: ID.opossumNoTimeout,
          baseline: ID.barePromiseReject,
          run: promiseRejectLoop(() => openOpossumFast.fire())
        },
        {
          id: ID.opossumDefaults,
          baseline: ID.barePromiseReject,
          run: promiseRejectLoop(() => openOpossumDefault.fire())
        },
        { id: ID.cockatiel, baseline: ID.barePromiseReject, run: promiseRejectLoop(() => openCockatiel.execute(call)) }
      ]
    },
    {
      id: SCENARIO.halfOpen,
      title: `(4) Half-open circuit, ${HALF_OPEN_CALLERS.toLocaleString("en-US")} concurrent callers`,
      unit: "ns/call",
      iteration: `batch of ${HALF_OPEN_CALLERS.toLocaleString("en-US")} callers`,
      reference: ID.ours,
      calibration: { start: 1, min: 2, max: 20 },
      notes: [
        "Before each batch (not timed) the breaker is tripped by one failure and its 1 ms open period is waited " +
        "out. Then 10,000 callers arrive at once (`Effect.forEach` unbounded, or 10,000 calls and " +
        "`Promise.allSettled`). The probe's call waits on a gate that the last caller opens, so all callers meet " +
        "the breaker while the probe is in flight; the probe then succeeds and closes it. Figures are per caller (a " +
        "batch's time divided by 10,000); the batch column is the wall time of a whole batch.",
        "cockatiel does not reject half-open callers: they wait for the probe's verdict and then run, so its rows " +
        "time 10,000 calls, not 1 call and 9,999 rejections (see the admitted/rejected counts)."
      ],
      cases: [
        {
          id: ID.ours,
          run: effectHalfOpen(
            Effect.exit(Effect.fail(failure).pipe(withBreaker(halfOurs))),
            (fn) => Effect.promise(fn).pipe(withBreaker(halfOurs))
          )
        },
        {
          id: ID.oursPromise,
          run: promiseHalfOpen(
            async () => {
              facadeTarget = failingCall
              await halfWrapped().catch(noop)
            },
            (fn) => {
              facadeTarget = fn
              return halfWrapped()
            }
          )
        },
        {
          id: ID.effect,
          run: effectHalfOpen(
            Effect.exit(Effect.fail(failure).pipe(halfEffect.execute(effectKey))),
            (fn) => Effect.promise(fn).pipe(halfEffect.execute(effectKey))
          )
        },
        {
          id: ID.opossumNoTimeout,
          run: promiseHalfOpen(async () => halfOpossumFast.open(), (fn) => {
            opossumTarget = fn
            return halfOpossumFast.fire()
          })
        },
        {
          id: ID.opossumDefaults,
          run: promiseHalfOpen(async () => halfOpossumDefault.open(), (fn) => {
            opossumTarget = fn
            return halfOpossumDefault.fire()
          })
        },
        {
          id: ID.cockatiel,
          run: promiseHalfOpen(
            () => halfCockatiel.execute(failingCall).then(noop, noop),
            (fn) => halfCockatiel.execute(fn)
          )
        }
      ]
    },
    {
      id: SCENARIO.memory,
      title: `(5) Heap bytes per breaker, ${BREAKERS.toLocaleString("en-US")} breakers`,
      unit: "B/breaker",
      iteration: "breaker",
      reference: ID.oursBreaker,
      calibration: "fixed",
      fixedN: BREAKERS,
      notes: [
        "`heapUsed` (after pending callbacks ran and two `gc()` calls) before and after making the breakers, " +
        "divided by their number. Each " +
        "breaker is called once (a success) so state made on first use exists; all stay referenced until the " +
        "second reading. Ours and Effect's per-make breakers live in a `Scope`, whose finalizers are counted. " +
        "Effect's breaker is keyed: the per-key row is one breaker with one circuit per key in a shared memory store."
      ],
      cases: [
        memoryCase(ID.oursBreaker, async (n) => {
          const owner = Scope.makeUnsafe()
          const kept = Effect.runSync(
            Effect.gen(function*() {
              const made: Array<Ours.CircuitBreaker> = []
              for (let i = 0; i < n; i++) {
                const breaker = yield* Ours.make({ name: `b${i}` })
                yield* succeed.pipe(withBreaker(breaker))
                made.push(breaker)
              }
              return made
            }).pipe(Scope.provide(owner))
          )
          return { kept, dispose: () => Effect.runPromise(Scope.close(owner, Exit.void)) }
        }),
        memoryCase(ID.effectPerMake, async (n) => {
          const owner = Scope.makeUnsafe()
          const kept = Effect.runSync(
            Effect.gen(function*() {
              const made: Array<EffectBreaker.CircuitBreaker> = []
              for (let i = 0; i < n; i++) {
                const breaker = yield* EffectBreaker.make({
                  tripPolicy: EffectBreaker.consecutive(5),
                  openDuration: "30 seconds"
                })
                yield* succeed.pipe(breaker.execute({ key: `c${i}` }))
                made.push(breaker)
              }
              return made
            }).pipe(Scope.provide(owner), Effect.provide(EffectBreaker.layerStoreMemory()))
          )
          return { kept, dispose: () => Effect.runPromise(Scope.close(owner, Exit.void)) }
        }),
        memoryCase(ID.effectPerKey, async (n) => {
          const owner = Scope.makeUnsafe()
          const kept = Effect.runSync(
            Effect.gen(function*() {
              const breaker = yield* EffectBreaker.make({
                tripPolicy: EffectBreaker.consecutive(5),
                openDuration: "30 seconds"
              })
              const keys: Array<string> = []
              for (let i = 0; i < n; i++) {
                const key = `c${i}`
                yield* succeed.pipe(breaker.execute({ key }))
                keys.push(key)
              }
              return [breaker, keys] as const
            }).pipe(Scope.provide(owner), Effect.provide(EffectBreaker.layerStoreMemory()))
          )
          return { kept: kept[1], dispose: () => Effect.runPromise(Scope.close(owner, Exit.void)) }
        }),
        memoryCase(ID.opossumDefaults, async (n) => {
          const kept: Array<Opossum<[], number>> = []
          for (let i = 0; i < n; i++) {
            const breaker = new Opossum(call, { name: `b${i}` })
            await breaker.fire()
            kept.push(breaker)
          }
          return {
            kept,
            dispose: async () => {
              for (const breaker of kept) breaker.shutdown()
            }
          }
        }),
        memoryCase(ID.cockatiel, async (n) => {
          const kept: Array<ReturnType<typeof cockatiel>> = []
          for (let i = 0; i < n; i++) {
            const breaker = cockatiel(30_000)
            await breaker.execute(call)
            kept.push(breaker)
          }
          return { kept, dispose: async () => {} }
        })
      ]
    },
    {
      id: SCENARIO.observability,
      title: "(6) Closed circuit, ours with the metrics and logging layers attached, on `Effect.succeed`",
      unit: "ns/call",
      iteration: "call",
      reference: ID.ours,
      calibration: { start: 2_000, min: 2_000, max: 2_000_000 },
      notes: [
        `Variant measured: ${OBSERVABILITY_VARIANT}`,
        "The last row turns the duration histogram off (`Metrics.layer({ histogram: false })`), which leaves " +
        "nothing of the metrics on the call path: counters and gauge are read from the breaker at scrape time."
      ],
      cases: [
        { id: ID.bareEffect, bare: true, run: effectLoop(succeed) },
        { id: ID.ours, baseline: ID.bareEffect, run: effectLoopBuilt(() => succeed.pipe(withBreaker(plainOurs))) },
        {
          id: ID.oursObserved,
          baseline: ID.bareEffect,
          run: effectLoopBuilt(() => succeed.pipe(withBreaker(observedOurs)))
        },
        {
          id: ID.oursObservedNoHistogram,
          baseline: ID.bareEffect,
          run: effectLoopBuilt(() => succeed.pipe(withBreaker(observedNoHistogram)))
        }
      ]
    },
    {
      id: SCENARIO.policies,
      title: "(7) Closed circuit, per-call cost by trip policy and window, on `Effect.succeed`",
      unit: "ns/call",
      iteration: "call",
      reference: ID.ours,
      calibration: { start: 2_000, min: 2_000, max: 2_000_000 },
      notes: [
        "Each row is ours built per call, as in (1a), with the policy in its name; every call succeeds, so the " +
        "windows fill and slide. Flat rows mean no per-call work grows with the window. The time-based policy " +
        "reads the clock twice per call (admission and settle), which the count-based ones do not."
      ],
      cases: [
        { id: ID.bareEffect, bare: true, run: effectLoop(succeed) },
        {
          id: ID.ours,
          baseline: ID.bareEffect,
          run: effectLoopBuilt(() => succeed.pipe(withBreaker(policyDefault)))
        },
        ...policyBreakers.map(([id, breaker]): Case => ({
          id,
          baseline: ID.bareEffect,
          run: effectLoopBuilt(() => succeed.pipe(withBreaker(breaker)))
        }))
      ]
    },
    {
      id: SCENARIO.concurrency,
      title: "(8) Closed circuit, per-call cost by calls in flight on one breaker, on `Effect.promise`",
      unit: "ns/call",
      iteration: "batch",
      reference: ID.ours,
      calibration: { start: 1, min: 3, max: 20_000 },
      notes: [
        "A batch is `Effect.forEach` over N items with `concurrency: \"unbounded\"`, each fiber building and " +
        "running `Effect.promise(() => Promise.resolve(1)).pipe(withBreaker(breaker))` on one shared breaker; the " +
        "bare rows run the same batch without the breaker. The figure is the batch time divided by N. Added " +
        "cost is taken against the bare row of the same N: flat means the breaker's per-call work does not grow " +
        "with the calls in flight."
      ],
      cases: CONCURRENCY.flatMap((size): Array<Case> => [
        {
          id: `bare Effect.promise, ${size.toLocaleString("en-US")} in flight`,
          bare: true,
          run: effectBatches(() => effectPromise, size)
        },
        {
          id: size === IN_FLIGHT ? ID.ours : `${ID.ours}, ${size.toLocaleString("en-US")} in flight`,
          baseline: `bare Effect.promise, ${size.toLocaleString("en-US")} in flight`,
          run: effectBatches(() => effectPromise.pipe(withBreaker(concurrencyOurs)), size)
        }
      ])
    }
  ]
  return scenarios
}

/** Stops what keeps the event loop alive: opossum's bucket timers, our breakers' scope. */
export const shutdown = async (): Promise<void> => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
