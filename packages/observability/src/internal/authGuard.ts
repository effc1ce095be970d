/**
 * The guard in front of every bearer-token route (the admin routes, a fault
 * switch): a token bucket of failed attempts per remote address, a counter of
 * denials, and a log of them that cannot flood.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Prometheus from "prom-client"
import type { AuthGuard } from "../Http.ts"
import { PrometheusRegistry } from "../Metrics.ts"

/** The counter of denied requests, by route template and reason (`unauthorized`, `throttled`). */
export const deniedMetric = "http_auth_denied_total"

/** Logged header values are cut here: a client chooses them. */
const MAX_LOGGED_CHARS = 128

/** Denials logged one by one per minute; all of them are in the periodic summary. */
const DENIALS_LOGGED_PER_MINUTE = 10

export const truncate = (text: string): string =>
  text.length <= MAX_LOGGED_CHARS ? text : `${text.slice(0, MAX_LOGGED_CHARS)}...(${text.length} chars)`

export interface Options {
  readonly service: string
  /** Failed attempts a client may make in a row (default 10). */
  readonly burst?: number | undefined
  /** One more failed attempt is allowed after each of these (default 6 seconds: 10 a minute). */
  readonly refill?: Duration.Input | undefined
  /** How often the denials of the period are summed up in one log line, when there were any (default 10 seconds). */
  readonly summaryInterval?: Duration.Input | undefined
  /** Addresses tracked at once (default 10,000); beyond, the oldest entry is forgotten. */
  readonly maxClients?: number | undefined
}

/** The guard as `Http.AuthGuard` declares it (one declaration: the public one). */
export type Guard = AuthGuard

interface Bucket {
  tokens: number
  at: number
}

/** What the guard keeps: its settings, its counter, the buckets by address, this period's and this minute's tallies. */
interface Guarding {
  readonly service: string
  readonly burst: number
  readonly refillMillis: number
  readonly maxClients: number
  readonly counter: Prometheus.Counter<"service" | "route" | "reason">
  readonly buckets: Map<string, Bucket>
  readonly period: { unauthorized: number; throttled: number; clients: Set<string> }
  readonly minute: { start: number; logged: number }
}

/** Starts the guard: its counter lives in the `PrometheusRegistry` and its summary fiber in the scope. */
export const make = (options: Options): Effect.Effect<Guard, never, PrometheusRegistry | Scope.Scope> =>
  Effect.gen(function*() {
    const interval = Duration.fromInputUnsafe(options.summaryInterval ?? "10 seconds")
    const g: Guarding = {
      service: options.service,
      burst: Math.max(1, Math.floor(options.burst ?? 10)),
      refillMillis: Math.max(1, Duration.toMillis(Duration.fromInputUnsafe(options.refill ?? "6 seconds"))),
      maxClients: Math.max(1, Math.floor(options.maxClients ?? 10_000)),
      counter: yield* deniedCounter,
      buckets: new Map(),
      period: { unauthorized: 0, throttled: 0, clients: new Set() },
      minute: { start: Number.NEGATIVE_INFINITY, logged: 0 }
    }
    // On the Clock: a TestClock drives it in the tests.
    yield* Effect.forkScoped(
      Effect.repeat(Effect.andThen(Effect.sleep(interval), summarize(g, interval)), Schedule.forever)
    )
    const check: Guard["check"] = (request, { authorized, event, path, route }) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const address = Option.getOrElse(request.remoteAddress, () => "unknown")
        const bucket = bucketOf(g, address, now)
        if (bucket.tokens === 0) return Effect.succeed(throttle(g, route, address, bucket, now))
        if (authorized(request.headers["authorization"])) {
          if (bucket.tokens === g.burst) g.buckets.delete(address)
          return Effect.succeed(undefined)
        }
        return refuse(g, bucket, now, { route, address, event, path, request })
      })
    return { check }
  })

/** The denial counter, shared with a guard already registered; one made here leaves with the scope. */
const deniedCounter = Effect.gen(function*() {
  const registry = yield* PrometheusRegistry
  const existing = registry.getSingleMetric(deniedMetric)
  const counter = existing instanceof Prometheus.Counter ? existing : new Prometheus.Counter({
    name: deniedMetric,
    help: "Requests refused on a bearer-token route: a wrong or missing token (unauthorized) or, "
      + "without comparing the token, a client out of failed attempts (throttled)",
    labelNames: ["service", "route", "reason"] as const,
    registers: [registry]
  })
  if (existing === undefined) {
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (registry.getSingleMetric(deniedMetric) === counter) registry.removeSingleMetric(deniedMetric)
      })
    )
  }
  return counter as Prometheus.Counter<"service" | "route" | "reason">
})

/** The bucket of an address, refilled up to now. */
const bucketOf = (g: Guarding, address: string, now: number): Bucket => {
  let bucket = g.buckets.get(address)
  if (bucket === undefined) {
    if (g.buckets.size >= g.maxClients) g.buckets.delete(g.buckets.keys().next().value!)
    bucket = { tokens: g.burst, at: now }
    g.buckets.set(address, bucket)
    return bucket
  }
  const refilled = Math.floor((now - bucket.at) / g.refillMillis)
  if (refilled > 0) {
    bucket.tokens = Math.min(g.burst, bucket.tokens + refilled)
    bucket.at = bucket.tokens === g.burst ? now : bucket.at + refilled * g.refillMillis
  }
  return bucket
}

/** Forgets the addresses whose budget is whole again: they cost nothing to recreate. */
const sweep = (g: Guarding, now: number) => {
  for (const [address, bucket] of g.buckets) {
    if (bucket.tokens + Math.floor((now - bucket.at) / g.refillMillis) >= g.burst) g.buckets.delete(address)
  }
}

/** The period's summary line (when there were denials), after forgetting the whole buckets. */
const summarize = (g: Guarding, interval: Duration.Duration) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    sweep(g, now)
    const period = g.period
    if (period.unauthorized === 0 && period.throttled === 0) return Effect.void
    const line = Effect.logWarning("http_auth_denied_summary").pipe(
      Effect.annotateLogs({
        unauthorized: period.unauthorized,
        throttled: period.throttled,
        clients: period.clients.size,
        interval_seconds: Duration.toSeconds(interval)
      })
    )
    period.unauthorized = 0
    period.throttled = 0
    period.clients = new Set()
    return line
  })

/** A client out of failed attempts: counted and answered 429 with `Retry-After`, its token not compared. */
const throttle = (g: Guarding, route: string, address: string, bucket: Bucket, now: number) => {
  g.counter.inc({ service: g.service, route, reason: "throttled" })
  g.period.throttled++
  if (g.period.clients.size < g.maxClients) g.period.clients.add(address)
  const retryAfter = Math.max(1, Math.ceil((bucket.at + g.refillMillis - now) / 1000))
  return HttpServerResponse.jsonUnsafe({ error: "too many failed attempts" }, {
    status: 429,
    headers: { "retry-after": String(retryAfter), "cache-control": "no-store" }
  })
}

/** A wrong or missing token: one attempt spent, counted, answered 401, and logged within the minute's budget. */
const refuse = (
  g: Guarding,
  bucket: Bucket,
  now: number,
  denied: {
    readonly route: string
    readonly address: string
    readonly event: string
    readonly path: string
    readonly request: Parameters<Guard["check"]>[0]
  }
) => {
  if (bucket.tokens === g.burst) bucket.at = now
  bucket.tokens--
  g.counter.inc({ service: g.service, route: denied.route, reason: "unauthorized" })
  g.period.unauthorized++
  if (g.period.clients.size < g.maxClients) g.period.clients.add(denied.address)
  if (now - g.minute.start >= 60_000) {
    g.minute.start = now
    g.minute.logged = 0
  }
  const answer = HttpServerResponse.jsonUnsafe({ error: "unauthorized" }, {
    status: 401,
    headers: { "www-authenticate": "Bearer", "cache-control": "no-store" }
  })
  if (g.minute.logged >= DENIALS_LOGGED_PER_MINUTE) return Effect.succeed(answer)
  g.minute.logged++
  const request = denied.request
  return Effect.as(
    Effect.logWarning(denied.event).pipe(Effect.annotateLogs({
      method: truncate(request.method),
      path: truncate(denied.path),
      remote_address: truncate(denied.address),
      user_agent: truncate(request.headers["user-agent"] ?? "unknown")
    })),
    answer
  )
}
