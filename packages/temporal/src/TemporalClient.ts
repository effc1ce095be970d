/**
 * The Orchestrator Dynamic's Temporal client (`start_workflow`, `get_workflow_handle`,
 * `query_workflow`) as an Effect service over `@temporalio/client`, behind a
 * fail-fast circuit breaker (`temporal_client`): while Temporal is down or the
 * breaker is open, workflows cannot be started and every call fails at once with
 * `CircuitBreakerError`.
 *
 * - Every call has a deadline (`rpcTimeout`): when it passes, the gRPC call is
 *   cancelled and the caller gets `TemporalError { reason: "DeadlineExceeded" }`.
 * - The SDK's own gRPC retry interceptor (up to 10 attempts over ~20 s) is off by
 *   default, so each call has one outcome within its deadline.
 * - When in doubt, count (`isFailure`): workflow-level answers (already
 *   started, not found, query rejected or failed, workflow failed, invalid
 *   argument) reach the caller as typed errors and never move the breaker;
 *   everything else counts (connection failures, gRPC UNAVAILABLE /
 *   DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED, authentication, and any error this
 *   package does not recognise).
 * - The breaker governs the connection: when it opens the gRPC connection is
 *   closed (no reconnect attempts while open), and the first call or probe (the
 *   gRPC health check) after the open period dials a fresh one.
 *
 * **Example** (Starting a workflow and querying it)
 *
 * ```ts
 * import { Effect } from "effect"
 * import { TemporalClient } from "@neural-hive/temporal"
 *
 * const program = Effect.gen(function*() {
 *   const temporal = yield* TemporalClient.TemporalClient
 *   const handle = yield* temporal.startWorkflow("ticketWorkflow", {
 *     taskQueue: "orchestrator",
 *     workflowId: "ticket-42",
 *     args: ["42"]
 *   })
 *   return yield* handle.query<string>("status")
 * }).pipe(Effect.provide(TemporalClient.layer({ address: "127.0.0.1:7233" })))
 * ```
 *
 * @since 0.1.0
 */
import { status as GrpcStatus } from "@grpc/grpc-js"
import {
  CircuitBreaker,
  type CircuitBreakerError,
  GuardedClient,
  redact,
  type ResilienceConfig
} from "@neural-hive/resilience"
import {
  Client,
  type ClientOptions,
  Connection,
  type ConnectionOptions,
  defaultGrpcRetryOptions,
  isGrpcServiceError,
  makeGrpcRetryInterceptor,
  NamespaceNotFoundError,
  type QueryDefinition,
  QueryNotRegisteredError,
  QueryRejectedError,
  ServiceError,
  type SignalDefinition,
  type TLSConfig,
  ValueError,
  type Workflow,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowExecutionDescription,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type WorkflowStartOptions
} from "@temporalio/client"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a Temporal call failed. `AlreadyStarted`, `NotFound`, `QueryRejected`,
 * `QueryFailed`, `WorkflowFailed` and `InvalidArgument` are answers about this
 * call and never move the breaker; every other reason counts against Temporal
 * (see `isFailure`): when in doubt, count.
 *
 * | reason | from | counts |
 * |---|---|---|
 * | `Connection` | no connection (refused, reset, dropped, closed), gRPC UNAVAILABLE "No connection established" | yes |
 * | `Unavailable` | gRPC UNAVAILABLE from the server, a health check that is not SERVING | yes |
 * | `DeadlineExceeded` | no answer within `rpcTimeout`, gRPC DEADLINE_EXCEEDED | yes |
 * | `ResourceExhausted` | gRPC RESOURCE_EXHAUSTED (rate limited, overloaded) | yes |
 * | `Authentication` | gRPC UNAUTHENTICATED / PERMISSION_DENIED: the service's credentials, not one call | yes |
 * | `AlreadyStarted` | `WorkflowExecutionAlreadyStartedError`, gRPC ALREADY_EXISTS | no |
 * | `NotFound` | `WorkflowNotFoundError`, `NamespaceNotFoundError`, gRPC NOT_FOUND | no |
 * | `QueryRejected` | `QueryRejectedError` (the workflow's status fails the reject condition) | no |
 * | `QueryFailed` | `QueryNotRegisteredError`: no such query, or its handler threw | no |
 * | `WorkflowFailed` | `WorkflowFailedError`: the workflow itself failed, was terminated or timed out | no |
 * | `InvalidArgument` | gRPC INVALID_ARGUMENT / FAILED_PRECONDITION / OUT_OF_RANGE, a value the SDK could not convert, a bad address | no |
 * | `Unknown` | anything else (gRPC UNKNOWN, INTERNAL, UNIMPLEMENTED, an error this package does not know) | yes |
 *
 * @since 0.1.0
 * @category errors
 */
export type TemporalErrorReason =
  | "Connection"
  | "Unavailable"
  | "DeadlineExceeded"
  | "ResourceExhausted"
  | "Authentication"
  | "AlreadyStarted"
  | "NotFound"
  | "QueryRejected"
  | "QueryFailed"
  | "WorkflowFailed"
  | "InvalidArgument"
  | "Unknown"

/**
 * The one error of every `TemporalClient` operation (besides the breaker's
 * `CircuitBreakerError`). `grpcCode` is the gRPC status code when there was one.
 *
 * @since 0.1.0
 * @category errors
 */
export class TemporalError extends Data.TaggedError("TemporalError")<{
  readonly reason: TemporalErrorReason
  readonly operation: string
  readonly message: string
  readonly workflowId?: string | undefined
  readonly grpcCode?: number | undefined
  readonly cause?: unknown
}> {}

const CALLER_ERRORS: ReadonlySet<TemporalErrorReason> = new Set([
  "AlreadyStarted",
  "NotFound",
  "QueryRejected",
  "QueryFailed",
  "WorkflowFailed",
  "InvalidArgument"
])

/**
 * The Temporal classifier, the `isFailure` of the `temporal_client` breaker:
 * every error counts against Temporal except the workflow-level answers
 * (`AlreadyStarted`, `NotFound`, `QueryRejected`, `QueryFailed`,
 * `WorkflowFailed`, `InvalidArgument`). Errors this package does not know count
 * too.
 *
 * **Example** (Classifying by hand)
 *
 * ```ts
 * import { TemporalClient } from "@neural-hive/temporal"
 *
 * const counts = TemporalClient.isFailure(
 *   new TemporalClient.TemporalError({ reason: "AlreadyStarted", operation: "startWorkflow", message: "" })
 * ) // false
 * TemporalClient.isFailure(new Error("something new")) // true
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const isFailure = (error: unknown): boolean =>
  !(error instanceof TemporalError && CALLER_ERRORS.has(error.reason))

// gRPC says UNAVAILABLE both when it never reached a server and when a server answered it;
// these details are grpc-js's own words for the first case.
const NO_CONNECTION =
  /No connection established|Connection dropped|Connection closed|ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|Failed to connect/i
const SYSCALL_CODE = /^E[A-Z]+$/

const grpcReason = (code: number, details: string): TemporalErrorReason => {
  switch (code) {
    case GrpcStatus.UNAVAILABLE:
      return NO_CONNECTION.test(details) ? "Connection" : "Unavailable"
    case GrpcStatus.DEADLINE_EXCEEDED:
      return "DeadlineExceeded"
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return "ResourceExhausted"
    case GrpcStatus.UNAUTHENTICATED:
    case GrpcStatus.PERMISSION_DENIED:
      return "Authentication"
    case GrpcStatus.CANCELLED:
      // Cancelled without our deadline passing: the channel was closed under the call.
      return "Connection"
    case GrpcStatus.INTERNAL:
      // grpc-js reports a reset HTTP/2 stream as INTERNAL "RST_STREAM ...": a transport failure.
      return /RST_STREAM|Call ended without gRPC status/i.test(details) ? "Connection" : "Unknown"
    case GrpcStatus.ALREADY_EXISTS:
      return "AlreadyStarted"
    case GrpcStatus.NOT_FOUND:
      return "NotFound"
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.FAILED_PRECONDITION:
    case GrpcStatus.OUT_OF_RANGE:
      return "InvalidArgument"
    default:
      return "Unknown"
  }
}

// The SDK's ServiceError says what failed ("Failed to start Workflow"); its gRPC cause says why.
const messageOf = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const inner = cause.cause
  return inner instanceof Error && inner.message !== "" && !cause.message.includes(inner.message)
    ? `${cause.message}: ${inner.message}`
    : cause.message
}

/**
 * Maps anything `@temporalio/client` throws to a `TemporalError`.
 *
 * **Example** (Mapping an SDK error)
 *
 * ```ts
 * import { WorkflowNotFoundError } from "@temporalio/client"
 * import { TemporalClient } from "@neural-hive/temporal"
 *
 * const error = TemporalClient.toTemporalError("describeWorkflow", new WorkflowNotFoundError("gone", "w-1", undefined))
 * error.reason // "NotFound"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const toTemporalError = (operation: string, cause: unknown, workflowId?: string): TemporalError => {
  let reason: TemporalErrorReason = "Unknown"
  let grpcCode: number | undefined
  if (cause instanceof WorkflowExecutionAlreadyStartedError) reason = "AlreadyStarted"
  else if (cause instanceof WorkflowNotFoundError || cause instanceof NamespaceNotFoundError) reason = "NotFound"
  else if (cause instanceof QueryRejectedError) reason = "QueryRejected"
  else if (cause instanceof QueryNotRegisteredError) reason = "QueryFailed"
  else if (cause instanceof WorkflowFailedError) reason = "WorkflowFailed"
  else if (cause instanceof ValueError || cause instanceof TypeError) reason = "InvalidArgument"
  else {
    // ServiceError wraps the gRPC error as its cause; a raw gRPC error can also surface.
    const grpc = isGrpcServiceError(cause)
      ? cause
      : cause instanceof ServiceError && isGrpcServiceError(cause.cause)
      ? cause.cause
      : undefined
    if (grpc !== undefined) {
      grpcCode = grpc.code
      reason = grpcReason(grpc.code, grpc.details ?? grpc.message)
    } else if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code
      if ((typeof code === "string" && SYSCALL_CODE.test(code)) || NO_CONNECTION.test(messageOf(cause))) {
        reason = "Connection"
      }
    }
  }
  return new TemporalError({
    reason,
    operation,
    message: redact(messageOf(cause)),
    workflowId,
    grpcCode,
    cause
  })
}

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * A workflow execution, with every operation through the breaker and a deadline.
 * Holds no connection: it stays valid across the breaker closing the connection.
 * Like the SDK's handle, its operations address the workflow's latest run, unless
 * `getWorkflowHandle` was given a `runId`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkflowHandle {
  readonly workflowId: string
  /** The run seen when the handle was made: the first run for `startWorkflow`, the current one for `getWorkflowHandle`. */
  readonly runId: string | undefined
  readonly describe: Effect.Effect<WorkflowExecutionDescription, TemporalError | CircuitBreakerError>
  /** Runs a query on the workflow; needs a worker polling its task queue. */
  readonly query: <R, Args extends Array<any> = []>(
    query: QueryDefinition<R, Args> | string,
    ...args: Args
  ) => Effect.Effect<R, TemporalError | CircuitBreakerError>
  /** Sends a signal to the workflow. */
  readonly signal: <Args extends Array<any> = []>(
    signal: SignalDefinition<Args> | string,
    ...args: Args
  ) => Effect.Effect<void, TemporalError | CircuitBreakerError>
  /** Terminates the workflow run, with a reason for its history. */
  readonly terminate: (reason?: string) => Effect.Effect<void, TemporalError | CircuitBreakerError>
}

// -----------------------------------------------------------------------------
// service
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category services
 */
export class TemporalClient extends Context.Service<TemporalClient, {
  /** Starts a workflow (the Python service's `start_workflow`); `AlreadyStarted` when the id is taken. */
  readonly startWorkflow: <T extends Workflow>(
    workflow: string | T,
    options: WorkflowStartOptions<T>
  ) => Effect.Effect<WorkflowHandle, TemporalError | CircuitBreakerError>
  /**
   * A handle on an existing workflow (the Python service's `get_workflow_handle`). Costs one
   * DescribeWorkflowExecution, so it fails with `NotFound` for an unknown workflow and
   * with `CircuitBreakerError` while the breaker is open.
   */
  readonly getWorkflowHandle: (
    workflowId: string,
    runId?: string
  ) => Effect.Effect<WorkflowHandle, TemporalError | CircuitBreakerError>
  /** Runs a query on the workflow's latest run (the Python service's `query_workflow`); needs a worker polling its task queue. */
  readonly queryWorkflow: <R, Args extends Array<any> = []>(
    workflowId: string,
    query: QueryDefinition<R, Args> | string,
    ...args: Args
  ) => Effect.Effect<R, TemporalError | CircuitBreakerError>
  /** Describes a workflow (its status, type, task queue, start time) by id, and run id if given. */
  readonly describeWorkflow: (
    workflowId: string,
    runId?: string
  ) => Effect.Effect<WorkflowExecutionDescription, TemporalError | CircuitBreakerError>
  /** Sends a signal to a workflow by id, without making a handle first. */
  readonly signalWorkflow: <Args extends Array<any> = []>(
    workflowId: string,
    signal: SignalDefinition<Args> | string,
    ...args: Args
  ) => Effect.Effect<void, TemporalError | CircuitBreakerError>
  /**
   * Anything else on the SDK's `Client`, through the breaker and the deadline.
   * `operation` names the call in errors. Meant for single RPCs: the call is cut at
   * `rpcTimeout` and that counts as a failure, so do not wait here for a long
   * workflow's result.
   */
  readonly use: <A>(
    operation: string,
    f: (client: Client) => Promise<A>
  ) => Effect.Effect<A, TemporalError | CircuitBreakerError>
  readonly breaker: CircuitBreaker.CircuitBreaker
}>()("@neural-hive/temporal/TemporalClient") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `host:port` of the Temporal frontend (default port 7233). */
  readonly address: string
  /** Default `default`. */
  readonly namespace?: string | undefined
  /** Breaker options; `name` defaults to `temporal_client`, 5 failures, 30 s / 60 s as in the Orchestrator Dynamic config. */
  readonly breaker?: Partial<CircuitBreaker.Options> | undefined
  /** The deadline of every call (default 5 seconds). */
  readonly rpcTimeout?: Duration.Input | undefined
  /** Cap of gRPC's reconnect backoff while the breaker is closed (default 2 seconds; gRPC's own is 120 s). */
  readonly maxReconnectDelay?: Duration.Input | undefined
  /**
   * Attempts per call for gRPC UNAVAILABLE / RESOURCE_EXHAUSTED answers, with the SDK's
   * backoff, all inside `rpcTimeout` (default 1: no retry, one outcome per call).
   */
  readonly grpcAttempts?: number | undefined
  /** Temporal Cloud API key; never logged. */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** TLS: `true`, or the SDK's `TLSConfig` (default off). */
  readonly tls?: TLSConfig | boolean | undefined
  /** Passed to the SDK's `Client` (data converter, interceptors, identity). */
  readonly clientOptions?: Omit<ClientOptions, "connection" | "namespace"> | undefined
  /**
   * The gRPC health check once at start (through the breaker, bounded by `rpcTimeout`) and as the breaker's
   * trial when its open period ends with no call to try it (default true). `false`: neither.
   */
  readonly probe?: boolean | undefined
  /**
   * The circuit's policies (`ResilienceConfig.policiesOf`), composed around every call by `GuardedClient`: an
   * adaptive limit bounds the starts a hanging frontend can hold. Reads (`describeWorkflow`, `queryWorkflow`,
   * `getWorkflowHandle`) are hedged and retried; a start, a signal, a termination and `use` are neither (a
   * start that timed out may have started the workflow).
   */
  readonly policies?: ResilienceConfig.Policies | undefined
}

/**
 * The `@temporalio/client` connection options used by `make`.
 *
 * **Example** (Inspecting the gRPC settings)
 *
 * ```ts
 * import { TemporalClient } from "@neural-hive/temporal"
 *
 * const options = TemporalClient.connectionOptions({ address: "127.0.0.1:7233" })
 * options.interceptors // [] : no SDK retries
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectionOptions = (options: Options): ConnectionOptions => {
  const maxReconnectDelay = Duration.toMillis(options.maxReconnectDelay ?? 2000)
  const attempts = options.grpcAttempts ?? 1
  return {
    address: options.address,
    interceptors: attempts > 1 ? [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: attempts }))] : [],
    channelArgs: {
      "grpc.initial_reconnect_backoff_ms": Math.min(100, maxReconnectDelay),
      "grpc.max_reconnect_backoff_ms": maxReconnectDelay
    },
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.apiKey === undefined ? {} : { apiKey: Redacted.value(options.apiKey) })
  }
}

// What the policies may do: a read is safe twice (hedged, retried); a start, signal or termination neither.
const READS: ReadonlySet<string> = new Set(["describeWorkflow", "queryWorkflow", "getWorkflowHandle"])
const read: GuardedClient.CallOptions = { idempotent: true }
const write: GuardedClient.CallOptions = { retry: false }

interface Session {
  readonly connection: Connection
  readonly client: Client
}

// The frontend's gRPC health service name, as Temporal's server registers it.
const HEALTH_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
const SERVING = 1

const healthCheck = async (session: Session, signal: AbortSignal): Promise<void> => {
  const { status } = await session.connection.withAbortSignal(
    signal,
    () => session.connection.healthService.check({ service: HEALTH_SERVICE })
  )
  if (status !== SERVING) {
    // Shaped as the gRPC error an unavailable server gives, so it maps to `Unavailable` like one.
    const details = `health check: ${HEALTH_SERVICE} is not serving (status ${status})`
    throw Object.assign(new Error(details), { code: GrpcStatus.UNAVAILABLE, details, metadata: {} })
  }
}

/**
 * Makes the service: a lazy gRPC connection for the life of the scope and a
 * `temporal_client` breaker (registered in the `Registry.Registry` if one
 * is provided). Starts even when Temporal is down (the start check counts it);
 * fails with `TemporalError { reason: "InvalidArgument" }` for an address the
 * SDK rejects.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  const timeouts = yield* GuardedClient.durations(options.breaker?.name ?? "temporal_client", {
    rpcTimeout: [options.rpcTimeout, 5000],
    maxReconnectDelay: [options.maxReconnectDelay, 2000]
  })
  const rpcTimeout = timeouts.rpcTimeout
  const namespace = options.namespace ?? "default"
  const settings = connectionOptions(options)
  const guarded = yield* GuardedClient.make<Session, TemporalError>({
    breaker: {
      name: "temporal_client",
      recoveryTimeout: "30 seconds",
      maxOpenDuration: "60 seconds",
      // A backstop: each call already ends at rpcTimeout with DeadlineExceeded.
      callTimeout: rpcTimeout + 1000,
      failureMode: "fail-fast",
      isFailure,
      ...options.breaker
    },
    connect: () => {
      const connection = Connection.lazy(settings)
      return { connection, client: new Client({ ...options.clientOptions, connection, namespace }) }
    },
    close: (session) => session.connection.close(),
    closeTimeout: "1 second",
    deadline: rpcTimeout,
    onError: toTemporalError,
    onTimeout: (operation, workflowId) =>
      new TemporalError({
        reason: "DeadlineExceeded",
        operation,
        message: `no answer within ${rpcTimeout} ms`,
        workflowId
      }),
    span: {
      prefix: "TemporalClient",
      attributes: (workflowId) => workflowId === undefined ? {} : { "temporal.workflow_id": workflowId }
    },
    probe: options.probe === false ? false : healthCheck,
    policies: options.policies
  })

  const call = <A>(
    operation: string,
    workflowId: string | undefined,
    f: (client: Client) => Promise<A>
  ): Effect.Effect<A, TemporalError | CircuitBreakerError> =>
    guarded.call(
      operation,
      // Interrupting the fiber (the deadline, the caller) aborts the signal, which cancels the gRPC call.
      (session, signal) => session.connection.withAbortSignal(signal, () => f(session.client)),
      workflowId,
      READS.has(operation) ? read : write
    )

  const handle = (workflowId: string, runId: string | undefined, seenRunId: string | undefined): WorkflowHandle => ({
    workflowId,
    runId: seenRunId,
    describe: call("describeWorkflow", workflowId, (c) => c.workflow.getHandle(workflowId, runId).describe()),
    query: (query, ...args) =>
      call("queryWorkflow", workflowId, (c) => c.workflow.getHandle(workflowId, runId).query(query, ...args)),
    signal: (signal, ...args) =>
      call("signalWorkflow", workflowId, (c) => c.workflow.getHandle(workflowId, runId).signal(signal, ...args)),
    terminate: (reason) =>
      Effect.asVoid(
        call("terminateWorkflow", workflowId, (c) => c.workflow.getHandle(workflowId, runId).terminate(reason))
      )
  })

  return TemporalClient.of({
    startWorkflow: (workflow, startOptions) =>
      Effect.map(
        call("startWorkflow", startOptions.workflowId, (c) => c.workflow.start(workflow, startOptions)),
        (started) => handle(started.workflowId, undefined, started.firstExecutionRunId)
      ),
    getWorkflowHandle: (workflowId, runId) =>
      Effect.map(
        call("getWorkflowHandle", workflowId, (c) => c.workflow.getHandle(workflowId, runId).describe()),
        (description) => handle(workflowId, runId, description.runId)
      ),
    queryWorkflow: (workflowId, query, ...args) =>
      call("queryWorkflow", workflowId, (c) => c.workflow.getHandle(workflowId).query(query, ...args)),
    describeWorkflow: (workflowId, runId) =>
      call("describeWorkflow", workflowId, (c) => c.workflow.getHandle(workflowId, runId).describe()),
    signalWorkflow: (workflowId, signal, ...args) =>
      call("signalWorkflow", workflowId, (c) => c.workflow.getHandle(workflowId).signal(signal, ...args)),
    use: (operation, f) => call(operation, undefined, f),
    breaker: guarded.breaker
  })
})

const layers = GuardedClient.layers(TemporalClient, make)

/**
 * **Example** (Providing the client)
 *
 * ```ts
 * import { TemporalClient } from "@neural-hive/temporal"
 *
 * const TemporalLive = TemporalClient.layer({
 *   address: "127.0.0.1:7233",
 *   namespace: "neural-hive",
 *   rpcTimeout: "5 seconds",
 *   breaker: { failMax: 5, recoveryTimeout: "30 seconds", maxOpenDuration: "60 seconds" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (
  options: Options
) => Layer.Layer<TemporalClient, TemporalError | CircuitBreaker.CircuitBreakerOptionsError> = layers.layer

/**
 * Reads the options from config.
 *
 * **Example** (Address and namespace from the environment)
 *
 * ```ts
 * import { Config } from "effect"
 * import { TemporalClient } from "@neural-hive/temporal"
 *
 * const TemporalLive = TemporalClient.layerConfig({
 *   address: Config.String("TEMPORAL_ADDRESS"),
 *   namespace: Config.String("TEMPORAL_NAMESPACE").pipe(Config.withDefault("default"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  options: Config.Wrap<Options>
) => Layer.Layer<TemporalClient, TemporalError | CircuitBreaker.CircuitBreakerOptionsError | Config.ConfigError> =
  layers.layerConfig
