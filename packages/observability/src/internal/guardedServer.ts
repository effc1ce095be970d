/**
 * A Node HTTP/1.1 server that bounds the work one connection can queue.
 *
 * Node parses every request of a chunk at once and hands each to the app at
 * once, so one client pipelining a thousand requests it never reads makes the
 * process run a thousand handlers and hold a thousand answers. Here a
 * connection's requests run one at a time, in order (HTTP/1.1 answers in order
 * anyway); at most `maxPipelinedRequests` may wait behind the running one, one
 * more closes the connection and drops the waiting ones unrun; a single read
 * ending more request heads than that closes it before Node parses them; an
 * answer the client does not read within `writeStallMillis` closes the
 * connection. Node itself stops reading while answers are unsent (its socket
 * buffer is full); the socket is read otherwise, so a client that leaves is
 * seen at once: its running request is interrupted and the waiting ones dropped.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as NodeHttp from "node:http"
import type * as Net from "node:net"

/** @internal */
export interface GuardOptions {
  readonly maxPipelinedRequests: number
  readonly writeStallMillis: number
}

type Pending = readonly [event: "request" | "checkContinue", NodeHttp.IncomingMessage, NodeHttp.ServerResponse]

interface Connection {
  busy: boolean
  waitingDrain: boolean
  readonly queue: Array<Pending>
  timer: ReturnType<typeof setTimeout> | undefined
}

const HEAD_END = Buffer.from("\r\n\r\n")

const ignore = () => undefined

/** The request heads a chunk ends (counting stops past `limit`). */
const countHeads = (chunk: Buffer, limit: number): number => {
  let count = 0
  for (let at = chunk.indexOf(HEAD_END); at !== -1 && count <= limit; at = chunk.indexOf(HEAD_END, at + 4)) count++
  return count
}

/** @internal */
export class GuardedServer extends NodeHttp.Server {
  readonly #options: GuardOptions
  readonly #connections = new WeakMap<Net.Socket, Connection>()
  // An upgraded connection (WebSocket) carries frames, not requests: its reads are not counted.
  readonly #upgraded = new WeakSet<Net.Socket>()

  constructor(serverOptions: NodeHttp.ServerOptions, options: GuardOptions) {
    super(serverOptions)
    this.#options = options
  }

  override emit(event: string, ...args: Array<any>): boolean {
    if (event === "connection") {
      const handled = super.emit(event, ...args)
      this.#guardReads(args[0] as Net.Socket)
      return handled
    }
    if (event === "upgrade") {
      const socket = args[1] as Net.Socket
      this.#upgraded.add(socket)
      socket.off("data", ignore)
    }
    if (event !== "request" && event !== "checkContinue") return super.emit(event, ...args)
    const request = args[0] as NodeHttp.IncomingMessage
    const response = args[1] as NodeHttp.ServerResponse
    const socket = request.socket
    // The rest of a chunk still parses after a cut: those requests are dropped unrun.
    if (socket.destroyed) return true
    const connection = this.#connectionOf(socket)
    if (connection.queue.length >= this.#options.maxPipelinedRequests) {
      connection.queue.length = 0
      socket.destroy()
      return true
    }
    connection.queue.push([event, request, response])
    this.#pump(socket, connection)
    return true
  }

  /**
   * Node parses a whole chunk before any handler can object, and a 64 KiB chunk holds thousands of
   * tiny requests: a chunk carrying more request heads than may wait closes the connection unparsed.
   */
  #guardReads(socket: Net.Socket): void {
    const limit = this.#options.maxPipelinedRequests + 1
    const upgraded = this.#upgraded
    const emit = socket.emit
    socket.emit = function(this: Net.Socket, event: string | symbol, ...args: Array<any>): boolean {
      if (event === "data" && Buffer.isBuffer(args[0]) && !upgraded.has(this) && countHeads(args[0], limit) > limit) {
        this.destroy()
        return true
      }
      return Reflect.apply(emit, this, [event, ...args]) as boolean
    } as typeof socket.emit
    // Node feeds its parser from `data` events once anyone listens to them, so the check above sees each chunk first.
    socket.on("data", ignore)
  }

  #connectionOf(socket: Net.Socket): Connection {
    let connection = this.#connections.get(socket)
    if (connection === undefined) {
      const created: Connection = { busy: false, waitingDrain: false, queue: [], timer: undefined }
      socket.once("close", () => {
        created.queue.length = 0
        clearTimeout(created.timer)
      })
      this.#connections.set(socket, created)
      connection = created
    }
    return connection
  }

  #pump(socket: Net.Socket, connection: Connection): void {
    if (connection.busy || connection.waitingDrain || socket.destroyed) return
    if (connection.queue.length === 0) return
    if (socket.writableNeedDrain) {
      this.#awaitDrain(socket, connection)
      return
    }
    const [event, request, response] = connection.queue.shift()!
    connection.busy = true
    let done = false
    const finished = () => {
      if (done) return
      done = true
      clearTimeout(connection.timer)
      connection.busy = false
      this.#pump(socket, connection)
    }
    // From the end of the answer to its last byte on the wire: a client that does not read stalls here.
    response.once("prefinish", () => {
      if (!done) connection.timer = this.#stallTimer(socket)
    })
    response.once("finish", finished)
    response.once("close", finished)
    super.emit(event, request, response)
  }

  #awaitDrain(socket: Net.Socket, connection: Connection): void {
    connection.waitingDrain = true
    connection.timer = this.#stallTimer(socket)
    socket.once("drain", () => {
      clearTimeout(connection.timer)
      connection.waitingDrain = false
      this.#pump(socket, connection)
    })
  }

  #stallTimer(socket: Net.Socket): ReturnType<typeof setTimeout> {
    // A socket-level guard, like Node's own headersTimeout: it runs on Node's timers, outside any fiber.
    const timer = setTimeout(() => socket.destroy(), this.#options.writeStallMillis)
    timer.unref()
    return timer
  }
}

/** The server `Http.makeNodeServer` documents: its timeouts, pipelining and write-stall limits from the options. */
export const make = (options: {
  readonly headersTimeout?: Duration.Input | undefined
  readonly requestTimeout?: Duration.Input | undefined
  readonly maxPipelinedRequests?: number | undefined
  readonly writeStallTimeout?: Duration.Input | undefined
}): NodeHttp.Server => {
  const requestTimeout = Duration.toMillis(Duration.fromInputUnsafe(options.requestTimeout ?? "10 seconds"))
  const headersTimeout = Math.min(
    requestTimeout,
    Duration.toMillis(Duration.fromInputUnsafe(options.headersTimeout ?? "5 seconds"))
  )
  const server = new GuardedServer({
    headersTimeout,
    requestTimeout,
    keepAliveTimeout: 5_000,
    // Check the timeouts often enough that a small one is honoured (Node's default checks every 30 s).
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, headersTimeout / 4))
  }, {
    maxPipelinedRequests: Math.max(0, Math.floor(options.maxPipelinedRequests ?? 16)),
    writeStallMillis: Duration.toMillis(Duration.fromInputUnsafe(options.writeStallTimeout ?? "10 seconds"))
  })
  server.maxRequestsPerSocket = 1_000
  return server
}
