/**
 * The Orchestrator Dynamic's Redis cache (`redis_get_safe`, `redis_setex_safe`,
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
import {
  CircuitBreaker,
  type CircuitBreakerError,
  GuardedClient,
  redact,
  type ResilienceConfig
} from "@neural-hive/resilience"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Redis } from "ioredis"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a Redis command failed. Only `Reply` is the caller's; every other reason
 * counts against Redis (see `isFailure`): when in doubt, count.
 *
 * | reason | from | counts |
 * |---|---|---|
 * | `Connection` | not connected, connection refused, reset or closed mid-command, a socket error | yes |
 * | `Timeout` | no answer within `commandTimeout` (a stalled or paused server) | yes |
 * | `Unavailable` | the server cannot serve now: LOADING, BUSY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, READONLY, NOREPLICAS, OOM, MISCONF, "max number of clients" | yes |
 * | `Authentication` | NOAUTH, WRONGPASS, NOPERM, "invalid password": the service's credentials, not one command | yes |
 * | `Reply` | the server refused this command: WRONGTYPE, ERR (syntax, arguments, unknown command), NOSCRIPT, EXECABORT, BUSYGROUP, NOGROUP, BUSYKEY, CROSSSLOT | no |
 * | `Unknown` | any other error reply or error | yes |
 *
 * @since 0.1.0
 * @category errors
 */
export type RedisErrorReason = "Connection" | "Timeout" | "Unavailable" | "Authentication" | "Reply" | "Unknown"

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

const UNAVAILABLE_REPLIES =
  /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|OOM|MISCONF)\b|^ERR max number of clients/
const AUTHENTICATION_REPLIES = /^(NOAUTH|WRONGPASS|NOPERM)\b|^ERR (invalid password|AUTH)/
// ioredis wraps a failed ready check ("Ready check failed: NOAUTH ...") in a plain Error.
const AUTHENTICATION = /\b(NOAUTH|WRONGPASS|NOPERM)\b/
const CALLER_REPLIES = /^(WRONGTYPE|ERR|NOSCRIPT|EXECABORT|BUSYGROUP|NOGROUP|BUSYKEY|CROSSSLOT)\b/
// ioredis's own words for a command that never reached a connected server, and Node's socket error codes.
const NO_CONNECTION =
  /Connection is closed|Stream isn't writeable|max retries per request|ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN/i
const SYSCALL_CODE = /^E[A-Z]+$/

const reasonOf = (name: string, message: string, code: unknown): RedisErrorReason => {
  if (name === "ReplyError") {
    if (UNAVAILABLE_REPLIES.test(message)) return "Unavailable"
    if (AUTHENTICATION_REPLIES.test(message)) return "Authentication"
    return CALLER_REPLIES.test(message) ? "Reply" : "Unknown"
  }
  if (AUTHENTICATION.test(message)) return "Authentication"
  if (/timed out|ETIMEDOUT/i.test(message)) return "Timeout"
  if (NO_CONNECTION.test(message) || (typeof code === "string" && SYSCALL_CODE.test(code))) return "Connection"
  return "Unknown"
}

/**
 * Maps anything ioredis throws to a `RedisError`.
 *
 * @since 0.1.0
 * @category errors
 */
export const toRedisError = (command: string, cause: unknown): RedisError => {
  const message = redact(cause instanceof Error ? cause.message : String(cause))
  const name = cause instanceof Error ? cause.name : ""
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined
  return new RedisError({ reason: reasonOf(name, message, code), command, message, cause })
}

/**
 * The Redis classifier, the `isFailure` of the `redis_client` breaker: every
 * error counts against Redis except a `Reply` (the caller's own command was
 * refused). Errors this package does not know count too.
 *
 * **Example** (WRONGTYPE does not count)
 *
 * ```ts
 * import { RedisCache } from "@neural-hive/redis"
 *
 * RedisCache.isFailure(new RedisCache.RedisError({ reason: "Reply", command: "GET", message: "WRONGTYPE" })) // false
 * RedisCache.isFailure(new Error("something new")) // true
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const isFailure = (error: unknown): boolean => !(error instanceof RedisError && error.reason === "Reply")

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
  /**
   * Any command, fail-fast, for callers that must know why it failed. Never retried nor hedged unless
   * `callOptions` says so (`{ idempotent: true }` for a read): the command may not be safe twice.
   */
  readonly use: <A>(
    command: string,
    f: (client: Redis) => Promise<A>,
    callOptions?: GuardedClient.CallOptions | undefined
  ) => Effect.Effect<A, RedisError | CircuitBreakerError>
  readonly breaker: CircuitBreaker.CircuitBreaker
}>()("@neural-hive/redis/RedisCache") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * `redis://[user:password@]host:port[/db]` (an ACL user, or `:password@` for `requirepass`), `rediss://` for
   * TLS with the system's CAs; a password in it never reaches logs or errors.
   */
  readonly url: string | Redacted.Redacted<string>
  /** TLS with a private CA or server name (implies TLS, whatever the URL's scheme). */
  readonly tls?: Tls | undefined
  /** Breaker options over `breakerDefaults` (`name` defaults to `redis_client`). */
  readonly breaker?: Partial<CircuitBreaker.Options> | undefined
  /** No answer within this fails the command (default 1 second). */
  readonly commandTimeout?: Duration.Input | undefined
  /** Connecting longer than this fails (default 2 seconds). */
  readonly connectTimeout?: Duration.Input | undefined
  /** Cap of the reconnect backoff (default 2 seconds). */
  readonly maxReconnectDelay?: Duration.Input | undefined
  /** Prefix for every key (ioredis `keyPrefix`). */
  readonly keyPrefix?: string | undefined
  /**
   * `PING` once at start (through the breaker, bounded by the call deadline) and as the breaker's trial when its open
   * period ends with no call to try it (default true). `false`: neither.
   */
  readonly probe?: boolean | undefined
  /**
   * The circuit's policies (`ResilienceConfig.policiesOf`), composed around every command by `GuardedClient`:
   * a `GET` (and `PING`) is hedged, a `SETEX` never; both are retried within the budget.
   */
  readonly policies?: ResilienceConfig.Policies | undefined
}

/**
 * TLS settings of the connection (`tls`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Tls {
  /** PEM certificates the server's chain must end in (replaces the system's CAs); default: the system's. */
  readonly ca?: string | undefined
  /** The name the server's certificate must hold (SNI and check); default: the URL's host. */
  readonly servername?: string | undefined
  /** `false` accepts any certificate: for tests only. Default true. */
  readonly rejectUnauthorized?: boolean | undefined
}

/**
 * The ioredis options `clientOptions` gives: exactly the fields it sets. Pass it to `new Redis(url, options)`
 * on ioredis 5 or 6 (ioredis 6's own `RedisOptions` type is refused by its constructor under
 * `exactOptionalPropertyTypes`, this one is not).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /** Connects on the first command, not at construction. */
  readonly lazyConnect: true
  /** Commands fail at once while disconnected instead of queueing. */
  readonly enableOfflineQueue: false
  /** No per-request retries: the breaker decides. */
  readonly maxRetriesPerRequest: 0
  /** Commands cut by a lost connection fail instead of being resent. */
  readonly autoResendUnfulfilledCommands: false
  /** Milliseconds a command may take. */
  readonly commandTimeout: number
  /** Milliseconds a connection may take. */
  readonly connectTimeout: number
  /** The reconnection backoff in milliseconds, or `null` to stop reconnecting. */
  readonly retryStrategy: (times: number) => number | null
  /**
   * Milliseconds `disconnect()` lets the socket close by itself before destroying it: 0, at once. ioredis's
   * default (2 s) is a timer that holds the process after the layer closed: the socket of a server that
   * never answers does not close, and ioredis 5 also arms the timer on a socket that already closed.
   */
  readonly disconnectTimeout: 0
  /** Prepended to every key. */
  readonly keyPrefix?: string
  /** TLS options of the socket (`tls.connect`), from `Options.tls`. */
  readonly tls?: { readonly ca?: string; readonly servername?: string; readonly rejectUnauthorized?: boolean }
}

/**
 * The ioredis options used by `make`: fail-fast (no offline queue, no
 * per-request retries, a command timeout), reconnecting with a capped backoff
 * while `reconnect()` allows it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientOptions = (options: Options, reconnect: () => boolean = () => true): ClientOptions => {
  const maxReconnectDelay = Duration.toMillis(options.maxReconnectDelay ?? 2000)
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: Duration.toMillis(options.commandTimeout ?? 1000),
    connectTimeout: Duration.toMillis(options.connectTimeout ?? 2000),
    retryStrategy: (times) => reconnect() ? Math.min(50 * 2 ** Math.min(times, 10), maxReconnectDelay) : null,
    disconnectTimeout: 0,
    ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix }),
    ...(options.tls === undefined ? {} : { tls: tlsOptions(options.tls) })
  }
}

const tlsOptions = (tls: Tls): NonNullable<ClientOptions["tls"]> => ({
  ...(tls.ca === undefined ? {} : { ca: tls.ca }),
  ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized })
})

// Before a command: a client that never connected ("wait") or gave up ("end") connects; one in the middle
// of connecting is awaited (bounded by the call's deadline). One waiting to reconnect is not awaited: the
// command fails at once and counts. A connection that closes before it is ready fails with the error that
// closed it (e.g. "Ready check failed: NOAUTH"), not ioredis's bare "Connection is closed.".
const ready = (client: Redis, signal: AbortSignal): Promise<void> => {
  switch (client.status) {
    case "end":
    case "wait":
    case "connecting":
    case "connect":
      return new Promise<void>((resolve, reject) => {
        let last: unknown = undefined
        const onError = (error: unknown) => {
          last = error
        }
        const settle = (done: () => void) => () => {
          client.off("ready", onReady)
          client.off("close", onClose)
          client.off("error", onError)
          signal.removeEventListener("abort", onAbort)
          done()
        }
        const onReady = settle(resolve)
        const onClose = settle(() => reject(last ?? new Error("Connection is closed.")))
        const onAbort = settle(() => reject(signal.reason))
        client.on("error", onError)
        client.once("ready", onReady)
        client.once("close", onClose)
        signal.addEventListener("abort", onAbort)
        // Its own rejection is the close handled above; the listeners carry the outcome.
        if (client.status === "end" || client.status === "wait") client.connect().catch(() => undefined)
      })
    default:
      return Promise.resolve()
  }
}

/**
 * The breaker's defaults for a cache (over the breaker's own): a 60 s open
 * period (a cache can wait longer than a store) and fail-open (a miss, not an
 * error). The Orchestrator Dynamic example reads its Redis default from here.
 *
 * @since 0.1.0
 * @category constants
 */
export const breakerDefaults = {
  name: "redis_client",
  recoveryTimeout: Duration.seconds(60),
  maxOpenDuration: Duration.seconds(60),
  failureMode: "fail-open"
} as const satisfies Partial<CircuitBreaker.Options>

/**
 * Makes the service: an ioredis client and a `redis_client` breaker
 * (registered in the `Registry.Registry` if one is provided) for the
 * life of the scope. Starts even when Redis is down; when the breaker opens
 * the client is closed (nothing reconnects while open) and the first call or
 * probe afterwards connects a fresh one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  const circuit = options.breaker?.name ?? "redis_client"
  const timeouts = yield* GuardedClient.durations(circuit, {
    commandTimeout: [options.commandTimeout, 1000],
    connectTimeout: [options.connectTimeout, 2000],
    maxReconnectDelay: [options.maxReconnectDelay, 2000]
  })
  // A command waits for a connection under way, then for its answer: one deadline covers both.
  const deadline = timeouts.commandTimeout + 500
  const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  const settings = clientOptions(options)
  const context = yield* Effect.context<never>()
  const guarded = yield* GuardedClient.make({
    breaker: {
      ...breakerDefaults,
      callTimeout: deadline + 500,
      isFailure,
      ...options.breaker
    },
    connect: () => {
      const client = new Redis(url, settings)
      // ioredis emits `error` on every failed (re)connection; without a listener Node would crash the process.
      // Command failures reach callers as RedisError; these connection-level events are logged at debug.
      client.on("error", (error: Error) => {
        Effect.runForkWith(context)(
          Effect.logDebug("redis connection error").pipe(
            Effect.annotateLogs({ circuit, error: redact(error.message) })
          )
        )
      })
      return client
    },
    // QUIT only a connected client: on one that never connected ioredis would connect to send it.
    close: (client) => client.status === "ready" ? client.quit() : Promise.resolve(),
    closeTimeout: "1 second",
    // Then, whatever QUIT did, drop the socket and any reconnect timer (`disconnectTimeout: 0`: nothing waits on
    // a server that never answers). A client that already ended has nothing left to drop.
    abandon: (client) => {
      if (client.status !== "end") client.disconnect()
    },
    deadline,
    onError: (command, cause) => toRedisError(command === "connect" ? "CONNECT" : command, cause),
    onTimeout: (command) => new RedisError({ reason: "Timeout", command, message: `no answer within ${deadline} ms` }),
    span: { prefix: "RedisCache", attributes: () => ({ "db.system": "redis" }) },
    probe: options.probe === false ? false : (client, signal) => ready(client, signal).then(() => client.ping()),
    policies: options.policies
  }).pipe(
    // ioredis parses the URL when the client is made: a URL it refuses is a bad option, named without its password.
    Effect.catchTag("RedisError", (error) =>
      Effect.fail(
        new CircuitBreaker.CircuitBreakerOptionsError({
          circuit,
          option: "url",
          value: redact(url),
          expected: `a redis:// URL (${error.message})`
        })
      ))
  )

  const use = <A>(
    command: string,
    f: (client: Redis) => Promise<A>,
    callOptions: GuardedClient.CallOptions = { retry: false }
  ) => guarded.call(command, (client, signal) => ready(client, signal).then(() => f(client)), undefined, callOptions)
  // A read is idempotent, cheap, with a slow tail: hedged. A write is retried, never hedged.
  const read: GuardedClient.CallOptions = { idempotent: true }
  const write: GuardedClient.CallOptions = { retry: true }

  // Fail-open, logged as `redis GET failed open` with the circuit, the reason and the error.
  const open = <A>(command: string, effect: Effect.Effect<A, RedisError | CircuitBreakerError>, fallback: () => A) =>
    effect.pipe(GuardedClient.failOpen(`redis ${command}`, fallback), Effect.annotateLogs("circuit", circuit))

  return RedisCache.of({
    get: (key) => open("GET", Effect.map(use("GET", (c) => c.get(key), read), Option.fromNullishOr), Option.none),
    setex: (key, seconds, value) =>
      open(
        "SETEX",
        Effect.map(use("SETEX", (c) => c.setex(key, seconds, value), write), (r) => r === "OK"),
        () => false
      ),
    ping: open("PING", Effect.map(use("PING", (c) => c.ping(), read), (r) => r === "PONG"), () => false),
    use,
    breaker: guarded.breaker
  })
})

const layers = GuardedClient.layers(RedisCache, make)

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: (options: Options) => Layer.Layer<RedisCache, CircuitBreaker.CircuitBreakerOptionsError> =
  layers.layer

/**
 * Reads `url` (a `Redacted`) and the timeouts from config, e.g.
 * `layerConfig({ url: Config.Redacted("REDIS_URL") })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  options: Config.Wrap<Options>
) => Layer.Layer<RedisCache, CircuitBreaker.CircuitBreakerOptionsError | Config.ConfigError> = layers.layerConfig
