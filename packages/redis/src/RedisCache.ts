/**
 * The seed's Redis cache (`redis_get_safe`, `redis_setex_safe`,
 * `redis_ping_safe`) as an Effect service over ioredis, behind a fail-open
 * circuit breaker: while Redis is down or its breaker is open, `get` answers
 * `Option.none()`, `setex` and `ping` answer `false`, and the program goes on
 * without its cache (slower, but working).
 *
 * ioredis is configured to fail fast (its defaults queue commands and retry for
 * 10 s or more when Redis dies or stalls): no offline queue, no per-request
 * retries, a command timeout (the only guard against a paused server), a
 * connect timeout, and a capped reconnect backoff that keeps trying.
 *
 * **Example** (Caching a lookup, fail-open)
 *
 * ```ts
 * import { Effect, Option } from "effect"
 * import { RedisCache } from "@neural-hive/redis"
 *
 * const lookup = Effect.gen(function*() {
 *   const cache = yield* RedisCache.RedisCache
 *   const hit = yield* cache.get("plan:42")
 *   if (Option.isSome(hit)) return hit.value
 *   const fresh = "computed"
 *   yield* cache.setex("plan:42", 300, fresh)
 *   return fresh
 * }).pipe(Effect.provide(RedisCache.layer({ url: "redis://127.0.0.1:6379" })))
 * ```
 *
 * @since 0.1.0
 */
import { CircuitBreaker, type CircuitBreakerError, redact, withBreaker } from "@neural-hive/resilience"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Redis, type RedisOptions } from "ioredis"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a Redis command failed:
 * - `Connection`: not connected, connection refused, reset or closed mid-command;
 * - `Timeout`: no answer within `commandTimeout` (a stalled or paused server);
 * - `Unavailable`: the server answered that it cannot serve now (LOADING, BUSY,
 *   MASTERDOWN, CLUSTERDOWN, TRYAGAIN, READONLY, NOREPLICAS);
 * - `Reply`: the server rejected this command (WRONGTYPE, ERR syntax, NOSCRIPT...),
 *   a caller error that never trips the breaker.
 *
 * @since 0.1.0
 * @category errors
 */
export type RedisErrorReason = "Connection" | "Timeout" | "Unavailable" | "Reply"

/**
 * @since 0.1.0
 * @category errors
 */
export class RedisError extends Data.TaggedError("RedisError")<{
  readonly reason: RedisErrorReason
  readonly command: string
  readonly message: string
  readonly cause?: unknown
}> {}

const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS)\b/

/**
 * Maps anything ioredis throws to a `RedisError`.
 *
 * @since 0.1.0
 * @category errors
 */
export const toRedisError = (command: string, cause: unknown): RedisError => {
  const message = redact(cause instanceof Error ? cause.message : String(cause))
  const name = cause instanceof Error ? cause.name : ""
  let reason: RedisErrorReason
  if (name === "ReplyError") reason = UNAVAILABLE_REPLIES.test(message) ? "Unavailable" : "Reply"
  else if (/timed out|ETIMEDOUT/i.test(message)) reason = "Timeout"
  else reason = "Connection"
  return new RedisError({ reason, command, message, cause })
}

/**
 * The Redis classifier: everything but a `Reply` (the caller's error) counts
 * against Redis.
 *
 * @since 0.1.0
 * @category errors
 */
export const isServerFailure = (error: unknown): boolean => !(error instanceof RedisError && error.reason === "Reply")

// -----------------------------------------------------------------------------
// service
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category services
 */
export class RedisCache extends Context.Service<RedisCache, {
  /** The cached value, or `none` on a miss, a failure, or an open breaker. */
  readonly get: (key: string) => Effect.Effect<Option.Option<string>>
  /** Stores `value` for `seconds`; `false` when it could not be stored. */
  readonly setex: (key: string, seconds: number, value: string) => Effect.Effect<boolean>
  /** `true` when Redis answered PONG through the breaker. */
  readonly ping: Effect.Effect<boolean>
  /** Any command, fail-fast, for callers that must know why it failed. */
  readonly use: <A>(
    command: string,
    f: (client: Redis) => Promise<A>
  ) => Effect.Effect<A, RedisError | CircuitBreakerError>
  readonly breaker: CircuitBreaker.CircuitBreaker
}>()("@neural-hive/redis/RedisCache") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `redis://[:password@]host:port[/db]`; a password in it never reaches logs or errors. */
  readonly url: string | Redacted.Redacted<string>
  /** Breaker options; `name` defaults to `redis_client`, the seed's recovery 60 s. */
  readonly breaker?: Partial<CircuitBreaker.Options> | undefined
  /** No answer within this fails the command (default 1 second). */
  readonly commandTimeout?: Duration.Input | undefined
  /** Connecting longer than this fails (default 2 seconds). */
  readonly connectTimeout?: Duration.Input | undefined
  /** Cap of the reconnect backoff (default 2 seconds). */
  readonly maxReconnectDelay?: Duration.Input | undefined
  /** Prefix for every key (ioredis `keyPrefix`). */
  readonly keyPrefix?: string | undefined
}

/**
 * The ioredis options used by `make`, fail-fast as TEST-SERVICES.md asks.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientOptions = (options: Options, reconnect: () => boolean = () => true): RedisOptions => {
  const maxReconnectDelay = Duration.toMillis(options.maxReconnectDelay ?? 2000)
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: Duration.toMillis(options.commandTimeout ?? 1000),
    connectTimeout: Duration.toMillis(options.connectTimeout ?? 2000),
    // Reconnect with a capped backoff while `reconnect()` allows it (the breaker is not open);
    // otherwise stop, and let the breaker's probe reconnect.
    retryStrategy: (times) => reconnect() ? Math.min(50 * 2 ** Math.min(times, 10), maxReconnectDelay) : null,
    ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix })
  }
}

/**
 * Makes the service: an ioredis client for the life of the scope and a
 * `redis_client` breaker (registered in the `CircuitBreaker.Registry` if one
 * is provided). Starts even when Redis is down.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  // Bad durations fail here, typed, before anything below converts them.
  yield* CircuitBreaker.durationOption(
    options.breaker?.name ?? "redis_client",
    "commandTimeout",
    options.commandTimeout,
    1000
  )
  yield* CircuitBreaker.durationOption(
    options.breaker?.name ?? "redis_client",
    "connectTimeout",
    options.connectTimeout,
    2000
  )
  yield* CircuitBreaker.durationOption(
    options.breaker?.name ?? "redis_client",
    "maxReconnectDelay",
    options.maxReconnectDelay,
    2000
  )
  const breaker = yield* CircuitBreaker.make({
    name: "redis_client",
    failMax: 5,
    recoveryTimeout: "60 seconds",
    maxOpenDuration: "60 seconds",
    callTimeout: Duration.toMillis(options.commandTimeout ?? 1000) + 500,
    failureMode: "fail-open",
    isFailure: isServerFailure,
    ...options.breaker
  })
  const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  const context = yield* Effect.context<never>()
  const client = yield* Effect.acquireRelease(
    // While the breaker is open nobody reconnects to Redis: calls are rejected without touching the
    // network, and the first probe after the open period reconnects (see `ready`).
    Effect.sync(() => new Redis(url, clientOptions(options, () => breaker.unsafe.snapshot().state !== "Open"))),
    (client) =>
      Effect.tryPromise(() => client.quit()).pipe(
        Effect.timeout("1 second"),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => client.disconnect()))
      )
  )
  // ioredis emits `error` on every failed (re)connection; without a listener Node would crash the process.
  // Command failures reach callers as RedisError; these connection-level events are logged at debug.
  client.on("error", (error: Error) => {
    Effect.runForkWith(context)(
      Effect.logDebug("redis connection error").pipe(
        Effect.annotateLogs({ circuit: breaker.name, error: redact(error.message) })
      )
    )
  })

  // Before a command: a client that gave up reconnecting ("end") or never connected ("wait") connects
  // again; one in the middle of connecting is awaited (bounded by the breaker's callTimeout). A client
  // waiting to reconnect is not awaited: the command fails at once and counts.
  const ready: Effect.Effect<void, RedisError> = Effect.suspend(() => {
    switch (client.status) {
      case "ready":
        return Effect.void
      case "end":
      case "wait":
        return Effect.tryPromise({ try: () => client.connect(), catch: (cause) => toRedisError("CONNECT", cause) })
      case "connecting":
      case "connect":
        return Effect.callback<void, RedisError>((resume) => {
          const onReady = () => resume(Effect.void)
          const onClose = () => resume(Effect.fail(toRedisError("CONNECT", new Error("Connection is closed."))))
          client.once("ready", onReady)
          client.once("close", onClose)
          return Effect.sync(() => {
            client.off("ready", onReady)
            client.off("close", onClose)
          })
        })
      default:
        return Effect.void
    }
  })

  // Connect now, but start anyway when Redis is down (bounded by connectTimeout): the breaker reports it.
  yield* Effect.ignore(ready)

  const use = <A>(command: string, f: (client: Redis) => Promise<A>) =>
    ready.pipe(
      Effect.andThen(Effect.tryPromise({ try: () => f(client), catch: (cause) => toRedisError(command, cause) })),
      withBreaker(breaker),
      // A breaker callTimeout (when one is configured) is this client's Timeout.
      Effect.catchTag("CircuitBreakerTimeoutError", (e) =>
        Effect.fail(new RedisError({ reason: "Timeout", command, message: e.message }))),
      // One client span per command: the breaker (with Tracing.layer) annotates it with its name, state and result.
      Effect.withSpan(`RedisCache.${command}`, { kind: "client", attributes: { "db.system": "redis" } })
    )

  const failOpen = <A>(command: string, effect: Effect.Effect<A, RedisError | CircuitBreakerError>, fallback: A) =>
    Effect.catch(effect, (error) =>
      Effect.as(
        (error._tag === "CircuitBreakerError" ? Effect.logDebug : Effect.logWarning)(
          `redis ${command} failed open`
        ).pipe(
          Effect.annotateLogs({
            circuit: breaker.name,
            reason: error.reason,
            error: error.message
          })
        ),
        fallback
      ))

  return RedisCache.of({
    get: (key) => failOpen("GET", Effect.map(use("GET", (c) => c.get(key)), Option.fromNullishOr), Option.none()),
    setex: (key, seconds, value) =>
      failOpen("SETEX", Effect.map(use("SETEX", (c) => c.setex(key, seconds, value)), (r) => r === "OK"), false),
    ping: failOpen("PING", Effect.map(use("PING", (c) => c.ping()), (r) => r === "PONG"), false),
    use,
    breaker
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<RedisCache, CircuitBreaker.CircuitBreakerOptionsError> =>
  Layer.effect(RedisCache, make(options))

/**
 * Reads `url` (a `Redacted`) and the timeouts from config, e.g.
 * `layerConfig({ url: Config.Redacted("REDIS_URL") })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<RedisCache, CircuitBreaker.CircuitBreakerOptionsError | Config.ConfigError> =>
  Layer.effect(
    RedisCache,
    Effect.flatMap(Config.unwrap(options), make)
  )
