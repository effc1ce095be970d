/**
 * The seed's MongoDB persistence as an Effect service over the `mongodb` driver,
 * behind a fail-fast circuit breaker (`mongodb_client`): while MongoDB is down
 * or the breaker is open, every call fails at once with `CircuitBreakerError`
 * and nothing is written.
 *
 * - Typed helpers for the common operations (`insertOne`, `findOne`,
 *   `updateOne`, `deleteOne`, `find` with a limit) and `use(db => Promise)` for
 *   the rest, all through the breaker.
 * - Every call has a deadline (`operationTimeout`); the driver's own
 *   server-selection, connect and socket timeouts are set below it, so a call
 *   ends with the driver's own answer when there is one.
 * - Only failures that say MongoDB is unhealthy count (`isServerFailure`):
 *   network errors, timeouts, server-selection timeouts, "not primary" and
 *   shutdown answers. Duplicate keys, validation failures, bad queries and any
 *   other server reply reach the caller as typed errors and never move the
 *   breaker.
 * - The breaker governs the client: when it opens the `MongoClient` (its pool and
 *   its server monitor) is closed, so nothing dials MongoDB while open; the first
 *   probe after the open period makes a fresh client.
 *
 * **Example** (Persisting a ticket)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * interface Ticket {
 *   readonly _id: string
 *   readonly status: string
 * }
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* MongoStore.MongoStore
 *   yield* store.insertOne<Ticket>("tickets", { _id: "t-42", status: "created" })
 *   return yield* store.findOne<Ticket>("tickets", { _id: "t-42" })
 * }).pipe(Effect.provide(MongoStore.layer({ url: "mongodb://127.0.0.1:27017", database: "orchestrator" })))
 * ```
 *
 * @since 0.1.0
 */
import { CircuitBreaker, type CircuitBreakerError, redact, withBreaker } from "@neural-hive/resilience"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import {
  BSON,
  type Db,
  type DeleteOptions,
  type DeleteResult,
  type Document,
  type Filter,
  type FindOptions,
  type InsertOneOptions,
  type InsertOneResult,
  MongoAPIError,
  MongoClient,
  type MongoClientOptions,
  MongoError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoOperationTimeoutError,
  MongoParseError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  type OptionalUnlessRequiredId,
  type UpdateFilter,
  type UpdateOptions,
  type UpdateResult,
  type WithId
} from "mongodb"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a MongoDB call failed. The first four count against MongoDB (see
 * `isServerFailure`); the others are answers about this call and never move the
 * breaker.
 *
 * | reason | from |
 * |---|---|
 * | `Network` | connection refused, reset or closed; `MongoNetworkError`; HostUnreachable (6), HostNotFound (7), SocketException (9001); the client closed under the call |
 * | `Timeout` | no answer within `operationTimeout`; `MongoNetworkTimeoutError` (`socketTimeout`), `MongoOperationTimeoutError`; NetworkTimeout (89), MaxTimeMSExpired (50), ExceededTimeLimit (262) |
 * | `ServerSelection` | `MongoServerSelectionError`: no usable server within `serverSelectionTimeout` |
 * | `NotPrimary` | NotWritablePrimary (10107), NotPrimaryNoSecondaryOk (13435), NotPrimaryOrSecondary (13436), LegacyNotPrimary (10058), PrimarySteppedDown (189), InterruptedDueToReplStateChange (11602), ShutdownInProgress (91), InterruptedAtShutdown (11600), ReadConcernMajorityNotAvailableYet (134), "not master" / "node is recovering", or the server's `SystemOverloadedError` label |
 * | `DuplicateKey` | E11000: codes 11000, 11001, 12582 |
 * | `Validation` | DocumentValidationFailure (121) |
 * | `BadQuery` | BadValue (2), FailedToParse (9), TypeMismatch (14), ConflictingUpdateOperators (40), DollarPrefixedFieldName (52), InvalidNamespace (73), a driver argument or BSON error, a `find` without a positive limit |
 * | `Reply` | any other error reply: the server is up and refused this command (NotImplemented, Unauthorized, ...) |
 * | `Unknown` | anything else |
 *
 * @since 0.1.0
 * @category errors
 */
export type MongoStoreErrorReason =
  | "Network"
  | "Timeout"
  | "ServerSelection"
  | "NotPrimary"
  | "DuplicateKey"
  | "Validation"
  | "BadQuery"
  | "Reply"
  | "Unknown"

/**
 * The one error of every `MongoStore` operation (besides the breaker's
 * `CircuitBreakerError`). `code` is the server's error code when it answered.
 * Named so as not to clash with the driver's `MongoError`.
 *
 * @since 0.1.0
 * @category errors
 */
export class MongoStoreError extends Data.TaggedError("MongoStoreError")<{
  readonly reason: MongoStoreErrorReason
  readonly operation: string
  readonly message: string
  readonly collection?: string | undefined
  readonly code?: number | undefined
  readonly cause?: unknown
}> {}

const SERVER_FAILURES: ReadonlySet<MongoStoreErrorReason> = new Set([
  "Network",
  "Timeout",
  "ServerSelection",
  "NotPrimary"
])

/**
 * The MongoDB classifier: only `Network`, `Timeout`, `ServerSelection` and
 * `NotPrimary` count against MongoDB.
 *
 * **Example** (A duplicate key does not count)
 *
 * ```ts
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * MongoStore.isServerFailure(
 *   new MongoStore.MongoStoreError({ reason: "DuplicateKey", operation: "insertOne", message: "E11000" })
 * ) // false
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const isServerFailure = (error: unknown): boolean =>
  error instanceof MongoStoreError && SERVER_FAILURES.has(error.reason)

const DUPLICATE_KEY = new Set([11000, 11001, 12582])
const BAD_QUERY = new Set([2, 9, 14, 40, 52, 73])
const NOT_PRIMARY = new Set([10107, 13435, 13436, 10058, 189, 11602, 91, 11600, 134])
const NETWORK = new Set([6, 7, 9001])
const TIMEOUT = new Set([89, 50, 262])
const NOT_PRIMARY_MESSAGE = /not master|node is recovering/i
// Node's system errors (ECONNRESET, EPIPE, ...): the driver lets a few through unwrapped.
const SYSCALL_CODE = /^E[A-Z]+$/

const serverReason = (error: MongoServerError): MongoStoreErrorReason => {
  const code = Number(error.code)
  if (DUPLICATE_KEY.has(code)) return "DuplicateKey"
  if (code === 121) return "Validation"
  if (BAD_QUERY.has(code)) return "BadQuery"
  if (NOT_PRIMARY.has(code) || NOT_PRIMARY_MESSAGE.test(error.message)) return "NotPrimary"
  if (NETWORK.has(code)) return "Network"
  if (TIMEOUT.has(code)) return "Timeout"
  if (error.hasErrorLabel("SystemOverloadedError")) return "NotPrimary"
  return "Reply"
}

const reasonOf = (cause: unknown): MongoStoreErrorReason => {
  if (cause instanceof MongoServerSelectionError) return "ServerSelection"
  if (cause instanceof MongoNetworkTimeoutError || cause instanceof MongoOperationTimeoutError) return "Timeout"
  if (cause instanceof MongoNetworkError || cause instanceof MongoTopologyClosedError) return "Network"
  if (cause instanceof MongoServerError) return serverReason(cause)
  // URL errors come from mongodb-connection-string-url's own MongoParseError class, hence the name check.
  if (cause instanceof MongoParseError || cause instanceof BSON.BSONError) return "BadQuery"
  if (cause instanceof Error && cause.name === "MongoParseError") return "BadQuery"
  // MongoClientClosedError, MongoNotConnectedError: the client was closed under the call (the breaker opened).
  if (cause instanceof MongoAPIError && /closed|not connected/i.test(cause.message)) return "Network"
  if (cause instanceof MongoAPIError) return "BadQuery"
  if (cause instanceof MongoError) return "Unknown"
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined
  if (typeof code === "string" && SYSCALL_CODE.test(code)) return "Network"
  if (cause instanceof TypeError) return "BadQuery"
  return "Unknown"
}

/**
 * Maps anything the driver throws to a `MongoStoreError` (passwords removed
 * from the message).
 *
 * **Example** (Mapping a driver error)
 *
 * ```ts
 * import { MongoServerError } from "mongodb"
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * const cause = new MongoServerError({ code: 11000, errmsg: "E11000 duplicate key error" })
 * MongoStore.toMongoStoreError("insertOne", cause, "tickets").reason // "DuplicateKey"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const toMongoStoreError = (operation: string, cause: unknown, collection?: string): MongoStoreError => {
  const code = cause instanceof MongoServerError ? Number(cause.code) : undefined
  return new MongoStoreError({
    reason: reasonOf(cause),
    operation,
    message: redact(cause instanceof Error ? cause.message : String(cause)),
    collection,
    code: code === undefined || Number.isNaN(code) ? undefined : code,
    cause
  })
}

// -----------------------------------------------------------------------------
// service
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export type MongoStoreResult<A> = Effect.Effect<A, MongoStoreError | CircuitBreakerError>

/**
 * @since 0.1.0
 * @category services
 */
export class MongoStore extends Context.Service<MongoStore, {
  readonly insertOne: <T extends Document = Document>(
    collection: string,
    document: OptionalUnlessRequiredId<T>,
    options?: InsertOneOptions
  ) => MongoStoreResult<InsertOneResult<T>>
  /** The first matching document, or `none`. */
  readonly findOne: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    options?: Omit<FindOptions, "timeoutMode">
  ) => MongoStoreResult<Option.Option<WithId<T>>>
  readonly updateOne: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => MongoStoreResult<UpdateResult<T>>
  readonly deleteOne: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    options?: DeleteOptions
  ) => MongoStoreResult<DeleteResult>
  /** At most `options.limit` (a positive integer, required) matching documents. */
  readonly find: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    options: Omit<FindOptions, "timeoutMode"> & { readonly limit: number }
  ) => MongoStoreResult<Array<WithId<T>>>
  /**
   * Anything else on the database, through the breaker and the deadline. The signal is
   * aborted when the deadline passes; pass it to reads (`{ signal }`) to stop them too.
   */
  readonly use: <A>(operation: string, f: (db: Db, signal: AbortSignal) => Promise<A>) => MongoStoreResult<A>
  readonly breaker: CircuitBreaker.CircuitBreaker
}>()("@neural-hive/mongodb/MongoStore") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `mongodb://[user:password@]host:port[/db]`; a password in it never reaches logs or errors. */
  readonly url: string | Redacted.Redacted<string>
  /** Default: the database named in `url`, else `test` (the driver's default). */
  readonly database?: string | undefined
  /** Breaker options; `name` defaults to `mongodb_client`, the seed's 5 failures, 30 s / 60 s. */
  readonly breaker?: Partial<CircuitBreaker.Options> | undefined
  /** The deadline of every call (default 5 seconds). */
  readonly operationTimeout?: Duration.Input | undefined
  /** Waiting for a usable server longer than this fails with `ServerSelection` (default 2 seconds; driver: 30 s). */
  readonly serverSelectionTimeout?: Duration.Input | undefined
  /** Opening a connection longer than this fails (default 2 seconds; driver: 30 s). */
  readonly connectTimeout?: Duration.Input | undefined
  /** No bytes from the server for this long fails the call with `Timeout` (default 3 seconds; driver: never). */
  readonly socketTimeout?: Duration.Input | undefined
  /** Default 10 (driver: 100). */
  readonly maxPoolSize?: number | undefined
  /** The driver retries a read once after a network error or "not primary" (default true). */
  readonly retryReads?: boolean | undefined
  /** The driver retries a write once, exactly-once, on replica sets (default true; never on a standalone). */
  readonly retryWrites?: boolean | undefined
  /**
   * The driver's overload retries (driver option `maxAdaptiveRetries`; default 0 here, 2 in the driver).
   * The driver also applies them to every failed connection handshake, so with its default a call to a
   * dead or hung server makes up to three handshakes before it fails; the breaker is the overload policy.
   */
  readonly adaptiveRetries?: number | undefined
  /** Other driver options (TLS, auth mechanism, app name, ...); they override the ones above. */
  readonly clientOptions?: MongoClientOptions | undefined
}

/**
 * The driver options used by `make`: every wait bounded.
 *
 * **Example** (Inspecting the driver settings)
 *
 * ```ts
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * MongoStore.clientOptions({ url: "mongodb://127.0.0.1:27017" }).serverSelectionTimeoutMS // 2000
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientOptions = (options: Options): MongoClientOptions => ({
  serverSelectionTimeoutMS: Duration.toMillis(options.serverSelectionTimeout ?? 2000),
  connectTimeoutMS: Duration.toMillis(options.connectTimeout ?? 2000),
  socketTimeoutMS: Duration.toMillis(options.socketTimeout ?? 3000),
  maxPoolSize: options.maxPoolSize ?? 10,
  retryReads: options.retryReads ?? true,
  retryWrites: options.retryWrites ?? true,
  maxAdaptiveRetries: options.adaptiveRetries ?? 0,
  ...options.clientOptions
})

// Bounded: `close` ends server sessions first, which waits for the server when it still looks reachable.
const close = (client: MongoClient) =>
  Effect.tryPromise(() => client.close()).pipe(Effect.timeout("2 seconds"), Effect.ignore)

/**
 * Makes the service: a `MongoClient` for the life of the scope and a
 * `mongodb_client` breaker (registered in the `CircuitBreaker.Registry` if one
 * is provided). Starts even when MongoDB is down (the driver connects on the
 * first call); fails with `MongoStoreError { reason: "BadQuery" }` for a URL the
 * driver cannot parse.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  // Bad durations fail here, typed, before anything below converts them.
  yield* CircuitBreaker.durationOption(
    options.breaker?.name ?? "mongodb_client",
    "operationTimeout",
    options.operationTimeout,
    5000
  )
  yield* CircuitBreaker.durationOption(
    options.breaker?.name ?? "mongodb_client",
    "serverSelectionTimeout",
    options.serverSelectionTimeout,
    2000
  )
  yield* CircuitBreaker.durationOption(
    options.breaker?.name ?? "mongodb_client",
    "connectTimeout",
    options.connectTimeout,
    2000
  )
  yield* CircuitBreaker.durationOption(
    options.breaker?.name ?? "mongodb_client",
    "socketTimeout",
    options.socketTimeout,
    3000
  )
  const operationTimeout = Duration.toMillis(options.operationTimeout ?? 5000)
  const breaker = yield* CircuitBreaker.make({
    name: "mongodb_client",
    failMax: 5,
    recoveryTimeout: "30 seconds",
    maxOpenDuration: "60 seconds",
    // A backstop: each call already ends at operationTimeout with a Timeout.
    callTimeout: operationTimeout + 1000,
    failureMode: "fail-fast",
    isFailure: isServerFailure,
    ...options.breaker
  })
  const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  const settings = clientOptions(options)
  const context = yield* Effect.context<never>()

  // The client of the moment; `undefined` once retired, until the next call makes one.
  let current: MongoClient | undefined = yield* Effect.acquireRelease(
    Effect.try({ try: () => new MongoClient(url, settings), catch: (cause) => toMongoStoreError("connect", cause) }),
    () => Effect.suspend(() => current === undefined ? Effect.void : close(current))
  )

  // When the breaker opens, close the client: its pool and its server monitor would otherwise
  // keep dialling MongoDB for the whole open period. The first probe makes a fresh client.
  yield* breaker.listen({
    onTransition: (transition) => {
      if (transition.to !== "Open" || current === undefined) return
      const retired = current
      current = undefined
      Effect.runForkWith(context)(
        close(retired).pipe(
          Effect.andThen(Effect.logDebug("mongodb client closed while the circuit is open")),
          Effect.annotateLogs({ circuit: breaker.name })
        )
      )
    }
  })

  const timedOut = (operation: string, collection: string | undefined) =>
    Effect.fail(
      new MongoStoreError({
        reason: "Timeout",
        operation,
        message: `no answer within ${operationTimeout} ms`,
        collection
      })
    )

  const call = <A>(
    operation: string,
    collection: string | undefined,
    f: (db: Db, signal: AbortSignal) => Promise<A>
  ): MongoStoreResult<A> =>
    Effect.suspend(() => {
      // Admitted by the breaker: a retired client is replaced here (this is the probe).
      const client = current ??= new MongoClient(url, settings)
      const db = client.db(options.database)
      return Effect.tryPromise({
        try: (signal) => f(db, signal),
        catch: (cause) => toMongoStoreError(operation, cause, collection)
      })
    }).pipe(
      Effect.timeoutOrElse({ duration: operationTimeout, orElse: () => timedOut(operation, collection) }),
      withBreaker(breaker),
      // A breaker callTimeout (when one is configured) is this client's Timeout too.
      Effect.catchTag("CircuitBreakerTimeoutError", () => timedOut(operation, collection)),
      // One client span per call: the breaker (with Tracing.layer) annotates it with its name, state and result.
      Effect.withSpan(`MongoStore.${operation}`, {
        kind: "client",
        attributes: collection === undefined ? { "db.system": "mongodb" } : {
          "db.system": "mongodb",
          "db.collection.name": collection
        }
      })
    )

  return MongoStore.of({
    insertOne: (collection, document, insertOptions) =>
      call("insertOne", collection, (db) => db.collection(collection).insertOne(document, insertOptions)),
    findOne: (collection, filter, findOptions) =>
      Effect.map(
        call(
          "findOne",
          collection,
          (db, signal) => db.collection(collection).findOne(filter as Filter<Document>, { ...findOptions, signal })
        ),
        (found) => Option.fromNullishOr(found as WithId<any> | null)
      ),
    updateOne: (collection, filter, update, updateOptions) =>
      call(
        "updateOne",
        collection,
        (db) =>
          db.collection(collection).updateOne(
            filter as Filter<Document>,
            update as UpdateFilter<Document> | Array<Document>,
            updateOptions
          )
      ),
    deleteOne: (collection, filter, deleteOptions) =>
      call(
        "deleteOne",
        collection,
        (db) => db.collection(collection).deleteOne(filter as Filter<Document>, deleteOptions)
      ),
    find: (collection, filter, findOptions) =>
      Number.isInteger(findOptions.limit) && findOptions.limit > 0
        ? call(
          "find",
          collection,
          (db, signal) =>
            db.collection(collection).find(filter as Filter<Document>, { ...findOptions, signal }).toArray() as Promise<
              Array<WithId<any>>
            >
        )
        : Effect.fail(
          new MongoStoreError({
            reason: "BadQuery",
            operation: "find",
            message: `find needs a positive integer limit, got ${findOptions.limit}`,
            collection
          })
        ),
    use: (operation, f) => call(operation, undefined, f),
    breaker
  })
})

/**
 * **Example** (Providing the store)
 *
 * ```ts
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * const MongoLive = MongoStore.layer({
 *   url: "mongodb://127.0.0.1:27017",
 *   database: "orchestrator",
 *   breaker: { failMax: 5, recoveryTimeout: "30 seconds", maxOpenDuration: "60 seconds" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<MongoStore, MongoStoreError | CircuitBreaker.CircuitBreakerOptionsError> =>
  Layer.effect(MongoStore, make(options))

/**
 * Reads `url` (a `Redacted`) and the rest from config.
 *
 * **Example** (URL from the environment)
 *
 * ```ts
 * import { Config } from "effect"
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * const MongoLive = MongoStore.layerConfig({
 *   url: Config.Redacted("MONGODB_URL"),
 *   database: Config.String("MONGODB_DATABASE")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<MongoStore, MongoStoreError | CircuitBreaker.CircuitBreakerOptionsError | Config.ConfigError> =>
  Layer.effect(MongoStore, Effect.flatMap(Config.unwrap(options), make))
