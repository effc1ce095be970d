/**
 * The Orchestrator Dynamic's MongoDB persistence as an Effect service over the `mongodb` driver,
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
 * - When in doubt, count (`isFailure`): duplicate keys, validation failures,
 *   bad queries and the server replies known to be about the command reach the
 *   caller as typed errors and never move the breaker; everything else counts
 *   (network errors, timeouts, server selection, "not primary", authentication,
 *   and any error this package does not recognise).
 * - The breaker governs the client: when it opens the `MongoClient` (its pool and
 *   its server monitor) is closed, so nothing dials MongoDB while open; the first
 *   call or probe (`ping`) after the open period makes a fresh client.
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
import {
  CircuitBreaker,
  type CircuitBreakerError,
  GuardedClient,
  redact,
  type ResilienceConfig
} from "@neural-hive/resilience"
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
  type CountDocumentsOptions,
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
import { operations } from "./internal/operations.ts"
import * as Sockets from "./internal/sockets.ts"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a MongoDB call failed. `DuplicateKey`, `Validation`, `BadQuery` and
 * `Reply` are answers about this call and never move the breaker; every other
 * reason counts against MongoDB (see `isFailure`): when in doubt, count.
 *
 * | reason | from | counts |
 * |---|---|---|
 * | `Network` | connection refused, reset or closed; `MongoNetworkError`; HostUnreachable (6), HostNotFound (7), SocketException (9001); the client closed under the call | yes |
 * | `Timeout` | no answer within `operationTimeout`; `MongoNetworkTimeoutError` (`socketTimeout`), `MongoOperationTimeoutError`; NetworkTimeout (89), MaxTimeMSExpired (50), ExceededTimeLimit (262) | yes |
 * | `ServerSelection` | `MongoServerSelectionError`: no usable server within `serverSelectionTimeout` | yes |
 * | `NotPrimary` | NotWritablePrimary (10107), NotPrimaryNoSecondaryOk (13435), NotPrimaryOrSecondary (13436), LegacyNotPrimary (10058), PrimarySteppedDown (189), InterruptedDueToReplStateChange (11602), ShutdownInProgress (91), InterruptedAtShutdown (11600), ReadConcernMajorityNotAvailableYet (134), "not master" / "node is recovering", or the server's `SystemOverloadedError` label | yes |
 * | `Authentication` | Unauthorized (13), AuthenticationFailed (18): the service's credentials, not one call | yes |
 * | `DuplicateKey` | E11000: codes 11000, 11001, 12582 | no |
 * | `Validation` | DocumentValidationFailure (121) | no |
 * | `BadQuery` | BadValue (2), FailedToParse (9), TypeMismatch (14), ConflictingUpdateOperators (40), DollarPrefixedFieldName (52), InvalidNamespace (73), a driver argument or BSON error, a `find` without a positive limit | no |
 * | `Reply` | a reply about this command: IllegalOperation (20), NamespaceNotFound (26), NamespaceExists (48), CommandNotFound (59), CannotCreateIndex (67), IndexAlreadyExists (68), InvalidOptions (72), IndexOptionsConflict (85), IndexKeySpecsConflict (86), WriteConflict (112), CommandNotSupported (115), NotImplemented (238), BSONObjectTooLarge (10334) | no |
 * | `Unknown` | any other error reply, driver error or error | yes |
 *
 * @since 0.1.0
 * @category errors
 */
export type MongoStoreErrorReason =
  | "Network"
  | "Timeout"
  | "ServerSelection"
  | "NotPrimary"
  | "Authentication"
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

const CALLER_ERRORS: ReadonlySet<MongoStoreErrorReason> = new Set(["DuplicateKey", "Validation", "BadQuery", "Reply"])

/**
 * The MongoDB classifier, the `isFailure` of the `mongodb_client` breaker:
 * every error counts against MongoDB except `DuplicateKey`, `Validation`,
 * `BadQuery` and `Reply` (the caller's). Errors this package does not know
 * count too.
 *
 * **Example** (A duplicate key does not count; an unknown error does)
 *
 * ```ts
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * MongoStore.isFailure(
 *   new MongoStore.MongoStoreError({ reason: "DuplicateKey", operation: "insertOne", message: "E11000" })
 * ) // false
 * MongoStore.isFailure(new Error("something new")) // true
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const isFailure = (error: unknown): boolean =>
  !(error instanceof MongoStoreError && CALLER_ERRORS.has(error.reason))

const DUPLICATE_KEY = new Set([11000, 11001, 12582])
const BAD_QUERY = new Set([2, 9, 14, 40, 52, 73])
const NOT_PRIMARY = new Set([10107, 13435, 13436, 10058, 189, 11602, 91, 11600, 134])
const NETWORK = new Set([6, 7, 9001])
const TIMEOUT = new Set([89, 50, 262])
const AUTHENTICATION = new Set([13, 18])
const CALLER_REPLY = new Set([20, 26, 48, 59, 67, 68, 72, 85, 86, 112, 115, 238, 10334])
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
  if (AUTHENTICATION.has(code)) return "Authentication"
  return CALLER_REPLY.has(code) ? "Reply" : "Unknown"
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

/**
 * Why the driver refuses a connection string (its message, passwords
 * removed), or `undefined` when it parses. Nothing is connected or resolved: a
 * configuration can check its URL at start-up and name its variable, rather
 * than the layer failing later with the driver's error.
 *
 * **Example** (Checking a URL before starting)
 *
 * ```ts
 * import { MongoStore } from "@neural-hive/mongodb"
 *
 * MongoStore.urlProblem("mongodb://localhost:27017/db") // undefined
 * MongoStore.urlProblem("mongodb+srv://u:secret@cluster.example:27017/db") // "mongodb+srv URI cannot have port number"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const urlProblem = (url: string | Redacted.Redacted<string>): string | undefined => {
  try {
    // The constructor parses the string and its options only; connecting waits for the first operation.
    const client = new MongoClient(Redacted.isRedacted(url) ? Redacted.value(url) : url)
    return client.options.hosts.length > 0 || client.options.srvHost !== undefined ? undefined : "no host"
  } catch (cause) {
    return redact(cause instanceof Error ? cause.message : String(cause))
  }
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
  /** Inserts one document; a duplicate `_id` or unique key fails with `DuplicateKey` (never counted). */
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
  /** Updates the first matching document. */
  readonly updateOne: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => MongoStoreResult<UpdateResult<T>>
  /** Updates every matching document in one write (each document's change is atomic; the set is not). */
  readonly updateMany: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => MongoStoreResult<UpdateResult<T>>
  /** Deletes the first matching document. */
  readonly deleteOne: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    options?: DeleteOptions
  ) => MongoStoreResult<DeleteResult>
  /** How many documents match. */
  readonly countDocuments: <T extends Document = Document>(
    collection: string,
    filter: Filter<T>,
    options?: Omit<CountDocumentsOptions, "timeoutMode">
  ) => MongoStoreResult<number>
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
  /** Breaker options; `name` defaults to `mongodb_client`, 5 failures, 30 s / 60 s as in the Orchestrator Dynamic config. */
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
  /**
   * `ping` once at start (through the breaker, bounded by the call deadline) and as the breaker's trial when its open
   * period ends with no call to try it (default true). `false`: neither.
   */
  readonly probe?: boolean | undefined
  /**
   * The circuit's policies (`ResilienceConfig.policiesOf`), composed around every call by `GuardedClient`.
   * Reads (`findOne`, `find`, `countDocuments`) are hedged and retried; writes and `use` are neither (the
   * driver's `retryWrites` retries a write exactly once where that is safe).
   */
  readonly policies?: ResilienceConfig.Policies | undefined
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

// What the policies may do: a read is safe twice (hedged, retried); a write or `use` neither.
const READS: ReadonlySet<string> = new Set(["findOne", "find", "countDocuments"])
const read: GuardedClient.CallOptions = { idempotent: true }
const write: GuardedClient.CallOptions = { retry: false }

// A client and the sockets it opened (internal/sockets.ts).
interface Session {
  readonly client: MongoClient
  readonly sockets: Sockets.Sockets
}

/**
 * Makes the service: a `MongoClient` for the life of the scope and a
 * `mongodb_client` breaker (registered in the `Registry.Registry` if one
 * is provided). Starts even when MongoDB is down (the driver connects on the
 * first call; the start check pings it once, counting a failure); fails with
 * `MongoStoreError { reason: "BadQuery" }` for a URL the driver cannot parse.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  const timeouts = yield* GuardedClient.durations(options.breaker?.name ?? "mongodb_client", {
    operationTimeout: [options.operationTimeout, 5000],
    serverSelectionTimeout: [options.serverSelectionTimeout, 2000],
    connectTimeout: [options.connectTimeout, 2000],
    socketTimeout: [options.socketTimeout, 3000]
  })
  const operationTimeout = timeouts.operationTimeout
  const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  const settings = clientOptions(options)
  // Counts each client's sockets (see internal/sockets.ts) for as long as the store lives.
  yield* Effect.acquireRelease(Effect.sync(Sockets.subscribe), () => Effect.sync(Sockets.unsubscribe))
  const guarded = yield* GuardedClient.make<Session, MongoStoreError>({
    breaker: {
      name: "mongodb_client",
      recoveryTimeout: "30 seconds",
      maxOpenDuration: "60 seconds",
      // A backstop: each call already ends at operationTimeout with a Timeout.
      callTimeout: operationTimeout + 1000,
      failureMode: "fail-fast",
      isFailure,
      ...options.breaker
    },
    connect: () => ({ client: new MongoClient(url, settings), sockets: new Set() }),
    // Bounded: `close` ends server sessions first, which waits for the server when it still looks reachable.
    close: (session) => Sockets.run(session.sockets, () => session.client.close()),
    // Then destroy what `close` left open: a connection handshake with a server that never answers would
    // hold the process until `connectTimeout`.
    abandon: (session) => Sockets.destroy(session.sockets),
    deadline: operationTimeout,
    onError: toMongoStoreError,
    onTimeout: (operation, collection) =>
      new MongoStoreError({
        reason: "Timeout",
        operation,
        message: `no answer within ${operationTimeout} ms`,
        collection
      }),
    span: {
      prefix: "MongoStore",
      attributes: (collection) =>
        collection === undefined
          ? { "db.system": "mongodb" }
          : { "db.system": "mongodb", "db.collection.name": collection }
    },
    probe: options.probe === false
      ? false
      : (session) => Sockets.run(session.sockets, () => session.client.db("admin").command({ ping: 1 })),
    policies: options.policies
  })

  const call = <A>(
    operation: string,
    collection: string | undefined,
    f: (db: Db, signal: AbortSignal) => Promise<A>
  ): MongoStoreResult<A> =>
    guarded.call(
      operation,
      (session, signal) => Sockets.run(session.sockets, () => f(session.client.db(options.database), signal)),
      collection,
      READS.has(operation) ? read : write
    )

  return MongoStore.of({
    ...operations(call, (collection, limit) =>
      Effect.fail(
        new MongoStoreError({
          reason: "BadQuery",
          operation: "find",
          message: `find needs a positive integer limit, got ${limit}`,
          collection
        })
      )),
    breaker: guarded.breaker
  })
})

const layers = GuardedClient.layers(MongoStore, make)

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
export const layer: (
  options: Options
) => Layer.Layer<MongoStore, MongoStoreError | CircuitBreaker.CircuitBreakerOptionsError> = layers.layer

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
export const layerConfig: (
  options: Config.Wrap<Options>
) => Layer.Layer<MongoStore, MongoStoreError | CircuitBreaker.CircuitBreakerOptionsError | Config.ConfigError> =
  layers.layerConfig
