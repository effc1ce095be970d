/**
 * The policies of `@neural-hive/resilience` (Bulkhead.adaptive, RetryBudget.withRetry, Hedge) composed
 * around real Redis calls, the way a user composes them today, against a private `redis-server` behind
 * the rig's FaultProxy. Shared by `npm run policies` (tools/policies/run.ts, the figures) and
 * test/integration/policies.test.ts (the assertions).
 *
 * - `amplification`: a full outage (the proxy resets every connection); each attempt dials its own
 *   connection, so the proxy's count of accepted connections is the count of attempts that reached the
 *   dependency. Naive retries (`Effect.retry`, 2 retries) against `RetryBudget.withRetry`.
 * - `stall`: the dependency hangs (the proxy forwards nothing); `RedisCache.make`'s `use` with or without
 *   `Bulkhead.adaptive` in front, under an open-loop load. Calls outstanding at the caller, sampled.
 * - `hedged`: GETs through `GuardedClient.make` (breaker and deadline) over a small pool of ioredis
 *   connections (an attempt takes the connection with the fewest commands pending, so a hedge never queues
 *   behind the reply it hedges), with the proxy holding a seeded share of replies; with or without `Hedge`.
 *   Redis's own `INFO commandstats` counts the GETs that reached it.
 */
import { RedisCache } from "@neural-hive/redis"
import { Bulkhead, GuardedClient, Hedge, RetryBudget } from "@neural-hive/resilience"
import { Data, Duration, Effect, Exit, Logger, Schedule, Scope } from "effect"
import { Redis } from "ioredis"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { FaultProxy } from "../rig/proxy.ts"
import { type ServerHandle, startRedis } from "../rig/servers.ts"

/** The policies' log lines by message (`bulkhead_limit_changed`, `retry_budget_exhausted`...), counted, not printed. */
export const logged = new Map<string, number>()

const counting: ReadonlySet<Logger.Logger<unknown, void>> = new Set([
  Logger.make((options) => {
    const message = Array.isArray(options.message) ? String(options.message[0]) : String(options.message)
    logged.set(message, (logged.get(message) ?? 0) + 1)
  })
])

/** Runs an effect with the counting logger in place of the default one. */
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(Effect.provideService(effect, Logger.CurrentLoggers, counting))

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The `p`th percentile (0-100) by nearest rank; NaN for no values. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return NaN
  const sorted = values.toSorted((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** A private Redis and a FaultProxy in front of it. */
export interface Rig {
  readonly server: ServerHandle
  readonly proxy: FaultProxy
  readonly close: () => Promise<void>
}

export const startRig = async (): Promise<Rig> => {
  const server = await startRedis()
  const proxy = await FaultProxy.start({ targetPort: server.port }).catch(async (error: unknown) => {
    await server.stop()
    throw error
  })
  return {
    server,
    proxy,
    close: async () => {
      await proxy.close()
      await server.stop()
    }
  }
}

/**
 * Starts `count(elapsed)` calls in total by each 5 ms tick, open loop (a call does not wait for the one
 * before), until `millis` pass; `start` runs one call. Resolves when the last call has been started.
 */
const offer = async (millis: number, rate: number, start: () => void): Promise<number> => {
  const t0 = performance.now()
  let started = 0
  for (;;) {
    const elapsed = performance.now() - t0
    const due = Math.min(Math.floor((Math.min(elapsed, millis) * rate) / 1000), Math.floor((millis * rate) / 1000))
    while (started < due) {
      started++
      start()
    }
    if (elapsed >= millis) return started
    await sleep(5)
  }
}

/** Waits until `done()` holds or `ms` pass; false on the deadline. */
const until = async (done: () => boolean, ms: number): Promise<boolean> => {
  const end = performance.now() + ms
  while (!done()) {
    if (performance.now() > end) return false
    await sleep(10)
  }
  return true
}

// -----------------------------------------------------------------------------
// (i) retry amplification in a full outage
// -----------------------------------------------------------------------------

class AttemptError extends Data.TaggedError("AttemptError")<{ readonly message: string }> {}

export interface Amplification {
  readonly policy: "naive" | "budget"
  /** Calls offered (first attempts). */
  readonly offered: number
  /** Attempts made, counted at the client. */
  readonly attempts: number
  /** TCP connections the proxy accepted (and reset): attempts that reached the dependency. */
  readonly reached: number
  /** Retries the budget refused (0 for naive). */
  readonly denied: number
  /** The most retries the budget's reserve can add over the run (`minPerSecond` × the window, per window begun). */
  readonly reserve: number
}

/** One GET on a connection of its own: it dials, so the proxy sees every attempt. */
const dialAndGet = (port: number, counted: { attempts: number }) =>
  Effect.tryPromise({
    try: async () => {
      counted.attempts++
      const client = new Redis({
        host: "127.0.0.1",
        port,
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        connectTimeout: 1_000,
        commandTimeout: 500
      })
      client.on("error", () => undefined)
      try {
        await client.connect()
        return await client.get("policies:key")
      } finally {
        client.disconnect()
      }
    },
    catch: (cause) => new AttemptError({ message: cause instanceof Error ? cause.message : String(cause) })
  })

const WINDOW_SECONDS = 10
const BUDGET = { ratio: 0.1, minPerSecond: 1, window: `${WINDOW_SECONDS} seconds` } as const
const retrySchedule = Schedule.jittered(Schedule.exponential("100 millis"))

/** `rate` calls a second for `millis` while the proxy resets every connection; 2 retries per call. */
export const amplification = async (
  rig: Rig,
  policy: "naive" | "budget",
  { millis, rate }: { readonly millis: number; readonly rate: number }
): Promise<Amplification> => {
  const counted = { attempts: 0 }
  const budget = await run(RetryBudget.make({ name: "redis_outage", ...BUDGET }))
  const attempt = dialAndGet(rig.proxy.port, counted)
  const call = policy === "naive"
    ? Effect.retry(attempt, { schedule: retrySchedule, times: 2 })
    : attempt.pipe(RetryBudget.withRetry({ budget, maxRetries: 2, schedule: retrySchedule }))
  await rig.proxy.refuse()
  rig.proxy.cut()
  rig.proxy.resetCounters()
  let pending = 0
  const offered = await offer(millis, rate, () => {
    pending++
    void run(Effect.exit(call)).finally(() => pending--)
  })
  if (!(await until(() => pending === 0, 30_000))) throw new Error(`amplification: ${pending} calls never ended`)
  const reached = rig.proxy.connectionsAccepted
  await rig.proxy.pass()
  return {
    policy,
    offered,
    attempts: counted.attempts,
    reached,
    denied: budget.stats().denied,
    // The reserve is per sliding window: a run that lasts past one window (its retries end up to a second
    // after the last call) can use it once more.
    reserve: BUDGET.minPerSecond * WINDOW_SECONDS * Math.ceil((millis + 1_000) / (WINDOW_SECONDS * 1_000))
  }
}

// -----------------------------------------------------------------------------
// (ii) a hanging dependency
// -----------------------------------------------------------------------------

export interface StallSample {
  /** ms since the stall began. */
  readonly at: number
  /** Calls admitted (past the limit, if any) and not yet ended. */
  readonly inFlight: number
  /** Calls started and not yet ended, at the caller (in flight, and rejections not yet returned). */
  readonly outstanding: number
  /** The adaptive limit then (NaN without one). */
  readonly limit: number
}

export interface Stall {
  readonly limited: boolean
  /** The most calls in flight at once before the stall (what the dependency served). */
  readonly servedBefore: number
  /** The limit when the stall began (NaN without one). */
  readonly limitAtStall: number
  readonly samples: ReadonlyArray<StallSample>
  /** Calls offered during the stall. */
  readonly offeredDuringStall: number
  /** Calls that ended during the stall: each a `BulkheadRejectedError` (or the run fails). */
  readonly rejectedDuringStall: number
  /** Calls rejected before the stall (the limit moving under the warm-up load). */
  readonly rejectedBefore: number
  /** Calls started and not ended when the stall ended (at the caller). */
  readonly heldAtEnd: number
  /** Of them, in flight (admitted). */
  readonly inFlightAtEnd: number
  readonly heapGrowthMB: number
  readonly rssGrowthMB: number
  readonly eventLoopP99Ms: number
  /** After the proxy passed again: calls that succeeded and that failed otherwise than by rejection. */
  readonly succeeded: number
  readonly failed: number
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.()
const mb = (bytes: number) => bytes / (1024 * 1024)

/**
 * `rate` GETs a second through `RedisCache.make`'s `use` (a 30 s command timeout: nothing times out in the
 * window), `warmMillis` with the proxy passing, then `stallMillis` with it stalled, sampled every
 * `everyMillis`; then the proxy passes again and every held call ends.
 */
export const stall = async (
  rig: Rig,
  limited: boolean,
  o: { readonly rate: number; readonly warmMillis: number; readonly stallMillis: number; readonly everyMillis: number }
): Promise<Stall> => {
  await rig.proxy.pass()
  const scope = Scope.makeUnsafe()
  try {
    const cache = await run(
      RedisCache.make({
        url: `redis://127.0.0.1:${rig.proxy.port}`,
        commandTimeout: "30 seconds",
        breaker: { name: limited ? "redis_stall_limited" : "redis_stall" }
      }).pipe(Scope.provide(scope))
    )
    const limit = await run(
      Bulkhead.adaptive({ name: "redis_stall_limited", initialLimit: 20, minLimit: 2, maxLimit: 200 })
    )
    // Calls in flight: admitted (past the limit, when there is one) and not yet ended.
    let inFlight = 0
    const get = Effect.suspend(() => {
      inFlight++
      return cache.use("GET", (client) => client.get("policies:key"))
    }).pipe(Effect.ensuring(Effect.sync(() => inFlight--)))
    const call = limited ? get.pipe(Bulkhead.withBulkhead(limit)) : get
    const limitNow = () => (limited ? limit.stats().limit : NaN)
    let outstanding = 0
    let stalled = false
    let rejectedDuringStall = 0
    let rejectedBefore = 0
    let succeeded = 0
    let failed = 0
    let maxBefore = 0
    const start = () => {
      outstanding++
      void run(Effect.exit(call)).then((exit) => {
        outstanding--
        const error = Exit.findErrorOption(exit)
        if (Exit.isSuccess(exit)) succeeded++
        else if (error._tag === "Some" && error.value._tag === "BulkheadRejectedError") {
          if (stalled) rejectedDuringStall++
          else rejectedBefore++
        } else failed++
      })
      // The fiber ran up to its first wait: admitted (in flight) or rejected by now.
      if (!stalled) maxBefore = Math.max(maxBefore, inFlight)
    }
    await offer(o.warmMillis, o.rate, start)
    await until(() => outstanding === 0, 5_000)
    gc()
    const memBefore = process.memoryUsage()
    const delay = monitorEventLoopDelay({ resolution: 10 })
    await rig.proxy.stall()
    stalled = true
    const limitAtStall = limitNow()
    const t0 = performance.now()
    const samples: Array<StallSample> = [{ at: 0, inFlight, outstanding, limit: limitAtStall }]
    const sampler = setInterval(() => {
      samples.push({ at: Math.round(performance.now() - t0), inFlight, outstanding, limit: limitNow() })
    }, o.everyMillis)
    delay.enable()
    const offeredDuringStall = await offer(o.stallMillis, o.rate, start)
    clearInterval(sampler)
    delay.disable()
    await sleep(1) // the rejections of the last calls started settle
    samples.push({ at: Math.round(performance.now() - t0), inFlight, outstanding, limit: limitNow() })
    const heldAtEnd = outstanding
    const inFlightAtEnd = inFlight
    gc()
    const memAfter = process.memoryUsage()
    stalled = false
    await rig.proxy.pass()
    if (!(await until(() => outstanding === 0, 30_000))) throw new Error(`stall: ${outstanding} calls never ended`)
    return {
      limited,
      servedBefore: maxBefore,
      limitAtStall,
      samples,
      offeredDuringStall,
      rejectedDuringStall,
      rejectedBefore,
      heldAtEnd,
      inFlightAtEnd,
      heapGrowthMB: mb(memAfter.heapUsed - memBefore.heapUsed),
      rssGrowthMB: mb(memAfter.rss - memBefore.rss),
      eventLoopP99Ms: delay.percentile(99) / 1e6,
      succeeded,
      failed
    }
  } finally {
    await run(Scope.close(scope, Exit.void))
  }
}

// -----------------------------------------------------------------------------
// (iii) hedged GETs against a slow tail
// -----------------------------------------------------------------------------

/** A few ioredis connections; each GET goes to the one with the fewest commands pending. */
class Pool {
  readonly clients: ReadonlyArray<Redis>
  readonly pending: Array<number>
  constructor(port: number, size: number) {
    this.clients = Array.from({ length: size }, () => {
      const client = new Redis({
        host: "127.0.0.1",
        port,
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 5_000
      })
      client.on("error", () => undefined)
      return client
    })
    this.pending = this.clients.map(() => 0)
  }
  connect(): Promise<unknown> {
    return Promise.all(this.clients.map((c) => c.connect()))
  }
  get(key: string): Promise<string | null> {
    let i = 0
    for (let j = 1; j < this.pending.length; j++) if (this.pending[j]! < this.pending[i]!) i = j
    this.pending[i]!++
    return this.clients[i]!.get(key).finally(() => this.pending[i]!--)
  }
  close(): void {
    for (const c of this.clients) c.disconnect()
  }
}

class PoolError extends Data.TaggedError("PoolError")<{ readonly operation: string; readonly message: string }> {}

/** A held reply takes at least the tail's delay less this (the proxy's clock counts whole ms). */
export const SLACK_MS = 2

/** How the hedge picks its delay: learnt (`percentile`) or fixed (`delayMillis`); `undefined`: no hedging. */
export type HedgeDelay =
  | { readonly percentile: number; readonly minDelayMillis?: number }
  | { readonly delayMillis: number }
  | undefined

export const hedgeLabel = (how: HedgeDelay): string =>
  how === undefined
    ? "no hedging"
    : "percentile" in how
    ? `\`Hedge.make({ percentile: ${how.percentile}, ${
      how.minDelayMillis === undefined ? "" : `minDelay: "${how.minDelayMillis} millis", `
    }budget })\``
    : `\`Hedge.make({ delay: "${how.delayMillis} millis", budget })\``

export interface Hedged {
  readonly how: HedgeDelay
  readonly hedging: boolean
  readonly calls: number
  readonly p50: number
  readonly p99: number
  /** Calls that took at least the tail's delay less `SLACK_MS` (a lower bound: a held reply always does). */
  readonly slowCalls: number
  /** The hedge's delay when the run ended, ms (NaN without hedging). */
  readonly delayMillis: number
  /** Every answer was the stored value. */
  readonly allCorrect: boolean
  readonly hedged: number
  readonly hedgesWon: number
  readonly hedgesDenied: number
  /** GETs Redis served (its INFO commandstats), and the share beyond one a call. */
  readonly serverGets: number
  readonly extraPercent: number
  /** Replies the proxy saw and held. */
  readonly repliesSeen: number
  readonly repliesDelayed: number
}

const serverGets = async (port: number): Promise<number> => {
  const admin = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 })
  try {
    await admin.connect()
    const info = await admin.info("commandstats")
    const match = /cmdstat_get:calls=(\d+)/.exec(info)
    return match === null ? 0 : Number(match[1])
  } finally {
    admin.disconnect()
  }
}

/**
 * `rate` GETs a second for `millis` (open loop) over a pool of `pool` connections, the proxy holding
 * `fraction` of replies `delayMs` (seed 1); with a hedge (`how`), through `Hedge.make({ ...how, budget })`
 * (a budget of 10 %). A held reply keeps its connection busy for `delayMs` (order is kept on a
 * connection), so the pool must be larger than `rate × fraction × delayMs` connections.
 */
export const hedged = async (
  rig: Rig,
  how: HedgeDelay,
  o: {
    readonly rate: number
    readonly millis: number
    readonly pool: number
    readonly fraction: number
    readonly delayMs: number
  }
): Promise<Hedged> => {
  const scope = Scope.makeUnsafe()
  const value = "cached-plan"
  try {
    const admin = new Redis({ host: "127.0.0.1", port: rig.server.port, lazyConnect: true, maxRetriesPerRequest: 0 })
    await admin.connect()
    await admin.set("policies:hedged", value)
    await admin.config("RESETSTAT")
    admin.disconnect()
    await rig.proxy.pass()
    const guarded = await run(
      GuardedClient.make({
        breaker: { name: "redis_hedged", failMax: 20 },
        connect: () => new Pool(rig.proxy.port, o.pool),
        close: (pool) => Promise.resolve(pool.close()),
        deadline: 5_000,
        onError: (operation, cause) =>
          new PoolError({ operation, message: cause instanceof Error ? cause.message : String(cause) }),
        onTimeout: (operation) => new PoolError({ operation, message: "no answer within 5000 ms" }),
        span: { prefix: "RedisPool", attributes: () => ({}) },
        probe: false,
        checkOnStart: false
      }).pipe(Scope.provide(scope))
    )
    await run(guarded.call("CONNECT", (pool) => pool.connect()))
    const budget = await run(RetryBudget.make({ name: "redis_hedged", ratio: 0.1 }))
    const hedging = how !== undefined
    const hedge = await run(
      Hedge.make({
        name: "redis_hedged",
        budget,
        ...(how === undefined
          ? {}
          : "delayMillis" in how
          ? { delay: Duration.millis(how.delayMillis) }
          : {
            percentile: how.percentile,
            ...(how.minDelayMillis === undefined ? {} : { minDelay: Duration.millis(how.minDelayMillis) })
          })
      })
    )
    const get = guarded.call("GET", (pool) => pool.get("policies:hedged"))
    // Inside withRetry, as `ResilienceConfig.policiesOf` composes them: it counts each call in the budget
    // (a hedge alone only takes from it, so alone it would have the reserve only).
    const call = hedging ? get.pipe(Hedge.withHedge(hedge), RetryBudget.withRetry({ budget, maxRetries: 2 })) : get
    await rig.proxy.slowTail({ fraction: o.fraction, delayMs: o.delayMs, seed: 1 })
    rig.proxy.resetCounters()
    const latencies: Array<number> = []
    let allCorrect = true
    let pending = 0
    await offer(o.millis, o.rate, () => {
      pending++
      const started = performance.now()
      void run(Effect.exit(call)).then((exit) => {
        pending--
        latencies.push(performance.now() - started)
        if (!Exit.isSuccess(exit) || exit.value !== value) allCorrect = false
      })
    })
    if (!(await until(() => pending === 0, 30_000))) throw new Error(`hedged: ${pending} calls never ended`)
    const seen = { seen: rig.proxy.repliesSeen, delayed: rig.proxy.repliesDelayed }
    await rig.proxy.pass()
    await sleep(o.delayMs + 50) // the held replies of lost races reach their connections
    const gets = await serverGets(rig.server.port)
    const stats = hedge.stats()
    return {
      how,
      hedging,
      delayMillis: hedging ? stats.delayMillis : NaN,
      calls: latencies.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      // The proxy's clock is Date.now() (whole ms): a held reply may reach the caller up to 1 ms before the delay.
      slowCalls: latencies.filter((ms) => ms >= o.delayMs - SLACK_MS).length,
      allCorrect,
      hedged: hedging ? stats.hedged : 0,
      hedgesWon: hedging ? stats.hedgesWon : 0,
      hedgesDenied: hedging ? stats.denied : 0,
      serverGets: gets,
      extraPercent: (100 * (gets - latencies.length)) / latencies.length,
      repliesSeen: seen.seen,
      repliesDelayed: seen.delayed
    }
  } finally {
    await run(Scope.close(scope, Exit.void))
  }
}
