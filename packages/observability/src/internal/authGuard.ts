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

/** Starts the guard: its counter lives in the `PrometheusRegistry` and its summary fiber in the scope. */
export const make = (options: Options): Effect.Effect<Guard, never, PrometheusRegistry | Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* PrometheusRegistry
    const burst = Math.max(1, Math.floor(options.burst ?? 10))
    const refillMillis = Math.max(1, Duration.toMillis(Duration.fromInputUnsafe(options.refill ?? "6 seconds")))
    const interval = Duration.fromInputUnsafe(options.summaryInterval ?? "10 seconds")
    const maxClients = Math.max(1, Math.floor(options.maxClients ?? 10_000))
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
    const buckets = new Map<string, Bucket>()
    const period = { unauthorized: 0, throttled: 0, clients: new Set<string>() }
    const minute = { start: Number.NEGATIVE_INFINITY, logged: 0 }

    /** The bucket of an address, refilled up to now. */
    const bucketOf = (address: string, now: number): Bucket => {
      let bucket = buckets.get(address)
      if (bucket === undefined) {
        if (buckets.size >= maxClients) buckets.delete(buckets.keys().next().value!)
        bucket = { tokens: burst, at: now }
        buckets.set(address, bucket)
        return bucket
      }
      const refilled = Math.floor((now - bucket.at) / refillMillis)
      if (refilled > 0) {
        bucket.tokens = Math.min(burst, bucket.tokens + refilled)
        bucket.at = bucket.tokens === burst ? now : bucket.at + refilled * refillMillis
      }
      return bucket
    }

    /** Forgets the addresses whose budget is whole again: they cost nothing to recreate. */
    const sweep = (now: number) => {
      for (const [address, bucket] of buckets) {
        if (bucket.tokens + Math.floor((now - bucket.at) / refillMillis) >= burst) buckets.delete(address)
      }
    }

    const summary = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      sweep(now)
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
    // On the Clock: a TestClock drives it in the tests.
    yield* Effect.forkScoped(Effect.repeat(Effect.andThen(Effect.sleep(interval), summary), Schedule.forever))

    const check: Guard["check"] = (request, { authorized, event, path, route }) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const address = Option.getOrElse(request.remoteAddress, () => "unknown")
        const bucket = bucketOf(address, now)
        if (bucket.tokens === 0) {
          counter.inc({ service: options.service, route, reason: "throttled" })
          period.throttled++
          if (period.clients.size < maxClients) period.clients.add(address)
          const retryAfter = Math.max(1, Math.ceil((bucket.at + refillMillis - now) / 1000))
          return Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "too many failed attempts" }, {
            status: 429,
            headers: { "retry-after": String(retryAfter), "cache-control": "no-store" }
          }))
        }
        if (authorized(request.headers["authorization"])) {
          if (bucket.tokens === burst) buckets.delete(address)
          return Effect.succeed(undefined)
        }
        if (bucket.tokens === burst) bucket.at = now
        bucket.tokens--
        counter.inc({ service: options.service, route, reason: "unauthorized" })
        period.unauthorized++
        if (period.clients.size < maxClients) period.clients.add(address)
        if (now - minute.start >= 60_000) {
          minute.start = now
          minute.logged = 0
        }
        const answer = HttpServerResponse.jsonUnsafe({ error: "unauthorized" }, {
          status: 401,
          headers: { "www-authenticate": "Bearer", "cache-control": "no-store" }
        })
        if (minute.logged >= DENIALS_LOGGED_PER_MINUTE) return Effect.succeed(answer)
        minute.logged++
        return Effect.as(
          Effect.logWarning(event).pipe(Effect.annotateLogs({
            method: truncate(request.method),
            path: truncate(path),
            remote_address: truncate(address),
            user_agent: truncate(request.headers["user-agent"] ?? "unknown")
          })),
          answer
        )
      })

    return { check }
  })
