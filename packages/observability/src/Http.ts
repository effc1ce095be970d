/**
 * The service's operational HTTP endpoints, on `@effect/platform-node`.
 *
 * | route | answer |
 * |---|---|
 * | `GET /health` | JSON of every breaker, status `ok` / `degraded` / `unavailable`; 503 when `unavailable` |
 * | `GET /live` | 200 while the process serves (liveness) |
 * | `GET /ready` | 200 while this replica can serve, by the readiness policy (default: always once started) |
 * | `GET /metrics` | the Prometheus exposition of the `PrometheusRegistry` |
 *
 * Other paths answer 404; other methods on these paths answer 405 (`HEAD` is
 * served like `GET`); a path that is not canonical (`..`, `.`, `//`, a
 * backslash, or one of those percent-encoded) answers 400, so a proxy rule on a
 * prefix sees exactly the path that is routed. `/health` shows names and
 * states only: no settings, no error messages, nothing a secret could hide in.
 *
 * `status` in `/health` is `ok` (every breaker CLOSED with no failure counted),
 * `degraded` (still 200: a CLOSED breaker holds counted failures that have not
 * tripped it, such as a failed start-up check, or a fail-open breaker such as
 * Redis is not CLOSED) or `unavailable` (a fail-fast breaker is not CLOSED: 503).
 * `/ready` never fails merely because a breaker is open unless the policy names
 * it: taking every replica out of the load balancer because a dependency they
 * share is down turns a partial outage into a total one.
 *
 * **Example** (Serving on port 8000)
 *
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, Registry } from "@neural-hive/resilience"
 * import { Http, Metrics } from "@neural-hive/observability"
 *
 * const Server = Http.layer({ port: 8000 }).pipe(
 *   Layer.provideMerge(Metrics.layer()),
 *   Layer.provideMerge(Registry.layer)
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { CircuitBreaker, Registry } from "@neural-hive/resilience"
import * as Config from "effect/Config"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpServer from "effect/http/HttpServer"
import type * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as NodeHttp from "node:http"
import * as HttpMetrics from "./HttpMetrics.ts"
import * as internalAdmin from "./internal/admin.ts"
import * as internalAuthGuard from "./internal/authGuard.ts"
import { make as makeGuardedServer } from "./internal/guardedServer.ts"
import { breakerStatus, type ModeLabel, seconds, type StateLabel } from "./internal/labels.ts"
import * as internalRoutes from "./internal/routes.ts"
import { PrometheusRegistry } from "./Metrics.ts"
import { ServiceName } from "./ServiceName.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The default port, the Orchestrator Dynamic's.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PORT = 8000

/**
 * The shortest admin token accepted: a shorter one is refused when the app is built.
 *
 * @since 0.1.0
 * @category constants
 */
export const MIN_ADMIN_TOKEN_LENGTH = 16

/**
 * The fewest different characters an admin token may have: `aaaaaaaaaaaaaaaa` or
 * `abababababababab` is long enough but easily guessed.
 *
 * @since 0.1.0
 * @category constants
 */
export const MIN_ADMIN_TOKEN_DISTINCT = 8

/**
 * @since 0.1.0
 * @category models
 */
export type Status = "ok" | "degraded" | "unavailable"

/**
 * A breaker's snapshot in label form: the one description of a breaker that
 * `/health` (`BreakerHealth`) and the board (`Board.Card`) both show, each
 * adding its own fields.
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerStatus {
  readonly name: string
  readonly state: StateLabel
  readonly mode: ModeLabel
  readonly failureMode: CircuitBreaker.FailureMode
  /** Counted failures the trip policy holds now. */
  readonly failures: number
  /** Openings since the breaker was made. */
  readonly trips: number
}

/**
 * One breaker in `/health`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerHealth extends BreakerStatus {
  /** Seconds until an OPEN breaker admits a probe; 0 when not OPEN; `null` while forced open. */
  readonly retryAfterSeconds: number | null
}

/**
 * The body of `/health`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Health {
  readonly service: string
  readonly status: Status
  readonly breakers: ReadonlyArray<BreakerHealth>
}

/**
 * When `/ready` says this replica can serve. The default (no breaker named)
 * is ready as soon as the server listens, whatever the breakers say.
 *
 * @since 0.1.0
 * @category models
 */
export interface Readiness {
  /**
   * Breakers that must be CLOSED for this replica to be ready. Name only a
   * dependency private to the replica (a sidecar, a local cache), never one
   * every replica shares: its outage would take them all out of the load
   * balancer at once. A named breaker that does not exist counts as not ready.
   */
  readonly breakers?: ReadonlyArray<string> | undefined
  /**
   * True once the replica is shutting down: `/ready` answers 503 `draining`
   * while every other route still serves, so the load balancer stops sending
   * before the server closes (see the example's `DRAIN_SECONDS`).
   */
  readonly draining?: (() => boolean) | undefined
}

/**
 * The body of `/ready`: `notReady` names the required breakers that are not CLOSED.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ready {
  readonly status: "ready" | "not_ready" | "draining"
  readonly notReady: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The port to listen on (default 8000; 0 picks a free port). */
  readonly port?: number | undefined
  /** The address to listen on (default: every interface). */
  readonly host?: string | undefined
  /** The `service` of `/health` (default: the `ServiceName` reference, `orchestrator-dynamic`). */
  readonly service?: string | undefined
  /**
   * Manual control over HTTP, off unless given: `POST /admin/breakers/{name}/{force-open|disable|reset}`
   * with `Authorization: Bearer <token>` (at least 16 characters, 8 different ones, not only digits). Every
   * request to these routes is logged, denials one by one at most 10 a minute and all of them in a summary
   * every 10 seconds; a client with 10 failed attempts is answered 429 until its budget refills (`makeAuthGuard`).
   */
  readonly admin?:
    | {
      readonly token: Redacted.Redacted<string>
      /**
       * The guard judging the tokens (default: one made with `makeAuthGuard`). Share one guard between the
       * admin routes and token routes of your own, so a client's failed attempts add up across them.
       */
      readonly guard?: AuthGuard | undefined
    }
    | undefined
  /** The readiness policy of `/ready` (default: ready once listening). */
  readonly readiness?: Readiness | undefined
  /**
   * More sections of the `/health` body (e.g. an outbox backlog), read on each request; they do not
   * change its status.
   */
  readonly healthDetails?: Effect.Effect<Readonly<Record<string, unknown>>> | undefined
  /**
   * How long one rendering of `/metrics` answers every scrape (default 1 second; 0: render for each scrape,
   * still sharing a rendering between concurrent ones). Measured on the `Clock`.
   */
  readonly metricsMaxAge?: Duration.Input | undefined
  /** A client still sending its headers after this is answered 408 and cut (default 5 seconds). */
  readonly headersTimeout?: Duration.Input | undefined
  /** A client still sending its request after this is answered 408 and cut (default 10 seconds). */
  readonly requestTimeout?: Duration.Input | undefined
  /**
   * Requests one connection may have waiting behind the one being answered (HTTP pipelining); one more
   * closes the connection, dropping the waiting ones unrun (default 16).
   */
  readonly maxPipelinedRequests?: number | undefined
  /** An answer the client has not read after this closes its connection (default 10 seconds). */
  readonly writeStallTimeout?: Duration.Input | undefined
}

/**
 * The manual actions of the admin routes.
 *
 * @since 0.1.0
 * @category models
 */
export type AdminAction = "force-open" | "disable" | "reset"

/**
 * Judges requests to bearer-token routes (see `makeAuthGuard`): `check`
 * answers `undefined` to let the request through, or the 429 or 401 to send.
 * `route` is the metric's label (a route template, never the raw path), `event`
 * the log line of a denial, `path` the logged path.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthGuard {
  /** `undefined` lets the request through; otherwise the 429 (over budget) or 401 (wrong token) to send. */
  readonly check: (
    request: HttpServerRequest.HttpServerRequest,
    options: {
      readonly route: string
      readonly event: string
      readonly path: string
      readonly authorized: (authorization: string | undefined) => boolean
    }
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse | undefined>
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * An HTTP option that cannot be used, such as an admin token too short to resist guessing.
 *
 * @since 0.1.0
 * @category errors
 */
export class HttpOptionsError extends Data.TaggedError("HttpOptionsError")<{
  readonly option: string
  readonly message: string
}> {}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * A Node HTTP server that does not wait on slow clients and bounds what one
 * connection can queue: headers must arrive within `headersTimeout` and the
 * whole request within `requestTimeout` (Node's own defaults are 60 s and
 * 300 s); idle keep-alive sockets close after 5 s; one socket serves at most
 * 1,000 requests; a connection's requests run one at a time, at most
 * `maxPipelinedRequests` wait (one more closes it, the waiting ones unrun; so
 * does a single read ending more request heads than that, before Node parses
 * them; the waiting ones are dropped when the client leaves), and an answer
 * left unread for `writeStallTimeout` closes it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeNodeServer = (
  options?: Pick<Options, "headersTimeout" | "requestTimeout" | "maxPipelinedRequests" | "writeStallTimeout">
): NodeHttp.Server => makeGuardedServer(options ?? {})

/**
 * The `/health` report of a set of breaker snapshots, sorted by name.
 *
 * @since 0.1.0
 * @category constructors
 */
export const health = (service: string, snapshots: ReadonlyArray<CircuitBreaker.Snapshot>): Health => {
  let status: Status = "ok"
  const breakers = snapshots.toSorted((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(
    (snapshot): BreakerHealth => {
      if (snapshot.state !== "Closed" && snapshot.failureMode === "fail-fast") {
        status = "unavailable"
      } else if ((snapshot.state !== "Closed" || snapshot.failures > 0) && status === "ok") {
        status = "degraded"
      }
      return { ...breakerStatus(snapshot), retryAfterSeconds: seconds(snapshot.retryAfterMillis) }
    }
  )
  return { service, status, breakers }
}

/**
 * The HTTP status of a `/health` report: 503 when `unavailable`, else 200.
 *
 * @since 0.1.0
 * @category constructors
 */
export const statusCode = (report: Health): 200 | 503 => report.status === "unavailable" ? 503 : 200

/**
 * The `/ready` answer of a policy over a set of breaker snapshots.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ready = (policy: Readiness, snapshots: ReadonlyArray<CircuitBreaker.Snapshot>): Ready => {
  if (policy.draining?.() === true) return { status: "draining", notReady: [] }
  const closed = new Set(snapshots.filter((s) => s.state === "Closed").map((s) => s.name))
  const notReady = (policy.breakers ?? []).filter((name) => !closed.has(name))
  return { status: notReady.length === 0 ? "ready" : "not_ready", notReady }
}

/**
 * The path of a request target as it will be routed, or `undefined` when it
 * is not canonical: not starting with `/`, or holding a `.` or `..` segment,
 * `//`, a backslash, or a percent-encoded `.`, `/` or `\`. Such a path is
 * refused (400) rather than resolved, so what is routed is exactly what a
 * proxy in front matched. An absolute-form target (`http://host/path`) is
 * reduced to its path first. The query string is not part of the path.
 *
 * @since 0.1.0
 * @category constructors
 */
export const canonicalPath = (target: string): string | undefined => {
  const absolute = /^https?:\/\/[^/?#]*/i.exec(target)
  const rest = absolute === null ? target : target.slice(absolute[0].length)
  const end = rest.search(/[?#]/)
  const path = end === -1 ? rest : rest.slice(0, end)
  if (!path.startsWith("/") || path.includes("\\") || path.includes("//") || /%(2e|2f|5c)/i.test(path)) {
    return undefined
  }
  return path.split("/").some((segment) => segment === "." || segment === "..") ? undefined : path
}

/**
 * The path a request is routed by (`canonicalPath` of the target as the client sent it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const requestPath = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  // The adapter resolves an absolute-form target's dot segments; judge what the client sent instead.
  const raw = (request.source as { readonly url?: unknown }).url
  return canonicalPath(typeof raw === "string" ? raw : request.url)
}

/**
 * The loopback names a `Host` header may always carry: a browser on this
 * machine reaches the service by them.
 *
 * @since 0.1.0
 * @category constants
 */
export const loopbackHosts: ReadonlyArray<string> = ["localhost", "127.0.0.1", "[::1]"]

/**
 * A check of a request's `Host` header (its name, port left out, case and a
 * final dot ignored) against this service's names: `loopbackHosts`, the bound
 * `host` unless it is a wildcard (`0.0.0.0`, `::`), and `allowed`. Serve the
 * routes a browser uses only when it holds: a page on another site that
 * rebinds its DNS name to 127.0.0.1 still sends its own name in `Host`. A
 * request without `Host` fails it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const hostFilter = (options: {
  readonly host?: string | undefined
  readonly allowed?: ReadonlyArray<string> | undefined
}): (host: string | undefined) => boolean => {
  const names = new Set(
    [...loopbackHosts, ...(options.host === undefined ? [] : [options.host]), ...(options.allowed ?? [])]
      .map(configuredName)
      .filter((name) => name !== "" && !WILDCARD_HOSTS.has(name))
  )
  return (host) => host !== undefined && names.has(headerName(host))
}

/**
 * A check of an `Authorization: Bearer <token>` header against `token`, in time
 * that says nothing about the token (both sides hashed, `timingSafeEqual`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const bearerAuthorization: (
  token: Redacted.Redacted<string>
) => (authorization: string | undefined) => boolean = internalAdmin.bearerAuthorization

/**
 * Fails with `HttpOptionsError` (naming `option`, never showing the token)
 * when the admin token is easy to guess: shorter than `MIN_ADMIN_TOKEN_LENGTH`,
 * with fewer than `MIN_ADMIN_TOKEN_DISTINCT` different characters, or made of
 * digits only. `openssl rand -hex 32` gives a token that passes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkAdminToken = (
  token: Redacted.Redacted<string>,
  option = "admin.token"
): Effect.Effect<void, HttpOptionsError> => {
  const text = Redacted.value(token)
  const distinct = new Set(text).size
  const problem = text.length < MIN_ADMIN_TOKEN_LENGTH
    ? `the token has ${text.length} characters, expected at least ${MIN_ADMIN_TOKEN_LENGTH} (a short token can be guessed)`
    : distinct < MIN_ADMIN_TOKEN_DISTINCT
    ? `the token has ${distinct} different characters, expected at least ${MIN_ADMIN_TOKEN_DISTINCT} (a repetitive token can be guessed)`
    : /^[0-9]+$/.test(text)
    ? "the token is digits only, expected letters too (a number can be guessed); e.g. `openssl rand -hex 32`"
    : undefined
  return problem === undefined
    ? Effect.void
    : Effect.fail(new HttpOptionsError({ option, message: `${option}: ${problem}` }))
}

/**
 * A guard for bearer-token routes: per remote address, a budget of failed
 * attempts (`burst`, default 10) that refills one every `refill` (default 6
 * seconds); a client out of it is answered 429 with `Retry-After`, its token
 * not even compared. Every denial counts in `http_auth_denied_total{service,
 * route, reason}` (`unauthorized` or `throttled`); denials are logged one by
 * one at most 10 a minute, and summed up every `summaryInterval` (default 10
 * seconds, on the `Clock`) in an `http_auth_denied_summary` line with
 * `unauthorized`, `throttled` and `clients` when there were any. At most
 * `maxClients` (default 10,000) addresses are tracked; beyond, the oldest is
 * forgotten. The summary runs until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAuthGuard = (
  options?: {
    readonly service?: string | undefined
    readonly burst?: number | undefined
    readonly refill?: Duration.Input | undefined
    readonly summaryInterval?: Duration.Input | undefined
    readonly maxClients?: number | undefined
  }
): Effect.Effect<AuthGuard, never, PrometheusRegistry | Scope.Scope> =>
  Effect.gen(function*() {
    const service = options?.service ?? (yield* ServiceName)
    return yield* internalAuthGuard.make({ ...options, service })
  })

/**
 * The endpoints as an HTTP app, to mount in a server of your own. Fails when
 * an admin token is easy to guess (`checkAdminToken`). With `admin`, the
 * token guard (`admin.guard`, else one made here) runs in the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeApp: (
  options?: Pick<Options, "service" | "admin" | "readiness" | "metricsMaxAge" | "healthDetails">
) => Effect.Effect<
  Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>,
  HttpOptionsError,
  Registry.Registry | PrometheusRegistry | Scope.Scope
> = Effect.fnUntraced(function*(
  options?: Pick<Options, "service" | "admin" | "readiness" | "metricsMaxAge" | "healthDetails">
) {
  const breakers = yield* Registry.Registry
  const registry = yield* PrometheusRegistry
  const service = options?.service ?? (yield* ServiceName)
  const readiness = options?.readiness ?? {}
  if (options?.admin !== undefined) yield* checkAdminToken(options.admin.token)

  const exposition = internalRoutes.cachedExposition(
    registry,
    Duration.toMillis(Duration.fromInputUnsafe(options?.metricsMaxAge ?? "1 second"))
  )

  const routes = new Map<string, Effect.Effect<HttpServerResponse.HttpServerResponse>>([
    [
      "/health",
      Effect.gen(function*() {
        const report = health(service, yield* breakers.snapshots)
        const details = options?.healthDetails === undefined ? {} : yield* options.healthDetails
        return HttpServerResponse.jsonUnsafe({ ...report, ...details }, {
          status: statusCode(report),
          headers: noStore
        })
      })
    ],
    ["/live", Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "alive" }, { headers: noStore }))],
    [
      "/ready",
      Effect.map(breakers.snapshots, (snapshots) => {
        const answer = ready(readiness, snapshots)
        return HttpServerResponse.jsonUnsafe(answer, {
          status: answer.status === "ready" ? 200 : 503,
          headers: noStore
        })
      })
    ],
    [
      "/metrics",
      exposition.pipe(
        Effect.map((text) => HttpServerResponse.text(text, { contentType: registry.contentType, headers: noStore })),
        Effect.catch(() =>
          Effect.succeed(HttpServerResponse.text("metrics collection failed\n", { status: 500, headers: noStore }))
        )
      )
    ]
  ])

  const admin = options?.admin === undefined ? undefined : internalAdmin.make(
    breakers,
    options.admin.token,
    options.admin.guard ?? (yield* internalAuthGuard.make({ service }))
  )

  return HttpServerRequest.HttpServerRequest.use((request) =>
    internalRoutes.dispatch(request, requestPath(request), routes, admin)
  )
})

/**
 * Serves the endpoints on a Node HTTP server (`makeNodeServer`) that lives as
 * long as the layer. The `HttpServer` it provides tells the bound address
 * (useful with port 0).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError | HttpOptionsError,
  Registry.Registry | PrometheusRegistry
> =>
  Layer.unwrap(Effect.map(Effect.flatMap(makeApp(options), HttpMetrics.instrument), (app) => HttpServer.serve(app)))
    .pipe(
      Layer.provideMerge(NodeHttpServer.layerServer(() => makeNodeServer(options), {
        port: options?.port ?? DEFAULT_PORT,
        ...(options?.host === undefined ? {} : { host: options.host })
      }))
    )

/**
 * `layer` with options read from `Config`, e.g.
 * `{ port: Config.Int("HTTP_PORT").pipe(Config.withDefault(8000)) }`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError | HttpOptionsError | Config.ConfigError,
  Registry.Registry | PrometheusRegistry
> => Layer.unwrap(Effect.map(Config.unwrap(options), layer))

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

const noStore = internalAdmin.noStore
const { configuredName, headerName, WILDCARD_HOSTS } = internalRoutes
