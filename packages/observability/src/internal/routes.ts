/**
 * The routing of the endpoints app (`Http.makeApp`): the metrics exposition
 * rendered once per `metricsMaxAge`, the dispatch of a request by path and
 * method, and the names a `Host` header is compared by.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { Registry } from "../Metrics.ts"

/**
 * The exposition of `registry`: one rendering serves every scrape for `maxAgeMillis`, and every scrape while it
 * runs, so repeated or concurrent scrapes (a flood) cost at most one rendering per period, while Prometheus,
 * scraping every 15 s or so, sees fresh data.
 */
export const cachedExposition = (registry: Registry, maxAgeMillis: number): Effect.Effect<string, unknown> => {
  let rendering: { readonly at: number; readonly text: Promise<string>; settled: boolean } | undefined
  return Effect.flatMap(Clock.currentTimeMillis, (now) => {
    if (rendering === undefined || (rendering.settled && now - rendering.at >= maxAgeMillis)) {
      const current = { at: now, text: registry.metrics(), settled: false }
      const settle = () => {
        current.settled = true
      }
      // A failed rendering is not kept: the next scrape tries again.
      current.text.then(settle, () => {
        settle()
        if (rendering === current) rendering = undefined
      })
      rendering = current
    }
    const text = rendering.text
    return Effect.tryPromise(() => text)
  })
}

const badPath = HttpServerResponse.jsonUnsafe(
  { error: "the path is not canonical (no '.', '..', '//', backslash, or encoded '.', '/', '\\')" },
  { status: 400 }
)

/**
 * The answer to a request routed by `path` (`undefined`: not canonical, 400): the admin routes, then the GET
 * routes (404 for another path, 405 for another method; `HEAD` is served like `GET`).
 */
export const dispatch = (
  request: HttpServerRequest.HttpServerRequest,
  path: string | undefined,
  routes: ReadonlyMap<string, Effect.Effect<HttpServerResponse.HttpServerResponse>>,
  admin:
    | ((
      request: HttpServerRequest.HttpServerRequest,
      path: string
    ) => Effect.Effect<HttpServerResponse.HttpServerResponse>)
    | undefined
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  if (path === undefined) return Effect.succeed(badPath)
  if (admin !== undefined && (path === "/admin" || path.startsWith("/admin/"))) return admin(request, path)
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
}

/** Names a server binds to that no `Host` header carries. */
export const WILDCARD_HOSTS: ReadonlySet<string> = new Set(["0.0.0.0", "[::]"])

/** A configured name as compared: lower case, no final dot, an IPv6 address in brackets. */
export const configuredName = (text: string): string => {
  const name = text.trim().toLowerCase().replace(/\.$/, "")
  return name.includes(":") && !name.startsWith("[") ? `[${name}]` : name
}

/** The name of a `Host` header as compared: lower case, no final dot, the port left out. */
export const headerName = (header: string): string => {
  const text = header.trim().toLowerCase()
  const name = text.startsWith("[")
    ? text.slice(0, text.indexOf("]") + 1)
    : text.indexOf(":") === text.lastIndexOf(":") && text.includes(":")
    ? text.slice(0, text.indexOf(":"))
    : text
  return name.replace(/\.$/, "")
}
