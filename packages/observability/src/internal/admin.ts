/**
 * The admin routes of the HTTP layer (`POST /admin/breakers/<name>/<action>`):
 * bearer-token check, rate-limited logging of denials, and the manual control
 * of a breaker of the registry.
 *
 * @internal
 */
import type { CircuitBreaker } from "@neural-hive/resilience"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash, timingSafeEqual } from "node:crypto"
import type { AdminAction } from "../Http.ts"
import { modeLabel, stateLabel } from "./labels.ts"

/** Answers about breakers are never cached by a proxy. */
export const noStore = { "cache-control": "no-store" }

const ADMIN_PATH = /^\/admin\/breakers\/([A-Za-z0-9_.:-]{1,64})\/(force-open|disable|reset)$/

/** Logged header values are cut here: a client chooses them. */
const MAX_LOGGED_CHARS = 128

/** Denials logged per minute; the rest are counted in one line when the minute ends. */
const DENIALS_LOGGED_PER_MINUTE = 10

const truncate = (text: string): string =>
  text.length <= MAX_LOGGED_CHARS ? text : `${text.slice(0, MAX_LOGGED_CHARS)}...(${text.length} chars)`

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

/** The `/admin/...` routes behind the bearer token. */
export const make = (breakers: CircuitBreaker.Registry["Service"], token: Redacted.Redacted<string>) => {
  const authorized = bearerAuthorization(token)
  const denials = { windowStart: Number.NEGATIVE_INFINITY, logged: 0, suppressed: 0 }

  const logDenied = (who: Record<string, string>) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      let summary: Effect.Effect<void> = Effect.void
      if (now - denials.windowStart >= 60_000) {
        if (denials.suppressed > 0) {
          summary = Effect.logWarning("circuit_breaker_manual_control_denied_suppressed").pipe(
            Effect.annotateLogs({ suppressed: denials.suppressed })
          )
        }
        denials.windowStart = now
        denials.logged = 0
        denials.suppressed = 0
      }
      if (denials.logged >= DENIALS_LOGGED_PER_MINUTE) {
        denials.suppressed++
        return summary
      }
      denials.logged++
      return Effect.andThen(
        summary,
        Effect.logWarning("circuit_breaker_manual_control_denied").pipe(Effect.annotateLogs(who))
      )
    })

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
    // 401 before anything else, so an outsider learns nothing about which routes exist.
    if (!authorized(request.headers["authorization"])) {
      return Effect.as(
        logDenied(who),
        HttpServerResponse.jsonUnsafe({ error: "unauthorized" }, {
          status: 401,
          headers: { "www-authenticate": "Bearer", ...noStore }
        })
      )
    }
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
}
