/**
 * The service's operational HTTP endpoints, on `@effect/platform-node`.
 *
 * | route | answer |
 * |---|---|
 * | `GET /health` | JSON of every breaker; 200 while every fail-fast breaker is CLOSED, else 503 |
 * | `GET /live` | 200 while the process runs |
 * | `GET /metrics` | the Prometheus exposition of the `PrometheusRegistry` |
 *
 * Other paths answer 404; other methods on these paths answer 405 (`HEAD` is
 * served like `GET`). `/health` shows names and states only: no settings, no
 * error messages, nothing a secret could hide in.
 *
 * `status` in `/health` is `ok` (every breaker CLOSED), `degraded` (a fail-open
 * breaker, such as Redis, is not CLOSED: the service works without it, still
 * 200) or `unavailable` (a fail-fast breaker is not CLOSED: 503).
 *
 * **Example** (Serving on port 8000)
 *
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker } from "@neural-hive/resilience"
 * import { Http, Metrics } from "@neural-hive/observability"
 *
 * const Server = Http.layer({ port: 8000 }).pipe(
 *   Layer.provideMerge(Metrics.layer()),
 *   Layer.provideMerge(CircuitBreaker.layerRegistry)
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { CircuitBreaker } from "@neural-hive/resilience"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpServer from "effect/http/HttpServer"
import type * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash, timingSafeEqual } from "node:crypto"
import * as NodeHttp from "node:http"
import * as HttpMetrics from "./HttpMetrics.ts"
import { type ModeLabel, modeLabel, seconds, type StateLabel, stateLabel } from "./internal/labels.ts"
import { PrometheusRegistry } from "./Metrics.ts"
import { ServiceName } from "./ServiceName.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The default port, the seed's.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PORT = 8000

/**
 * @since 0.1.0
 * @category models
 */
export type Status = "ok" | "degraded" | "unavailable"

/**
 * One breaker in `/health`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerHealth {
  readonly name: string
  readonly state: StateLabel
  readonly mode: ModeLabel
  readonly failureMode: CircuitBreaker.FailureMode
  /** Counted failures the trip policy holds now. */
  readonly failures: number
  /** Openings since the breaker was made. */
  readonly trips: number
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
   * with `Authorization: Bearer <token>`. Every use, allowed or denied, is logged.
   */
  readonly admin?: { readonly token: Redacted.Redacted<string> } | undefined
  /** A client still sending its headers after this is answered 408 and cut (default 5 seconds). */
  readonly headersTimeout?: Duration.Input | undefined
  /** A client still sending its request after this is answered 408 and cut (default 10 seconds). */
  readonly requestTimeout?: Duration.Input | undefined
}

/**
 * A Node HTTP server that does not wait on slow clients: headers must arrive
 * within `headersTimeout` and the whole request within `requestTimeout` (Node's
 * own defaults are 60 s and 300 s), idle keep-alive sockets close after 5 s, and
 * one socket serves at most 1,000 requests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeNodeServer = (
  options?: Pick<Options, "headersTimeout" | "requestTimeout">
): NodeHttp.Server => {
  const requestTimeout = Duration.toMillis(Duration.fromInputUnsafe(options?.requestTimeout ?? "10 seconds"))
  const headersTimeout = Math.min(
    requestTimeout,
    Duration.toMillis(Duration.fromInputUnsafe(options?.headersTimeout ?? "5 seconds"))
  )
  const server = NodeHttp.createServer({
    headersTimeout,
    requestTimeout,
    keepAliveTimeout: 5_000,
    // Check the timeouts often enough that a small one is honoured (Node's default checks every 30 s).
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, headersTimeout / 4))
  })
  server.maxRequestsPerSocket = 1_000
  return server
}

/**
 * The manual actions of the admin routes.
 *
 * @since 0.1.0
 * @category models
 */
export type AdminAction = "force-open" | "disable" | "reset"

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

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
      if (snapshot.state !== "Closed") {
        status = snapshot.failureMode === "fail-fast" ? "unavailable" : status === "ok" ? "degraded" : status
      }
      return {
        name: snapshot.name,
        state: stateLabel[snapshot.state],
        mode: modeLabel[snapshot.mode],
        failureMode: snapshot.failureMode,
        failures: snapshot.failures,
        trips: snapshot.totals.trips,
        retryAfterSeconds: seconds(snapshot.retryAfterMillis)
      }
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
 * The endpoints as an HTTP app, to mount in a server of your own.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeApp: (
  options?: Pick<Options, "service" | "admin">
) => Effect.Effect<
  Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>,
  never,
  CircuitBreaker.Registry | PrometheusRegistry
> = Effect.fnUntraced(function*(options?: Pick<Options, "service" | "admin">) {
  const breakers = yield* CircuitBreaker.Registry
  const registry = yield* PrometheusRegistry
  const service = options?.service ?? (yield* ServiceName)

  const routes = new Map<string, Effect.Effect<HttpServerResponse.HttpServerResponse>>([
    [
      "/health",
      Effect.map(breakers.snapshots, (snapshots) => {
        const report = health(service, snapshots)
        return HttpServerResponse.jsonUnsafe(report, { status: statusCode(report), headers: noStore })
      })
    ],
    ["/live", Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "alive" }, { headers: noStore }))],
    [
      "/metrics",
      Effect.tryPromise(() => registry.metrics()).pipe(
        Effect.map((text) => HttpServerResponse.text(text, { contentType: registry.contentType, headers: noStore })),
        Effect.catch(() =>
          Effect.succeed(HttpServerResponse.text("metrics collection failed\n", { status: 500, headers: noStore }))
        )
      )
    ]
  ])

  const admin = options?.admin === undefined ? undefined : makeAdmin(breakers, options.admin.token)

  return HttpServerRequest.HttpServerRequest.use((request) => {
    const path = pathOf(request.url)
    if (admin !== undefined && path.startsWith("/admin/")) return admin(request, path)
    const route = routes.get(path)
    if (route === undefined) {
      return Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "not found" }, { status: 404 }))
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return Effect.succeed(
        HttpServerResponse.jsonUnsafe({ error: "method not allowed" }, { status: 405, headers: { allow: "GET, HEAD" } })
      )
    }
    return route
  })
})

/**
 * Serves the endpoints on a Node HTTP server that lives as long as the layer.
 * The `HttpServer` it provides tells the bound address (useful with port 0).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<HttpServer.HttpServer, HttpServerError.ServeError, CircuitBreaker.Registry | PrometheusRegistry> =>
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
  HttpServerError.ServeError | Config.ConfigError,
  CircuitBreaker.Registry | PrometheusRegistry
> => Layer.unwrap(Effect.map(Config.unwrap(options), layer))

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

const noStore = { "cache-control": "no-store" }

const ADMIN_PATH = /^\/admin\/breakers\/([A-Za-z0-9_.:-]{1,64})\/(force-open|disable|reset)$/

const digest = (text: string) => createHash("sha256").update(text).digest()

const makeAdmin = (breakers: CircuitBreaker.Registry["Service"], token: Redacted.Redacted<string>) => {
  // Compare digests, not strings: equal lengths, and timingSafeEqual leaks nothing about the token.
  const expected = digest(Redacted.value(token))
  const authorized = (header: string | undefined) =>
    header !== undefined && header.startsWith("Bearer ") && timingSafeEqual(digest(header.slice(7)), expected)

  return (
    request: HttpServerRequest.HttpServerRequest,
    path: string
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    const match = ADMIN_PATH.exec(path)
    if (match === null) return Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "not found" }, { status: 404 }))
    const circuit = match[1]!
    const action = match[2] as AdminAction
    const who = {
      circuit,
      action,
      remote_address: Option.getOrElse(request.remoteAddress, () => "unknown"),
      user_agent: request.headers["user-agent"] ?? "unknown"
    }
    if (request.method !== "POST") {
      return Effect.succeed(
        HttpServerResponse.jsonUnsafe({ error: "method not allowed" }, { status: 405, headers: { allow: "POST" } })
      )
    }
    if (!authorized(request.headers["authorization"])) {
      return Effect.logWarning("circuit_breaker_manual_control_denied").pipe(
        Effect.annotateLogs(who),
        Effect.as(
          HttpServerResponse.jsonUnsafe({ error: "unauthorized" }, {
            status: 401,
            headers: { "www-authenticate": "Bearer" }
          })
        )
      )
    }
    return Effect.gen(function*() {
      const found = yield* breakers.get(circuit)
      if (Option.isNone(found)) {
        return HttpServerResponse.jsonUnsafe({ error: `no breaker named ${circuit}` }, { status: 404 })
      }
      const breaker = found.value
      yield* action === "force-open" ? breaker.forceOpen : action === "disable" ? breaker.disable : breaker.reset
      const snapshot = yield* breaker.snapshot
      yield* Effect.logWarning("circuit_breaker_manual_control").pipe(
        Effect.annotateLogs({ ...who, state: stateLabel[snapshot.state], mode: modeLabel[snapshot.mode] })
      )
      return HttpServerResponse.jsonUnsafe(
        { circuit, action, state: stateLabel[snapshot.state], mode: modeLabel[snapshot.mode] },
        { headers: noStore }
      )
    })
  }
}

const pathOf = (url: string): string => {
  try {
    return new URL(url, "http://localhost").pathname
  } catch {
    return url
  }
}
