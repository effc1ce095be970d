/**
 * The service's HTTP surface on one port (8000 by default):
 * - `POST /plans` `{ id, steps }`: runs the plan; 202 accepted, 503 with
 *   `Retry-After` when a fail-fast breaker rejected it, 502 when a dependency
 *   failed, 400 for a bad plan, 413 for a body over 64 KiB;
 * - `POST /faults/{kafka|temporal|redis|mongodb}/{up|down|slow}`: the embedded
 *   mode's fault switch (absent with real servers);
 * - everything of `@neural-hive/observability`: `/health`, `/live`, `/metrics`,
 *   and the admin routes when an admin token is configured;
 * - `GET /` (or `/status`): the live breaker board, fed by `/events` (`Board`).
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Board, Http, HttpMetrics, Metrics } from "@neural-hive/observability"
import type { CircuitBreaker, ResilienceConfig } from "@neural-hive/resilience"
import { ByteSize, Effect, Layer, Option, type Redacted, type Scope } from "effect"
import {
  HttpIncomingMessage,
  HttpServer,
  type HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { type FaultMode, faultModes, Faults } from "./Embedded.ts"
import { decodePlan, Orchestrator, type PlanReport } from "./Orchestrator.ts"

const MAX_BODY_BYTES = 64 * 1024

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: { "cache-control": "no-store", ...headers } })

const pathOf = (url: string): string => {
  try {
    return new URL(url, "http://localhost").pathname
  } catch {
    return url
  }
}

/** 202 accepted; 503 + Retry-After when a breaker said no; 502 when a dependency failed. */
export const respond = (report: PlanReport) => {
  if (report.accepted) return json(report, 202)
  const steps = Object.values(report.steps)
  const retryAfter = steps.flatMap((s) =>
    s.status === "rejected" && s.retryAfterSeconds !== null ? [s.retryAfterSeconds] : []
  )
  if (steps.some((s) => s.status === "rejected")) {
    return json(report, 503, retryAfter.length > 0 ? { "retry-after": String(Math.max(1, ...retryAfter)) } : {})
  }
  return json(report, 502)
}

const FAULT_PATH = /^\/faults\/(kafka|temporal|redis|mongodb)\/(up|down|slow)$/

type App = Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>

export const makeApp = (options: {
  readonly service: string
  readonly admin?: Redacted.Redacted<string> | undefined
  readonly faultSwitch?: boolean | undefined
}): Effect.Effect<App, never, CircuitBreaker.Registry | Metrics.PrometheusRegistry | Orchestrator | Scope.Scope> =>
  Effect.gen(function*() {
    const observability = yield* Http.makeApp({
      service: options.service,
      ...(options.admin === undefined ? {} : { admin: { token: options.admin } })
    })
    const orchestrator = yield* Orchestrator
    // The live board: GET / (or /status) and its event stream /events.
    const board = yield* Board.make({ service: options.service })
    const faults = options.faultSwitch === true ? yield* Effect.serviceOption(Faults) : Option.none()

    const plans = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        if (request.method !== "POST") return json({ error: "method not allowed" }, 405, { allow: "POST" })
        const body = yield* request.json.pipe(
          Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_BODY_BYTES)),
          Effect.result
        )
        if (body._tag === "Failure") {
          const tooLarge = body.failure.reason._tag === "RequestParseError" &&
            body.failure.reason.reason === "BodyTooLarge"
          return tooLarge
            ? json({ error: `the body is over ${MAX_BODY_BYTES} bytes` }, 413)
            : json({ error: "the body is not valid JSON" }, 400)
        }
        const plan = yield* Effect.result(decodePlan(body.success))
        if (plan._tag === "Failure") return json({ error: plan.failure.message }, 400)
        return respond(yield* orchestrator.submit(plan.success))
      })

    const setFault = (request: HttpServerRequest.HttpServerRequest, path: string) =>
      Effect.gen(function*() {
        if (Option.isNone(faults)) return json({ error: "not found" }, 404)
        const match = FAULT_PATH.exec(path)
        if (match === null) return json({ error: "not found" }, 404)
        if (request.method !== "POST") return json({ error: "method not allowed" }, 405, { allow: "POST" })
        const dependency = match[1] as ResilienceConfig.Dependency
        yield* faults.value.set(dependency, match[2] as FaultMode)
        return json({ faults: faults.value.all() })
      })

    return HttpServerRequest.HttpServerRequest.use((request) => {
      const path = pathOf(request.url)
      const boardResponse = board.handle(request, path)
      if (boardResponse !== undefined) return boardResponse
      if (path === "/plans") return plans(request)
      if (path.startsWith("/faults/") || path === "/faults") {
        return path === "/faults" && Option.isSome(faults) && request.method === "GET"
          ? Effect.succeed(json({ faults: faults.value.all(), modes: faultModes }))
          : setFault(request, path)
      }
      return observability
    })
  })

/** Serves the app on `port` (0: a free port). */
export const layer = (options: {
  readonly port: number
  readonly host: string
  readonly service: string
  readonly admin?: Redacted.Redacted<string> | undefined
  readonly faultSwitch?: boolean | undefined
}): Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError,
  CircuitBreaker.Registry | Metrics.PrometheusRegistry | Orchestrator
> =>
  Layer.unwrap(Effect.map(Effect.flatMap(makeApp(options), HttpMetrics.instrument), (app) => HttpServer.serve(app)))
    .pipe(
      Layer.provideMerge(NodeHttpServer.layerServer(() => Http.makeNodeServer(), {
        port: options.port,
        host: options.host
      }))
    )
