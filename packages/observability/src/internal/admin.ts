/**
 * The admin routes of the HTTP layer (`POST /admin/breakers/<name>/<action>`):
 * bearer-token check, rate-limited logging of denials, and the manual control
 * of a breaker of the registry.
 *
 * @internal
 */
import { Registry } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash, timingSafeEqual } from "node:crypto"
import type { AdminAction } from "../Http.ts"
import type { Guard } from "./authGuard.ts"
import { truncate } from "./authGuard.ts"
import { modeLabel, stateLabel } from "./labels.ts"

/** Answers about breakers are never cached by a proxy. */
export const noStore = { "cache-control": "no-store" }

/** The `route` label of the admin routes (`HttpMetrics.defaultRoutes`). */
const ADMIN_ROUTE = "/admin/breakers/{name}/{action}"

const ADMIN_PATH = /^\/admin\/breakers\/([A-Za-z0-9_.:-]{1,64})\/(force-open|disable|reset)$/

const digest = (text: string) => createHash("sha256").update(text).digest()

/** A check of an `Authorization` header against the token, in constant time whatever the header. */
export const bearerAuthorization = (
  token: Redacted.Redacted<string>
): (authorization: string | undefined) => boolean => {
  const expected = digest(Redacted.value(token))
  return (header) =>
    header !== undefined && header.startsWith("Bearer ") && timingSafeEqual(digest(header.slice(7)), expected)
}

/** An admin request refused after authentication: logged every time (only a token holder gets here). */
const refused = (
  who: Record<string, string>,
  status: number,
  body: unknown,
  headers: Record<string, string> = {}
) =>
  Effect.as(
    Effect.logWarning("circuit_breaker_manual_control_refused").pipe(
      Effect.annotateLogs({ ...who, status: String(status) })
    ),
    HttpServerResponse.jsonUnsafe(body, { status, headers: { ...noStore, ...headers } })
  )

/** The `/admin/...` routes behind the bearer token, judged by `guard` (throttled, counted, logged). */
export const make = (breakers: Registry.Registry["Service"], token: Redacted.Redacted<string>, guard: Guard) => {
  const authorized = bearerAuthorization(token)

  const control = (
    request: HttpServerRequest.HttpServerRequest,
    match: RegExpExecArray | null,
    who: Record<string, string>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    if (request.method !== "POST") return refused(who, 405, { error: "method not allowed" }, { allow: "POST" })
    if (match === null) return refused(who, 404, { error: "not found" })
    const circuit = match[1]!
    const action = match[2] as AdminAction
    return Effect.gen(function*() {
      const found = yield* breakers.get(circuit)
      if (Option.isNone(found)) return yield* refused(who, 404, { error: `no breaker named ${circuit}` })
      const breaker = found.value
      yield* action === "force-open" ? breaker.forceOpen : action === "disable" ? breaker.disable : breaker.reset
      const snapshot = yield* breaker.snapshot
      yield* Effect.logWarning("circuit_breaker_manual_control").pipe(
        Effect.annotateLogs({
          ...who,
          circuit,
          action,
          state: stateLabel[snapshot.state],
          mode: modeLabel[snapshot.mode]
        })
      )
      return HttpServerResponse.jsonUnsafe(
        { circuit, action, state: stateLabel[snapshot.state], mode: modeLabel[snapshot.mode] },
        { headers: noStore }
      )
    })
  }

  return (
    request: HttpServerRequest.HttpServerRequest,
    path: string
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    const match = ADMIN_PATH.exec(path)
    const who: Record<string, string> = {
      method: truncate(request.method),
      path: truncate(path),
      remote_address: truncate(Option.getOrElse(request.remoteAddress, () => "unknown")),
      user_agent: truncate(request.headers["user-agent"] ?? "unknown")
    }
    return Effect.flatMap(
      // 429 or 401 before anything else, so an outsider learns nothing about which routes exist.
      guard.check(request, { route: ADMIN_ROUTE, event: "circuit_breaker_manual_control_denied", path, authorized }),
      (denied) => denied === undefined ? control(request, match, who) : Effect.succeed(denied)
    )
  }
}
