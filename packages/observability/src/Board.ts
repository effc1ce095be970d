/**
 * A live breaker board for people: one self-contained page and its
 * Server-Sent Events stream.
 *
 * | route | answer |
 * |---|---|
 * | `GET /` and `GET /status` | the page: no external assets, a strict Content-Security-Policy (hashes of its one script and one style) |
 * | `GET /events` | `text/event-stream`: a `snapshot` event with every breaker, a `timeline` event with the last transitions and a `stats` event; then one `breaker` and one `transition` event per change, and a `stats` event a second |
 * | `HEAD /events` | the stream's headers only, without taking one of the `maxClients` places |
 *
 * The page is an operations view in the manner of Hystrix's dashboard. Per
 * circuit: its state in colour and for how long, calls per second and error %
 * over the last five minutes as a sparkline, latency p50 and p99 over the last
 * minute, calls by outcome (success, failure, rejected, timeout, ignored),
 * failure mode, failures, trips, the time until the next probe counting down,
 * and the last transition with its reason; and its policies when it has some
 * (`GuardedClient` registers them in the `Registry`): a bulkhead's or adaptive
 * limit's limit, calls in flight, queued and rejected, a retry budget's
 * retries left, granted and denied, a hedge's hedges sent and won. Below the cards, a timeline of the
 * last transitions with who caused them (`trip`, `probe`, `admin`,
 * `remote`). With `backlog`, a panel with the outbox's pending documents and
 * the age of the oldest; with `fleet`, each replica's state of each circuit
 * and who holds its probe lease, so replicas that disagree show.
 *
 * The history is kept by the process (`internal/boardStats.ts`): per circuit a
 * ring of 5-second buckets fed by the breakers' `onCall` listener (two counter
 * increments per call, no allocation). The `stats` event is computed once a
 * second while a page is open, for every page at once. The browser never polls. It is read-only; the force-open and reset buttons appear only
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
import type { BreakerStatus } from "./Http.ts"
import { csp, renderPage } from "./internal/boardPage.ts"
import { policyStats } from "./internal/boardPolicies.ts"
import {
  BUCKET_MILLIS,
  CircuitHistory,
  type CircuitStats,
  Timeline,
  type TimelineEntry,
  timelineEntry
} from "./internal/boardStats.ts"
import { breakerStatus, type StateLabel } from "./internal/labels.ts"
import { ServiceName } from "./ServiceName.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * One card of the board, as sent in the event stream: the breaker's `Http.BreakerStatus` and the board's own fields.
 *
 * @since 0.1.0
 * @category models
 */
export interface Card extends BreakerStatus {
  /** Milliseconds until an OPEN breaker admits a probe; 0 when not OPEN; `null` while forced open. */
  readonly retryAfterMillis: number | null
  /** Milliseconds the breaker has been in its state. */
  readonly inStateMillis: number
  readonly lastTransition: {
    readonly from: StateLabel
    readonly to: StateLabel
    readonly reason: string
    /** ISO 8601, UTC. */
    readonly at: string
  } | null
}

/**
 * An outbox's backlog: the shape of `@neural-hive/outbox`'s `OutboxRelay.stats`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Backlog {
  /** Documents stored and not yet published. */
  readonly pending: number
  /** The age of the oldest of them, in milliseconds (0 when none). */
  readonly oldestPendingMillis: number
}

/**
 * What the replicas of a fleet report: the shape of `@neural-hive/fleet`'s
 * `Fleet.views`.
 *
 * @since 0.1.0
 * @category models
 */
export interface FleetView {
  readonly group: string
  /** This replica. */
  readonly pod: string
  /** Whether this replica shares its breakers through the fleet now. */
  readonly connected: boolean
  /** Every replica that reported lately, each with its own state of each circuit. */
  readonly replicas: ReadonlyArray<{
    readonly pod: string
    /** How long ago it reported, in milliseconds. */
    readonly ageMillis: number
    readonly circuits: Readonly<Record<string, StateLabel>>
  }>
  /** The replica holding each circuit's probe lease, for circuits whose lease is held. */
  readonly leases: Readonly<Record<string, string>>
}

/**
 * What the board shows of one circuit's policies; a policy the circuit does not use is absent.
 *
 * @since 0.1.0
 * @category models
 */
export interface PolicyStats {
  readonly bulkhead?: {
    /** Calls in flight allowed now (an adaptive limit moves it), and its bounds. */
    readonly limit: number
    readonly minLimit: number
    readonly maxLimit: number
    readonly inFlight: number
    readonly queued: number
    readonly admitted: number
    /** Calls refused since it was made (never counted by the breaker). */
    readonly rejected: number
  }
  readonly retry?: {
    /** Retries the budget allows now. */
    readonly available: number
    /** Retries granted since it was made (hedges taken from the budget included). */
    readonly retries: number
    /** Retries refused for want of budget since it was made. */
    readonly denied: number
  }
  readonly hedge?: {
    /** Second attempts sent since it was made. */
    readonly sent: number
    /** Of them, those whose answer was kept. */
    readonly won: number
    /** Hedges the retry budget refused. */
    readonly denied: number
    /** The delay after which a hedge is sent now, in ms; `null` until enough latencies are known. */
    readonly delayMillis: number | null
  }
}

/**
 * The `stats` event: the recent history of every circuit that had calls in
 * the last five minutes (the others are absent), the backlog and the fleet.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** ISO 8601, UTC. */
  readonly at: string
  /** The width of one point of the sparklines. */
  readonly bucketMillis: number
  readonly circuits: Readonly<Record<string, CircuitStats>>
  /** Absent without a `backlog` source; `null` when it did not answer within a second. */
  readonly backlog?: Backlog | null
  /** Absent without a `fleet` source; `null` when it did not answer within a second. */
  readonly fleet?: FleetView | null
  /** The policies of each circuit that has some, now; absent when none has. */
  readonly policies?: Readonly<Record<string, PolicyStats>>
}

/**
 * @since 0.1.0
 * @category models
 */
export type { CircuitStats, TimelineEntry }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The title of the page (default: the `ServiceName` reference). */
  readonly service?: string | undefined
  /** Event streams open at once; more are answered 503 (default 64). */
  readonly maxClients?: number | undefined
  /** The outbox's backlog, read once a second while a page is open (e.g. `OutboxRelay.stats`). */
  readonly backlog?: Effect.Effect<Backlog, unknown> | undefined
  /** The fleet's per-replica views, read once a second while a page is open (e.g. `Fleet.views`). */
  readonly fleet?: Effect.Effect<FleetView, unknown> | undefined
  /** Transitions kept for the timeline (default 100). */
  readonly timelineSize?: number | undefined
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
  /** The `stats` event's content as it is now. */
  readonly stats: Effect.Effect<Stats>
  /** The last transitions, oldest first. */
  readonly timeline: Effect.Effect<ReadonlyArray<TimelineEntry>>
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
    const scope = yield* Effect.scope
    const clock = yield* Clock.Clock
    // Sliding: a reader that cannot keep up loses old updates, never blocks a breaker.
    const updates = yield* PubSub.sliding<string>(256)
    const last = new Map<string, Card["lastTransition"]>()
    const lastSent = new Map<string, number>()
    const histories = new Map<string, CircuitHistory>()
    const timeline = new Timeline(options?.timelineSize ?? 100)
    const now = () => clock.currentTimeMillisUnsafe()
    // Shutdown ends every open event stream at once (`close`), rather than the server waiting for browsers.
    const closed = yield* Deferred.make<void>()
    const close = Effect.asVoid(Deferred.succeed(closed, undefined))
    yield* Effect.addFinalizer(() => close)

    const card = (snapshot: CircuitBreaker.Snapshot): Card => ({
      ...breakerStatus(snapshot),
      retryAfterMillis: Number.isFinite(snapshot.retryAfterMillis) ? snapshot.retryAfterMillis : null,
      inStateMillis: Math.max(0, now() - snapshot.since),
      lastTransition: last.get(snapshot.name) ?? null
    })

    const publish = (breaker: CircuitBreaker.CircuitBreaker) => {
      PubSub.publishUnsafe(updates, event("breaker", card(breaker.view.snapshot())))
    }

    yield* registry.onRegister((breaker) => {
      const listening = Scope.forkUnsafe(scope)
      const history = new CircuitHistory()
      histories.set(breaker.name, history)
      Effect.runSync(
        Scope.provide(listening)(breaker.listen({
          onTransition: (transition) => {
            const entry = timelineEntry(transition)
            timeline.push(entry)
            last.set(breaker.name, { from: entry.from, to: entry.to, reason: entry.reason, at: entry.at })
            lastSent.set(breaker.name, transition.at)
            publish(breaker)
            PubSub.publishUnsafe(updates, event("transition", entry))
          },
          onCall: (outcome, durationMillis) => {
            const at = now()
            history.record(outcome, durationMillis, at)
            if (outcome !== "failure" && outcome !== "slow") return
            // At most one failure update per circuit every 250 ms: the count is news, the flood is not.
            if (at - (lastSent.get(breaker.name) ?? -Infinity) < 250) return
            lastSent.set(breaker.name, at)
            publish(breaker)
          }
        }))
      )
      publish(breaker)
      return () => {
        last.delete(breaker.name)
        lastSent.delete(breaker.name)
        histories.delete(breaker.name)
        Effect.runSync(Scope.close(listening, Exit.void))
      }
    })

    const cards = Effect.map(registry.snapshots, (snapshots) => snapshots.map(card))
    const stats = collect(histories, now, registry.policies, options)
    const clients = { open: 0 }
    // One stats event a second for every open page, computed once; nothing is computed while no page is open.
    yield* Effect.forkIn(
      Effect.sleep(1000).pipe(
        Effect.andThen(Effect.suspend(() =>
          clients.open === 0 ? Effect.void : Effect.map(stats, (s) => {
            PubSub.publishUnsafe(updates, event("stats", s))
          })
        )),
        Effect.forever
      ),
      scope
    )

    const first = Effect.map(
      Effect.all([cards, stats]),
      ([c, s]) => event("snapshot", c) + event("timeline", timeline.entries()) + event("stats", s)
    )
    const events = eventStream(updates, first, clients, options?.maxClients ?? 64, closed)
    const page = pageResponse(service)
    const handle = (request: HttpServerRequest.HttpServerRequest, path?: string) => {
      const route = path ?? pathOf(request.url)
      if (!paths.includes(route)) return undefined
      if (request.method !== "GET" && request.method !== "HEAD") return Effect.succeed(methodNotAllowed())
      if (route !== "/events") return Effect.succeed(page)
      // A HEAD has no body: the stream would never run, so its place would never be given back.
      return request.method === "HEAD" ? Effect.succeed(eventsHead) : events
    }

    return { handle, cards, stats, timeline: Effect.sync(() => timeline.entries()), close }
  })

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

const event = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

const pathOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

const methodNotAllowed = () =>
  HttpServerResponse.jsonUnsafe({ error: "method not allowed" }, { status: 405, headers: { allow: "GET, HEAD" } })

const pageResponse = (service: string) =>
  HttpServerResponse.html(renderPage(service)).pipe(
    HttpServerResponse.setHeaders({
      "content-security-policy": csp,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer"
    })
  )

/** The `stats` event's content at the Clock's now. */
const collect = (
  histories: ReadonlyMap<string, CircuitHistory>,
  now: () => number,
  registered: Effect.Effect<ReadonlyArray<Registry.CircuitPolicies>>,
  options: Options | undefined
): Effect.Effect<Stats> =>
  Effect.gen(function*() {
    const at = now()
    const circuits: Record<string, CircuitStats> = {}
    for (const [name, history] of histories) {
      const summary = history.summary(at)
      if (summary !== undefined) circuits[name] = summary
    }
    const [backlog, fleet] = yield* Effect.all([read(options?.backlog), read(options?.fleet)], { concurrency: 2 })
    const policies = yield* registered
    const result: Stats = { at: new Date(at).toISOString(), bucketMillis: BUCKET_MILLIS, circuits }
    return {
      ...result,
      ...(backlog === undefined ? {} : { backlog }),
      ...(fleet === undefined ? {} : { fleet }),
      ...(policies.length === 0 ? {} : { policies: policyStats(policies) })
    }
  })

/** A source's answer; `null` when it failed or did not answer within a second; `undefined` without a source. */
const read = <A>(source: Effect.Effect<A, unknown> | undefined): Effect.Effect<A | null | undefined> =>
  source === undefined ? Effect.succeed(undefined) : source.pipe(
    Effect.timeoutOrElse({ duration: 1000, orElse: () => Effect.succeed(null) }),
    Effect.catchCause(() => Effect.succeed(null))
  )

/** The `/events` answer: `first`, then every update, for at most `maxClients` streams at once. */
const streamHeaders = { "cache-control": "no-store", "x-accel-buffering": "no" }

/** The headers of the event stream, for a HEAD: no stream, no place taken. */
const eventsHead = HttpServerResponse.empty({
  status: 200,
  headers: { ...streamHeaders, "content-type": "text/event-stream" }
})

const eventStream = (
  updates: PubSub.PubSub<string>,
  first: Effect.Effect<string>,
  clients: { open: number },
  maxClients: number,
  closed: Deferred.Deferred<void>
) =>
  Effect.suspend(() => {
    if (Deferred.isDoneUnsafe(closed)) {
      return Effect.succeed(
        HttpServerResponse.text("shutting down\n", { status: 503, headers: { "retry-after": "5" } })
      )
    }
    if (clients.open >= maxClients) {
      return Effect.succeed(
        HttpServerResponse.text("too many board clients\n", { status: 503, headers: { "retry-after": "5" } })
      )
    }
    clients.open++
    const body = Stream.unwrap(Effect.gen(function*() {
      // Subscribe before the snapshot, so no change falls between them.
      const subscription = yield* PubSub.subscribe(updates)
      return Stream.concat(Stream.fromEffect(first), Stream.fromSubscription(subscription))
    })).pipe(
      Stream.merge(Stream.map(Stream.tick("15 seconds"), () => ": keep-alive\n\n")),
      Stream.encodeText,
      // Shutdown ends the stream at once, rather than the server waiting for the browser to leave.
      Stream.interruptWhen(Deferred.await(closed)),
      Stream.ensuring(Effect.sync(() => clients.open--))
    )
    return Effect.succeed(HttpServerResponse.stream(body, { contentType: "text/event-stream", headers: streamHeaders }))
  })
