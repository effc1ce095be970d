/**
 * A live breaker board for people: one self-contained page and its
 * Server-Sent Events stream.
 *
 * | route | answer |
 * |---|---|
 * | `GET /` and `GET /status` | the page: no external assets, a strict Content-Security-Policy (hashes of its one script and one style) |
 * | `GET /events` | `text/event-stream`: a `snapshot` event with every breaker, then one `breaker` event per change |
 * | `HEAD /events` | the stream's headers only, without taking one of the `maxClients` places |
 *
 * The page shows a card per circuit: its state in colour, failure mode,
 * failures, trips, the time until the next probe counting down, and the last
 * transition with its reason. It is fed by the registry's transitions (and by
 * counted failures, at most four updates a second per circuit): the browser
 * never polls. It is read-only; the force-open and reset buttons appear only
 * once an admin token is typed, and call the admin routes of `Http` with it
 * (the token stays in the page's memory).
 *
 * **Example** (Serving the board beside your routes)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { HttpServerRequest, HttpServerResponse } from "effect/http"
 * import { Board } from "@neural-hive/observability"
 *
 * const app = Effect.gen(function*() {
 *   const board = yield* Board.make()
 *   return HttpServerRequest.HttpServerRequest.use((request) =>
 *     board.handle(request) ?? Effect.succeed(HttpServerResponse.text("not found", { status: 404 }))
 *   )
 * })
 * ```
 *
 * @since 0.1.0
 */
import { CircuitBreaker, Registry } from "@neural-hive/resilience"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as PubSub from "effect/PubSub"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { type ModeLabel, modeLabel, reasonLabel, type StateLabel, stateLabel } from "./internal/labels.ts"
import { ServiceName } from "./ServiceName.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * One card of the board, as sent in the event stream.
 *
 * @since 0.1.0
 * @category models
 */
export interface Card {
  readonly name: string
  readonly state: StateLabel
  readonly mode: ModeLabel
  readonly failureMode: CircuitBreaker.FailureMode
  readonly failures: number
  readonly trips: number
  /** Milliseconds until an OPEN breaker admits a probe; 0 when not OPEN; `null` while forced open. */
  readonly retryAfterMillis: number | null
  readonly lastTransition: {
    readonly from: StateLabel
    readonly to: StateLabel
    readonly reason: string
    /** ISO 8601, UTC. */
    readonly at: string
  } | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The title of the page (default: the `ServiceName` reference). */
  readonly service?: string | undefined
  /** Event streams open at once; more are answered 503 (default 64). */
  readonly maxClients?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Board {
  /** The answer for a board route, or `undefined` for any other path. */
  readonly handle: (
    request: HttpServerRequest.HttpServerRequest,
    path?: string
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse> | undefined
  /** The cards as they are now. */
  readonly cards: Effect.Effect<ReadonlyArray<Card>>
  /**
   * Ends every open event stream at once, and answers later ones 503. Run it when the server starts
   * to shut down: an open stream otherwise holds the server's graceful shutdown for its whole
   * timeout. Closing the board's scope does it too.
   */
  readonly close: Effect.Effect<void>
}

/**
 * The paths the board answers.
 *
 * @since 0.1.0
 * @category constants
 */
export const paths: ReadonlyArray<string> = ["/", "/status", "/events"]

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Listens to every breaker of the registry (including breakers made later)
 * until the scope closes, and returns the board's handler.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Board, never, Registry.Registry | Scope.Scope> = Effect
  .fnUntraced(function*(options?: Options) {
    const registry = yield* Registry.Registry
    const service = options?.service ?? (yield* ServiceName)
    const maxClients = options?.maxClients ?? 64
    const scope = yield* Effect.scope
    const clock = yield* Clock.Clock
    // Sliding: a reader that cannot keep up loses old updates, never blocks a breaker.
    const updates = yield* PubSub.sliding<string>(256)
    const last = new Map<string, Card["lastTransition"]>()
    const lastSent = new Map<string, number>()
    let clients = 0
    const closed = yield* Deferred.make<void>()
    const close = Effect.asVoid(Deferred.succeed(closed, undefined))
    yield* Effect.addFinalizer(() => close)

    const card = (snapshot: CircuitBreaker.Snapshot): Card => ({
      name: snapshot.name,
      state: stateLabel[snapshot.state],
      mode: modeLabel[snapshot.mode],
      failureMode: snapshot.failureMode,
      failures: snapshot.failures,
      trips: snapshot.totals.trips,
      retryAfterMillis: Number.isFinite(snapshot.retryAfterMillis) ? snapshot.retryAfterMillis : null,
      lastTransition: last.get(snapshot.name) ?? null
    })

    const publish = (breaker: CircuitBreaker.CircuitBreaker) => {
      PubSub.publishUnsafe(updates, event("breaker", card(breaker.unsafe.snapshot())))
    }

    yield* registry.onRegister((breaker) => {
      const listening = Scope.forkUnsafe(scope)
      Effect.runSync(
        Scope.provide(listening)(breaker.listen({
          onTransition: (transition) => {
            last.set(breaker.name, {
              from: stateLabel[transition.from],
              to: stateLabel[transition.to],
              reason: reasonLabel[transition.reason],
              at: new Date(transition.at).toISOString()
            })
            lastSent.set(breaker.name, transition.at)
            publish(breaker)
          },
          onCall: (outcome) => {
            if (outcome !== "failure" && outcome !== "slow") return
            // At most one failure update per circuit every 250 ms: the count is news, the flood is not.
            const now = clock.currentTimeMillisUnsafe()
            if (now - (lastSent.get(breaker.name) ?? -Infinity) < 250) return
            lastSent.set(breaker.name, now)
            publish(breaker)
          }
        }))
      )
      publish(breaker)
      return () => {
        last.delete(breaker.name)
        lastSent.delete(breaker.name)
        Effect.runSync(Scope.close(listening, Exit.void))
      }
    })

    const cards = Effect.map(registry.snapshots, (snapshots) => snapshots.map(card))

    const streamHeaders = {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
    }

    const events = Effect.suspend(() => {
      if (Deferred.isDoneUnsafe(closed)) {
        return Effect.succeed(
          HttpServerResponse.text("shutting down\n", { status: 503, headers: { "retry-after": "5" } })
        )
      }
      if (clients >= maxClients) {
        return Effect.succeed(
          HttpServerResponse.text("too many board clients\n", { status: 503, headers: { "retry-after": "5" } })
        )
      }
      clients++
      const body = Stream.unwrap(Effect.gen(function*() {
        // Subscribe before the snapshot, so no change falls between them.
        const subscription = yield* PubSub.subscribe(updates)
        const first = event("snapshot", yield* cards)
        return Stream.concat(Stream.succeed(first), Stream.fromSubscription(subscription))
      })).pipe(
        Stream.merge(Stream.map(Stream.tick("15 seconds"), () => ": keep-alive\n\n")),
        Stream.encodeText,
        // Shutdown ends the stream at once, rather than the server waiting for the browser to leave.
        Stream.interruptWhen(Deferred.await(closed)),
        Stream.ensuring(Effect.sync(() => clients--))
      )
      return Effect.succeed(HttpServerResponse.stream(body, streamHeaders))
    })

    // A HEAD has no body: the stream would never run, so its place would never be given back.
    const eventsHead = Effect.succeed(
      HttpServerResponse.empty({
        status: 200,
        headers: { ...streamHeaders.headers, "content-type": streamHeaders.contentType }
      })
    )

    const page = HttpServerResponse.html(renderPage(service)).pipe(
      HttpServerResponse.setHeaders({
        "content-security-policy": csp,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer"
      })
    )

    const handle = (request: HttpServerRequest.HttpServerRequest, path?: string) => {
      const route = path ?? pathOf(request.url)
      if (!paths.includes(route)) return undefined
      if (request.method !== "GET" && request.method !== "HEAD") {
        return Effect.succeed(
          HttpServerResponse.jsonUnsafe({ error: "method not allowed" }, {
            status: 405,
            headers: { allow: "GET, HEAD" }
          })
        )
      }
      if (route !== "/events") return Effect.succeed(page)
      return request.method === "HEAD" ? eventsHead : events
    }

    return { handle, cards, close }
  })

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

const event = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

const pathOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

const style = `
:root{color-scheme:light dark;--closed:#1a7f37;--open:#cf222e;--half:#bf8700;--muted:#6e7781}
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:1.5rem;background:Canvas;color:CanvasText}
header{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between;margin-bottom:1rem}
h1{font-size:1.3rem;margin:0}
#conn{font-size:.85rem;color:var(--muted)}
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:1rem}
.card{border:1px solid color-mix(in srgb,CanvasText 20%,transparent);border-left:.6rem solid var(--muted);border-radius:.5rem;padding:.8rem 1rem}
.card.closed{border-left-color:var(--closed)}.card.open{border-left-color:var(--open)}.card.half_open{border-left-color:var(--half)}
.name{font-weight:600;font-family:ui-monospace,monospace}
.state{display:inline-block;margin:.4rem 0;padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:700;background:var(--muted)}
.closed .state{background:var(--closed)}.open .state{background:var(--open)}.half_open .state{background:var(--half)}
dl{display:grid;grid-template-columns:auto 1fr;gap:.15rem .8rem;margin:.4rem 0;font-size:.9rem}
dt{color:var(--muted)}dd{margin:0}
.admin{display:none;gap:.5rem;margin-top:.5rem}.admin-on .admin{display:flex}
button{font:inherit;padding:.2rem .7rem;cursor:pointer}
#msg{font-size:.85rem;color:var(--muted);min-height:1.2em}
`

const script = `
"use strict";
const cards = new Map(), root = document.getElementById("cards"), conn = document.getElementById("conn");
const msg = document.getElementById("msg"), tokenInput = document.getElementById("token");
let token = "";
const label = { closed: "CLOSED", open: "OPEN", half_open: "HALF_OPEN" };
function row(dl, term, id) {
  const dt = document.createElement("dt"); dt.textContent = term;
  const dd = document.createElement("dd"); dd.dataset.field = id;
  dl.append(dt, dd);
}
function build(name) {
  const el = document.createElement("section"); el.className = "card"; el.dataset.circuit = name;
  const title = document.createElement("div"); title.className = "name"; title.textContent = name;
  const state = document.createElement("div"); state.className = "state"; state.dataset.field = "state";
  const dl = document.createElement("dl");
  row(dl, "failure mode", "failureMode"); row(dl, "mode", "mode"); row(dl, "failures", "failures");
  row(dl, "trips", "trips"); row(dl, "next probe", "probe"); row(dl, "last transition", "transition");
  const admin = document.createElement("div"); admin.className = "admin";
  for (const [action, text] of [["force-open", "Force open"], ["reset", "Reset"]]) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = text;
    b.dataset.action = action; b.addEventListener("click", () => act(name, action)); admin.append(b);
  }
  el.append(title, state, dl, admin);
  const names = [...cards.keys(), name].sort();
  const next = cards.get(names[names.indexOf(name) + 1]);
  root.insertBefore(el, next ? next.el : null);
  return el;
}
function show(c) {
  let entry = cards.get(c.name);
  if (!entry) { entry = { el: build(c.name) }; cards.set(c.name, entry); }
  entry.card = c;
  entry.deadline = c.state === "open" && c.retryAfterMillis !== null ? performance.now() + c.retryAfterMillis : null;
  const el = entry.el, f = (k) => el.querySelector('[data-field="' + k + '"]');
  el.className = "card " + c.state; el.dataset.state = c.state;
  f("state").textContent = label[c.state] || c.state;
  f("failureMode").textContent = c.failureMode; f("mode").textContent = c.mode.replace("_", " ");
  f("failures").textContent = String(c.failures); f("trips").textContent = String(c.trips);
  const t = c.lastTransition;
  f("transition").textContent = t ? label[t.from] + " \\u2192 " + label[t.to] + " (" + t.reason.replace("_", " ") + ") at " + new Date(t.at).toLocaleTimeString() : "none yet";
  tick1(entry);
}
function tick1(entry) {
  const c = entry.card, probe = entry.el.querySelector('[data-field="probe"]');
  if (c.state === "open" && c.retryAfterMillis === null) probe.textContent = "held open by an operator";
  else if (entry.deadline === null) probe.textContent = c.state === "half_open" ? "probing now" : "\\u2014";
  else probe.textContent = "in " + Math.max(0, Math.ceil((entry.deadline - performance.now()) / 1000)) + " s";
}
setInterval(() => { for (const entry of cards.values()) tick1(entry); }, 250);
async function act(name, action) {
  msg.textContent = action + " " + name + "\\u2026";
  try {
    const r = await fetch("admin/breakers/" + encodeURIComponent(name) + "/" + action, {
      method: "POST", headers: { authorization: "Bearer " + token, "content-type": "application/json" }, body: "{}"
    });
    msg.textContent = r.ok ? action + " " + name + ": done" : action + " " + name + ": refused (" + r.status + ")";
  } catch (e) { msg.textContent = action + " " + name + ": " + e.message; }
}
tokenInput.addEventListener("input", () => {
  token = tokenInput.value.trim();
  document.body.classList.toggle("admin-on", token !== "");
});
const source = new EventSource("events");
source.addEventListener("open", () => { conn.textContent = "live"; });
source.addEventListener("error", () => { conn.textContent = "reconnecting\\u2026"; });
source.addEventListener("snapshot", (e) => { for (const c of JSON.parse(e.data)) show(c); });
source.addEventListener("breaker", (e) => show(JSON.parse(e.data)));
`

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`

/** Only this page's own script and style run; it talks to its own origin only, and nothing may frame it. */
const csp = [
  "default-src 'none'",
  `script-src ${hash(script)}`,
  `style-src ${hash(style)}`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

const renderPage = (service: string) =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(service)}: circuit breakers</title>
<style>${style}</style>
</head>
<body>
<header>
<h1>${escapeHtml(service)}: circuit breakers <span id="conn">connecting\u2026</span></h1>
<label>Admin token <input id="token" type="password" autocomplete="off" placeholder="to force open or reset"></label>
</header>
<main id="cards"></main>
<p id="msg" role="status"></p>
<script>${script}</script>
</body>
</html>
`
