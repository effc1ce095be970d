/**
 * The outbox's admin routes, behind the admin token (served only when `ADMIN_TOKEN` is set):
 *
 * - `POST /admin/outbox/{ticketId}/requeue`: puts a dead ticket back to pending, once the reason it
 *   died for is fixed; 200 `{ id, outcome: "requeued" }` (or `"already pending"` for the same request
 *   again before the relay published it), 404 for an unknown id, 409 when the ticket is not dead
 *   (its `state` in the body);
 * - `POST /admin/outbox/requeue-dead`: every dead ticket back to pending; 200 `{ requeued: <count> }`.
 *
 * 401 without the token (before anything else), 405 for another method, 503 with `Retry-After` when
 * `mongodb_client` refuses, 502 when MongoDB fails (the message in the log). Every action is logged
 * with who asked.
 */
import { Http } from "@neural-hive/observability"
import type { Outbox } from "@neural-hive/outbox"
import { Duration, Effect, Option, type Redacted } from "effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"

const REQUEUE_PATH = /^\/admin\/outbox\/([A-Za-z0-9_.:-]{1,256})\/requeue$/
const REQUEUE_ALL_PATH = "/admin/outbox/requeue-dead"

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: { "cache-control": "no-store", ...headers } })

const cut = (text: string) => text.length <= 128 ? text : `${text.slice(0, 128)}...`

/** Whether `path` is one of these routes' (the caller routes `/admin/outbox/...` here). */
export const isOutboxAdminPath = (path: string): boolean => path.startsWith("/admin/outbox/")

export const make = (
  relay: Outbox.OutboxRelay["Service"],
  token: Redacted.Redacted<string>,
  guard: Http.AuthGuard
) => {
  const authorized = Http.bearerAuthorization(token)
  return (
    request: HttpServerRequest.HttpServerRequest,
    path: string
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
    // 429 or 401 first, from the budget the admin routes and the fault switch share (`Http.makeAuthGuard`).
    Effect.flatMap(
      guard.check(request, {
        route: path === REQUEUE_ALL_PATH ? REQUEUE_ALL_PATH : "/admin/outbox/{ticketId}/requeue",
        event: "outbox_admin_denied",
        path,
        authorized
      }),
      (denied) => denied !== undefined ? Effect.succeed(denied) : serve(request, path)
    )

  function serve(
    request: HttpServerRequest.HttpServerRequest,
    path: string
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    if (request.method !== "POST") return Effect.succeed(json({ error: "method not allowed" }, 405, { allow: "POST" }))
    const who = {
      path: cut(path),
      remote_address: cut(Option.getOrElse(request.remoteAddress, () => "unknown")),
      user_agent: cut(request.headers["user-agent"] ?? "unknown")
    }
    const match = REQUEUE_PATH.exec(path)
    const action = path === REQUEUE_ALL_PATH
      ? Effect.map(relay.requeueAllDead, (requeued) => json({ requeued }))
      : match === null
      ? Effect.succeed(json({ error: "not found" }, 404))
      : relay.requeue(match[1]!).pipe(
        Effect.map((outcome) =>
          json({ id: match[1], outcome: outcome === "Requeued" ? "requeued" : "already pending", state: "pending" })
        ),
        Effect.catchTag("OutboxRequeueError", (error) =>
          Effect.succeed(
            error.reason === "NotFound"
              ? json({ error: `no ticket ${error.id}` }, 404)
              : json({ error: `ticket ${error.id} is not dead`, state: error.state ?? null }, 409)
          ))
      )
    return action.pipe(
      Effect.catchTags({
        CircuitBreakerError: (error) =>
          Effect.succeed(
            json({ error: `${error.circuit} is not closed: retry later` }, 503, {
              "retry-after": String(
                Duration.isFinite(error.retryAfter) ? Math.max(1, Math.ceil(Duration.toSeconds(error.retryAfter))) : 1
              )
            })
          ),
        MongoStoreError: (error) =>
          Effect.as(
            Effect.logWarning("outbox_admin_failed").pipe(
              Effect.annotateLogs({ ...who, reason: error.reason, message: error.message })
            ),
            json({ error: "MongoDB failed", reason: error.reason }, 502)
          )
      }),
      Effect.tap((response) =>
        Effect.logWarning("outbox_admin").pipe(Effect.annotateLogs({ ...who, status: String(response.status) }))
      )
    )
  }
}
