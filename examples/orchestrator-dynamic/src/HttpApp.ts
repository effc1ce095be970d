/**
 * The service's HTTP surface on one port (8000 by default):
 * - `POST /plans` `{ id, steps }` with `content-type: application/json`: runs
 *   the plan; 202 accepted (a retry of an accepted plan too), 409 when the id
 *   is taken by a plan with other steps (both hashes in the body), 503 with
 *   `Retry-After` when a fail-fast breaker rejected it, 502 when a dependency
 *   failed (the step and a reason class, the details in the log), 400 for a bad plan, 413 for a body over 64 KiB (also
 *   announced by `Content-Length`, so `Expect: 100-continue` gets 413, not 100),
 *   415 for another content type;
 * - `POST /faults/{kafka|temporal|redis|mongodb}/{up|down|slow}` with
 *   `content-type: application/json`: the embedded dependencies' fault switch,
 *   only with `FAULT_SWITCH=on`, behind the admin token when one is set, and
 *   only for dependencies that run embedded (409 for a real one);
 * - everything of `@neural-hive/observability`: `/health`, `/live`, `/ready`,
 *   `/metrics`, and the admin routes when an admin token is configured;
 * - with an admin token, `POST /admin/outbox/{ticketId}/requeue` and
 *   `POST /admin/outbox/requeue-dead`: dead tickets back to pending (`OutboxAdmin`);
 * - `GET /` (or `/status`): the live breaker board, fed by `/events` (`Board`).
 *
 * The routes a browser uses (`/`, `/status`, `/events`, `/faults*`, `/admin*`)
 * answer 421 unless the `Host` header names this service: a loopback name, the
 * bound host, or one of `allowedHosts` (`HTTP_ALLOWED_HOSTS`), so a DNS-rebound
 * page cannot reach them. `/plans`, `/health`, `/live`, `/ready` and `/metrics`
 * answer any `Host` (probes and Prometheus use the pod's IP). A client that
 * failed the admin token 10 times is answered 429 (`Http.makeAuthGuard`, one
 * budget for the admin routes and the fault switch). At shutdown the board's
 * event streams end first, so an open board does not hold the server.
 *
 * Every path is checked once, before routing (`Http.requestPath`): one with
 * `..`, `.`, `//` or a backslash, plain or percent-encoded, is a 400.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Fleet } from "@neural-hive/fleet"
import { Board, Http, HttpMetrics, Metrics } from "@neural-hive/observability"
import { Outbox } from "@neural-hive/outbox"
import { Registry } from "@neural-hive/resilience"
import { ByteSize, Clock, Effect, Layer, Option, type Redacted, type Scope } from "effect"
import {
  HttpIncomingMessage,
  HttpServer,
  type HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { type FaultMode, faultModes, Faults } from "./Embedded.ts"
import { decodePlan, Orchestrator, type PlanReport } from "./Orchestrator.ts"
import type * as OrchestratorConfig from "./OrchestratorConfig.ts"
import * as OutboxAdmin from "./OutboxAdmin.ts"

const MAX_BODY_BYTES = 64 * 1024

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: { "cache-control": "no-store", ...headers } })

/**
 * 202 accepted (also a retry of an accepted plan); 409 when another plan (other steps) is stored under the
 * id; 503 + Retry-After when a breaker said no; 502 when a dependency failed.
 */
export const respond = (report: PlanReport) => {
  if (report.accepted) return json(report, 202)
  const steps = Object.values(report.steps)
  // Retrying cannot help: the id is taken by another plan, whose hash the persistence step names.
  if (steps.some((s) => s.status === "conflict")) return json(report, 409)
  const retryAfter = steps.flatMap((s) =>
    s.status === "rejected" && s.retryAfterSeconds !== null ? [s.retryAfterSeconds] : []
  )
  if (steps.some((s) => s.status === "rejected")) {
    return json(report, 503, retryAfter.length > 0 ? { "retry-after": String(Math.max(1, ...retryAfter)) } : {})
  }
  return json(report, 502)
}

/**
 * A JSON route's content type: anything else is a 415. It also keeps cross-site pages out: a form or a
 * `no-cors` fetch can only send `text/plain`, form or multipart bodies without a CORS preflight.
 */
const isJson = (request: HttpServerRequest.HttpServerRequest) =>
  (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase() === "application/json"

const unsupportedMediaType = () => json({ error: "content-type must be application/json" }, 415)

const FAULT_PATH = /^\/faults\/(kafka|temporal|redis|mongodb)\/(up|down|slow)$/

type App = Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>

/** The fault switch's settings: which dependencies it may touch. */
export interface FaultSwitch {
  readonly embedded: ReadonlyArray<OrchestratorConfig.Dependency>
}

export interface Options {
  readonly service: string
  /** The bearer token of the admin routes and of the fault switch (at least 16 characters). */
  readonly admin?: Redacted.Redacted<string> | undefined
  /** Off unless given (`FAULT_SWITCH=on`). */
  readonly faultSwitch?: FaultSwitch | undefined
  readonly readiness?: Http.Readiness | undefined
  /** The address the server is bound to: a name the browser routes accept, unless a wildcard (`0.0.0.0`). */
  readonly host?: string | undefined
  /** More names the browser routes accept in `Host` (`HTTP_ALLOWED_HOSTS`), e.g. an ingress's host name. */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /**
   * The drain at shutdown (`DRAIN_SECONDS`): once the layer starts closing, `/ready` answers 503 and
   * every route goes on serving for `millis`, so a load balancer stops sending before the server closes.
   * `skip` says when not to wait (the example: a Ctrl-C). Default: no drain.
   */
  readonly drain?: { readonly millis: number; readonly skip?: (() => boolean) | undefined } | undefined
  /** Whether the replica is draining; set by the layer (`drain`), read by `/ready`. */
  readonly draining?: { on: boolean } | undefined
}

interface Built {
  readonly app: App
  /** Ends the board's open event streams. */
  readonly closeStreams: Effect.Effect<void>
}

export const makeApp = (
  options: Options
): Effect.Effect<
  App,
  Http.HttpOptionsError,
  Registry.Registry | Metrics.PrometheusRegistry | Orchestrator | Outbox.OutboxRelay | Scope.Scope
> => Effect.map(build(options), (built) => built.app)

/** `/health`'s outbox details: the tickets stored but not yet published (a Kafka outage queues them), and those Kafka refused (dead). */
const outboxHealth = (relay: Outbox.OutboxRelay["Service"]) =>
  Effect.map(Effect.zip(relay.stats, Clock.currentTimeMillis), ([stats, now]) => ({
    outbox: {
      pending: stats.pending,
      oldestPendingSeconds: Math.round(stats.oldestPendingMillis / 100) / 10,
      published: stats.published,
      dead: stats.dead,
      oldestDead: stats.oldestDead === undefined ? null : {
        id: stats.oldestDead.id,
        reason: stats.oldestDead.reason,
        deadSeconds: Math.round(Outbox.oldestDeadMillis(stats, now) / 100) / 10
      }
    }
  }))

/** `POST /plans`: a JSON body of at most `MAX_BODY_BYTES`, decoded into a plan, then submitted. */
const plansRoute = (orchestrator: Orchestrator["Service"]) => (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    if (request.method !== "POST") return json({ error: "method not allowed" }, 405, { allow: "POST" })
    if (!isJson(request)) return unsupportedMediaType()
    // Judged on the announced length first, so `Expect: 100-continue` gets its 413 without a 100 Continue.
    if (Number(request.headers["content-length"] ?? 0) > MAX_BODY_BYTES) return tooLarge()
    const body = yield* request.json.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_BODY_BYTES)),
      Effect.result
    )
    if (body._tag === "Failure") {
      return body.failure.reason._tag === "RequestParseError" && body.failure.reason.reason === "BodyTooLarge"
        ? tooLarge()
        : json({ error: "the body is not valid JSON" }, 400)
    }
    const plan = yield* Effect.result(decodePlan(body.success))
    if (plan._tag === "Failure") return json({ error: plan.failure.message }, 400)
    return respond(yield* orchestrator.submit(plan.success))
  })

/** The fault switch's routes (`FAULT_SWITCH=on`): `GET /faults`, `POST /faults/{dependency}/{mode}`, behind the token. */
const faultSwitchRoute = (ctx: {
  readonly options: Options
  readonly guard: Http.AuthGuard
  readonly authorized: (authorization: string | undefined) => boolean
  readonly embedded: ReadonlySet<string>
}) =>
(request: HttpServerRequest.HttpServerRequest, path: string, switch_: Faults["Service"]) =>
  Effect.gen(function*() {
    // 429 or 401 first: without the token nothing about the switch is told.
    if (ctx.options.admin !== undefined) {
      const denied = yield* ctx.guard.check(request, {
        route: path === "/faults" ? "/faults" : "/faults/{dependency}/{mode}",
        event: "fault_switch_denied",
        path,
        authorized: ctx.authorized
      })
      if (denied !== undefined) return denied
    }
    if (path === "/faults") {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return json({ error: "method not allowed" }, 405, { allow: "GET, HEAD" })
      }
      return json({ faults: switch_.all(), embedded: [...ctx.embedded], modes: faultModes })
    }
    if (request.method !== "POST") return json({ error: "method not allowed" }, 405, { allow: "POST" })
    if (!isJson(request)) return unsupportedMediaType()
    const match = FAULT_PATH.exec(path)
    if (match === null) return json({ error: "not found" }, 404)
    const dependency = match[1] as OrchestratorConfig.Dependency
    if (!ctx.embedded.has(dependency)) {
      return json({ error: `${dependency} is a real server here: the fault switch drives embedded ones only` }, 409)
    }
    yield* switch_.set(dependency, match[2] as FaultMode)
    return json({ faults: switch_.all() })
  })

const build = (
  options: Options
): Effect.Effect<
  Built,
  Http.HttpOptionsError,
  Registry.Registry | Metrics.PrometheusRegistry | Orchestrator | Outbox.OutboxRelay | Scope.Scope
> =>
  Effect.gen(function*() {
    if (options.admin !== undefined) yield* Http.checkAdminToken(options.admin, "ADMIN_TOKEN")
    const relay = yield* Outbox.OutboxRelay
    // One budget of failed token attempts per client for the admin routes and the fault switch.
    const guard = yield* Http.makeAuthGuard({ service: options.service })
    const hostAllowed = Http.hostFilter({ host: options.host, allowed: options.allowedHosts })
    const observability = yield* Http.makeApp({
      service: options.service,
      ...(options.admin === undefined ? {} : { admin: { token: options.admin, guard } }),
      readiness: { ...options.readiness, draining: () => options.draining?.on === true },
      healthDetails: outboxHealth(relay)
    })
    const orchestrator = yield* Orchestrator
    // The live board: GET / (or /status) and its event stream /events, with the outbox's backlog and, when the
    // fleet is on (FLEET_REDIS_URL), every replica's view of each circuit.
    const fleet = yield* Effect.serviceOption(Fleet.Fleet)
    const board = yield* Board.make({
      service: options.service,
      backlog: relay.stats,
      fleet: Option.isSome(fleet) ? fleet.value.views : undefined
    })
    const faults = options.faultSwitch === undefined ? Option.none() : yield* Effect.serviceOption(Faults)
    const embedded = new Set(options.faultSwitch?.embedded ?? [])
    const authorized = options.admin === undefined ? () => true : Http.bearerAuthorization(options.admin)
    const misdirected = json({ error: "the Host header does not name this service (see HTTP_ALLOWED_HOSTS)" }, 421)
    const outboxAdmin = options.admin === undefined ? undefined : OutboxAdmin.make(relay, options.admin, guard)

    const plans = plansRoute(orchestrator)
    const faultSwitch = faultSwitchRoute({ options, guard, authorized, embedded })

    const app: App = HttpServerRequest.HttpServerRequest.use((request) => {
      const path = Http.requestPath(request)
      if (path === undefined) return observability
      if (isBrowserRoute(path) && !hostAllowed(request.headers["host"])) return Effect.succeed(misdirected)
      const boardResponse = board.handle(request, path)
      if (boardResponse !== undefined) return boardResponse
      if (path === "/plans") return plans(request)
      if (outboxAdmin !== undefined && OutboxAdmin.isOutboxAdminPath(path)) return outboxAdmin(request, path)
      if (Option.isSome(faults) && (path === "/faults" || path.startsWith("/faults/"))) {
        return faultSwitch(request, path, faults.value)
      }
      return observability
    })
    return { app, closeStreams: board.close }
  })

/** At shutdown: `/ready` turns 503 at once, then the routes go on serving for the drain period. */
const drain = (options: Options, draining: { on: boolean }) =>
  Effect.suspend(() => {
    draining.on = true
    const millis = options.drain?.millis ?? 0
    if (millis <= 0 || options.drain?.skip?.() === true) return Effect.void
    return Effect.logInfo("service_draining").pipe(
      Effect.annotateLogs({ drain_seconds: millis / 1000 }),
      Effect.andThen(Effect.sleep(millis)),
      Effect.andThen(Effect.logInfo("service_drained"))
    )
  })

/** The routes a browser uses, checked against DNS rebinding; the probes and `/metrics` are not. */
const isBrowserRoute = (path: string) =>
  Board.paths.includes(path) || path === "/faults" || path.startsWith("/faults/") || path === "/admin" ||
  path.startsWith("/admin/")

const tooLarge = () => json({ error: `the body is over ${MAX_BODY_BYTES} bytes` }, 413)

/** Serves the app on `port` (0: a free port). */
export const layer = (
  options: Options & {
    readonly port: number
    readonly host: string
  }
): Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError | Http.HttpOptionsError,
  Registry.Registry | Metrics.PrometheusRegistry | Orchestrator | Outbox.OutboxRelay
> =>
  Layer.unwrap(Effect.gen(function*() {
    const draining = { on: false }
    const { app, closeStreams } = yield* build({ ...options, draining })
    const served = HttpServer.serve(yield* HttpMetrics.instrument(app))
    // Built after the server, so released before it, in this order: the drain (/ready at 503 while every
    // route still serves), then the board's event streams end, then the server waits for its connections.
    return Layer.effectDiscard(
      Effect.addFinalizer(() => closeStreams).pipe(Effect.andThen(Effect.addFinalizer(() => drain(options, draining))))
    ).pipe(Layer.provideMerge(served))
  }))
    .pipe(
      Layer.provideMerge(NodeHttpServer.layerServer(() => Http.makeNodeServer(), {
        port: options.port,
        host: options.host
      }))
    )
