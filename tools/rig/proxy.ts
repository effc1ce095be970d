/**
 * A TCP fault proxy for tests: clients connect to the proxy on 127.0.0.1, the proxy
 * connects to the real server, and a test switches faults on and off while traffic flows.
 *
 * Modes (apply to new connections, and where it makes sense to open ones):
 * - `pass()`: forward both ways (also: end a delay, a slow tail or a stall; listen again after `refuse("unlisten")`).
 * - `refuse()`: accept each new connection and reset it at once (client sees ECONNRESET or a
 *   closed connection); it still counts in `connectionsAccepted`, so a test can assert that a
 *   breaker made no new attempts. `refuse("unlisten")` closes the listening socket instead, so
 *   connects fail with ECONNREFUSED (then attempts cannot be counted). Open connections are
 *   untouched: call `cut()` as well to drop them.
 * - `stall()`: accept and read, but forward nothing either way (no answer ever comes), on new
 *   and open connections. What was read is held (up to 1 MiB a direction, then the socket is
 *   paused) and delivered in order when the mode goes back to `pass()`/`delay()`: a network
 *   partition that heals.
 * - `delay(ms)`: forward every chunk `ms` later, both directions, order kept.
 * - `slowTail({ fraction, delayMs, seed })`: a slow tail. Requests go through at once; each chunk
 *   from the server (a reply, when one request at a time is in flight on the connection) is held
 *   `delayMs` with probability `fraction`, the choice drawn from a PRNG seeded with `seed`, so the
 *   same chunks in the same order get the same choices. Order on a connection is kept: a reply
 *   behind a held one waits for it, as on TCP. `repliesSeen` and `repliesDelayed` count the
 *   server's chunks in this mode and those held.
 * - `cut()`: reset every open connection now (the mode does not change).
 *
 * Bounded: at most `maxConnections` open pairs, 1 MiB held a direction; `close()` resets all
 * connections, clears all timers and stops listening.
 */
import * as net from "node:net"
import { freePort } from "./servers.ts"

export type ProxyMode = "pass" | "refuse" | "stall" | "delay" | "slowTail"

export interface FaultProxyOptions {
  /** Port of the real server on 127.0.0.1. */
  readonly targetPort: number
  /** Host of the real server; loopback only. Default 127.0.0.1. */
  readonly targetHost?: string
  /** Port for the proxy to listen on; default: a free one (below the ephemeral range). */
  readonly port?: number
  /** Default 256. */
  readonly maxConnections?: number
}

const HOST = "127.0.0.1"
const MAX_HELD_BYTES = 1024 * 1024

/** The slow tail's settings (`FaultProxy.slowTail`). */
export interface SlowTail {
  /** Share of the server's chunks held, from 0 to 1. */
  readonly fraction: number
  /** How long a held chunk is held, ms. */
  readonly delayMs: number
  /** Seed of the choice (an unsigned 32-bit integer); default 1. */
  readonly seed?: number
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
const seeded = (seed: number): () => number => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Held {
  readonly chunk: Buffer
  readonly due: number
}

/** One direction of a connection pair: from `source` to `sink`, through a queue the mode controls. */
class Direction {
  readonly #proxy: FaultProxy
  readonly #source: net.Socket
  readonly #sink: net.Socket
  readonly #queue: Array<Held> = []
  #bytes = 0
  #ended = false
  #waitingDrain = false
  #timer: NodeJS.Timeout | undefined

  constructor(proxy: FaultProxy, source: net.Socket, sink: net.Socket, fromServer: boolean) {
    this.#proxy = proxy
    this.#source = source
    this.#sink = sink
    source.on("data", (chunk: Buffer) => {
      const delay = proxy.mode === "delay"
        ? proxy.delayMs
        : proxy.mode === "slowTail" && fromServer
        ? proxy.tailDelay()
        : 0
      this.#queue.push({ chunk, due: Date.now() + delay })
      this.#bytes += chunk.length
      this.#flow()
      this.pump()
    })
    source.on("end", () => {
      this.#ended = true
      this.pump()
    })
  }

  /** Forwards what is due, unless stalled. */
  pump(): void {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (this.#proxy.mode === "stall" || this.#sink.destroyed) return
    const now = Date.now()
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!
      if (head.due > now) {
        this.#timer = setTimeout(() => this.pump(), head.due - now)
        return
      }
      this.#queue.shift()
      this.#bytes -= head.chunk.length
      if (!this.#sink.write(head.chunk) && !this.#waitingDrain) {
        this.#waitingDrain = true
        this.#sink.once("drain", () => {
          this.#waitingDrain = false
          this.#flow()
        })
      }
    }
    this.#flow()
    if (this.#ended && !this.#sink.writableEnded) this.#sink.end()
  }

  /** Pauses the source while too much is held or the sink is full. */
  #flow(): void {
    if (this.#source.destroyed) return
    if (this.#bytes > MAX_HELD_BYTES || this.#waitingDrain) this.#source.pause()
    else this.#source.resume()
  }

  dispose(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#queue.length = 0
    this.#bytes = 0
  }
}

class Pair {
  readonly client: net.Socket
  readonly upstream: net.Socket
  readonly directions: Array<Direction>

  constructor(proxy: FaultProxy, client: net.Socket, upstream: net.Socket) {
    this.client = client
    this.upstream = upstream
    this.directions = [new Direction(proxy, client, upstream, false), new Direction(proxy, upstream, client, true)]
  }

  /** Resets both sockets (RST), dropping anything held. */
  reset(): void {
    for (const d of this.directions) d.dispose()
    for (const socket of [this.client, this.upstream]) {
      if (!socket.destroyed) {
        if (socket.readyState === "open") socket.resetAndDestroy()
        else socket.destroy()
      }
    }
  }
}

export class FaultProxy {
  readonly host = HOST
  readonly targetHost: string
  readonly targetPort: number
  readonly maxConnections: number
  #port: number
  #server: net.Server | undefined
  #mode: ProxyMode = "pass"
  #delayMs = 0
  #accepted = 0
  #tail: { readonly fraction: number; readonly delayMs: number; readonly next: () => number } | undefined
  #repliesSeen = 0
  #repliesDelayed = 0
  #closed = false
  readonly #pairs = new Set<Pair>()

  private constructor(options: FaultProxyOptions, port: number) {
    const targetHost = options.targetHost ?? HOST
    if (!net.isIPv4(targetHost) || !targetHost.startsWith("127.")) {
      throw new Error(`FaultProxy: target must be a 127.x.x.x address, got ${targetHost}`)
    }
    this.targetHost = targetHost
    this.targetPort = options.targetPort
    this.maxConnections = options.maxConnections ?? 256
    this.#port = port
  }

  /** Starts a proxy in `pass` mode listening on 127.0.0.1. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    if (options.port !== undefined) {
      const proxy = new FaultProxy(options, options.port)
      await proxy.#listen()
      return proxy
    }
    // a port below the ephemeral range, so it stays ours across refuse("unlisten") / pass()
    for (let attempt = 1;; attempt++) {
      const proxy = new FaultProxy(options, await freePort())
      try {
        await proxy.#listen()
        return proxy
      } catch (error) {
        if (attempt >= 5) throw error
      }
    }
  }

  /** Port the proxy listens on (stays the same across `refuse("unlisten")` / `pass()`). */
  get port(): number {
    return this.#port
  }

  /** `127.0.0.1:PORT` of the proxy. */
  get address(): string {
    return `${HOST}:${this.#port}`
  }

  get mode(): ProxyMode {
    return this.#mode
  }

  get delayMs(): number {
    return this.#delayMs
  }

  /** TCP connections the proxy accepted since start or `resetCounters()` (refused-by-reset ones included). */
  get connectionsAccepted(): number {
    return this.#accepted
  }

  /** Connection pairs open right now. */
  get openConnections(): number {
    return this.#pairs.size
  }

  /** Chunks from the server seen in `slowTail` mode since start or `resetCounters()`. */
  get repliesSeen(): number {
    return this.#repliesSeen
  }

  /** Of `repliesSeen`, those held `delayMs`. */
  get repliesDelayed(): number {
    return this.#repliesDelayed
  }

  resetCounters(): void {
    this.#accepted = 0
    this.#repliesSeen = 0
    this.#repliesDelayed = 0
  }

  /** The slow tail's delay for the server's next chunk: `delayMs` or 0, by the seeded choice. @internal */
  tailDelay(): number {
    const tail = this.#tail
    if (tail === undefined) return 0
    this.#repliesSeen++
    if (tail.next() >= tail.fraction) return 0
    this.#repliesDelayed++
    return tail.delayMs
  }

  /** Forward normally; ends a stall or delay, and listens again after `refuse("unlisten")`. */
  async pass(): Promise<void> {
    this.#setMode("pass", 0)
    await this.#listen()
  }

  /** Latency: every chunk is forwarded `ms` later, both ways. */
  async delay(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new Error(`FaultProxy.delay: bad delay ${ms}`)
    this.#setMode("delay", ms)
    await this.#listen()
  }

  /**
   * A slow tail: each chunk from the server is held `delayMs` with probability `fraction` (seeded
   * choice); requests and the other replies go through at once. A new call restarts the sequence.
   */
  async slowTail(tail: SlowTail): Promise<void> {
    const { delayMs, fraction } = tail
    const seed = tail.seed ?? 1
    if (!(fraction >= 0 && fraction <= 1)) throw new Error(`FaultProxy.slowTail: bad fraction ${fraction}`)
    if (!(delayMs >= 0 && Number.isFinite(delayMs))) throw new Error(`FaultProxy.slowTail: bad delay ${delayMs}`)
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`FaultProxy.slowTail: bad seed ${seed}`)
    this.#setMode("slowTail", 0)
    this.#tail = { fraction, delayMs, next: seeded(seed) }
    await this.#listen()
  }

  /** Accept and read but never forward or answer, on new and open connections. */
  async stall(): Promise<void> {
    this.#setMode("stall", 0)
    await this.#listen()
  }

  /**
   * New connections fail: `"reset"` (default) accepts and resets each one (counted);
   * `"unlisten"` stops listening so connects get ECONNREFUSED. Open connections stay: see `cut()`.
   */
  async refuse(how: "reset" | "unlisten" = "reset"): Promise<void> {
    this.#setMode("refuse", 0)
    if (how === "unlisten") await this.#unlisten()
    else await this.#listen()
  }

  /** Resets every open connection now. */
  cut(): void {
    for (const pair of this.#pairs) pair.reset()
    this.#pairs.clear()
  }

  /** Resets all connections, stops listening. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true
    this.cut()
    await this.#unlisten()
  }

  #setMode(mode: ProxyMode, delayMs: number): void {
    if (this.#closed) throw new Error("FaultProxy is closed")
    this.#mode = mode
    this.#delayMs = delayMs
    this.#tail = undefined
    for (const pair of this.#pairs) for (const d of pair.directions) d.pump()
  }

  #listen(): Promise<void> {
    if (this.#server || this.#closed) return Promise.resolve()
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(socket))
    server.maxConnections = this.maxConnections
    this.#server = server
    return new Promise((resolve, reject) => {
      server.once("error", (error) => {
        this.#server = undefined
        reject(error)
      })
      server.listen(this.#port, HOST, () => {
        const address = server.address()
        if (typeof address === "object" && address !== null) this.#port = address.port
        resolve()
      })
    })
  }

  /**
   * Closes the listening socket now. (`server.close`'s callback would wait for every open
   * connection to end; the pairs are tracked and reset by `cut()` instead.)
   */
  #unlisten(): Promise<void> {
    const server = this.#server
    if (!server) return Promise.resolve()
    this.#server = undefined
    server.close()
    return new Promise((resolve) => setImmediate(resolve))
  }

  #accept(client: net.Socket): void {
    this.#accepted++
    client.on("error", () => undefined)
    if (this.#mode === "refuse" || this.#closed) {
      client.resetAndDestroy()
      return
    }
    const upstream = net.createConnection({ host: this.targetHost, port: this.targetPort, allowHalfOpen: true })
    upstream.on("error", () => undefined)
    const pair = new Pair(this, client, upstream)
    this.#pairs.add(pair)
    let connected = false
    upstream.once("connect", () => {
      connected = true
      client.resume()
    })
    const done = (): void => {
      if (!this.#pairs.delete(pair)) return
      pair.reset()
    }
    // Either side gone for good: drop the other (a server that is down resets the client, as it would).
    client.once("close", done)
    upstream.once("close", (hadError) => {
      // A server that reset the connection (a crashed process with unread input does) resets the
      // client too; no `end` comes in that case, so waiting for the half-close would leave the
      // client connected to nothing, its requests held forever.
      if (!connected || hadError) return done()
      // let a graceful server close reach the client first (half-close is forwarded by Direction)
      if (client.writableEnded || client.destroyed) done()
      else client.once("finish", done)
    })
  }
}
