/**
 * A flood of pipelined requests that the clients never read, against a real
 * listening server on 127.0.0.1 (raw `node:net` sockets): the server must keep
 * answering `/live` within a second, its memory must stay bounded while the
 * flood lasts and come back near its baseline after it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Http, Metrics } from "@neural-hive/observability"
import { CircuitBreaker, Registry } from "@neural-hive/resilience"
import { Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import * as net from "node:net"
import * as v8 from "node:v8"
import * as vm from "node:vm"

// The workers run without --expose-gc; this flag makes `gc` reachable from a fresh context.
v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void

const MB = 1024 * 1024
const CONNECTIONS = 40
const REQUESTS_PER_CONNECTION = 1_000
const TRICKLERS = 20
/** Breakers registered, so that one `/metrics` answer weighs what a real service's does (tens of KB). */
const BREAKERS = 40
const ROUTES = ["/metrics", "/health", "/live", "/nowhere", "/metrics?x=1"]

const FloodLayer = Http.layer({ host: "127.0.0.1", port: 0, writeStallTimeout: "1 second" }).pipe(
  Layer.provideMerge(Metrics.layer()),
  Layer.provideMerge(Registry.layer)
)

const portOf = Effect.map(HttpServer.HttpServer, (server) => "port" in server.address ? server.address.port : 0)

/** One `GET` (of `/live` unless said) over a fresh connection: its status and how long it took, or 0 after 5 s. */
const live = (port: number, path = "/live") =>
  new Promise<{ readonly status: number; readonly millis: number }>((resolve) => {
    const started = performance.now()
    const socket = net.connect({ host: "127.0.0.1", port })
    let answer = ""
    const done = (status: number) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ status, millis: performance.now() - started })
    }
    const timer = setTimeout(() => done(0), 5_000)
    socket.on("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1")
      const match = /^HTTP\/1\.1 (\d{3})/.exec(answer)
      if (match !== null) done(Number(match[1]))
    })
    socket.on("error", () => done(0))
  })

interface Flooder {
  readonly socket: net.Socket
  /** After `socket.resume()`: the answers the server sent before it closed the connection (-1: still open at 5 s). */
  readonly answered: () => Promise<number>
}

/** A client that writes every request at once and does not read: resolves once everything is written. */
const flooder = (port: number) =>
  new Promise<Flooder>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    const requests = Array.from(
      { length: REQUESTS_PER_CONNECTION },
      (_, i) => `GET ${ROUTES[i % ROUTES.length]} HTTP/1.1\r\nHost: x\r\n\r\n`
    ).join("")
    let received = ""
    const closed = new Promise<number>((done) => {
      const timer = setTimeout(() => done(-1), 5_000)
      socket.on("close", () => {
        clearTimeout(timer)
        done(received.split("HTTP/1.1 ").length - 1)
      })
    })
    socket.on("error", () => undefined)
    socket.on("connect", () =>
      socket.write(requests, () =>
        resolve({
          socket,
          answered: () => {
            socket.on("data", (chunk: Buffer) => received += chunk.toString("latin1"))
            socket.resume()
            return closed
          }
        })))
    // Not read until `answered`: the socket stays paused, so the server's answers pile up unread.
    socket.pause()
  })

/**
 * A client that writes a few requests at a time (under the pipelining cap, so no single chunk is refused), every
 * 10 ms for 2 s, and does not read: the server answers until its socket buffers fill, then the write stall cuts it.
 */
const trickler = (port: number) =>
  new Promise<Flooder & { readonly sent: () => number }>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    const batch = Array.from({ length: 8 }, (_, i) => `GET ${ROUTES[i % ROUTES.length]} HTTP/1.1\r\nHost: x\r\n\r\n`)
      .join("")
    let sent = 0
    let received = ""
    const timer = setInterval(() => {
      if (socket.destroyed || sent >= 1_600) {
        clearInterval(timer)
        return
      }
      socket.write(batch)
      sent += 8
    }, 10)
    const closed = new Promise<number>((done) => {
      const deadline = setTimeout(() => done(-1), 5_000)
      socket.on("close", () => {
        clearInterval(timer)
        clearTimeout(deadline)
        done(received.split("HTTP/1.1 ").length - 1)
      })
    })
    socket.on("error", () => undefined)
    socket.on("connect", () =>
      resolve({
        socket,
        sent: () => sent,
        answered: () => {
          socket.on("data", (chunk: Buffer) => received += chunk.toString("latin1"))
          socket.resume()
          return closed
        }
      }))
    socket.pause()
  })

const heap = () => {
  gc()
  gc()
  return process.memoryUsage()
}

describe("Http: a flood of unread pipelined requests", () => {
  it.live(
    "/live keeps answering within 1 s, RSS stays within baseline + 150 MB, and memory comes back after",
    () =>
      Effect.gen(function*() {
        for (let i = 0; i < BREAKERS; i++) yield* CircuitBreaker.make({ name: `dependency_${i}` })
        const port = yield* portOf
        // Warm up every route, as a running service is, so the baseline holds what serving allocates anyway.
        for (const path of ROUTES) yield* Effect.promise(() => live(port, path))
        for (let i = 0; i < 3; i++) assert.strictEqual((yield* Effect.promise(() => live(port))).status, 200)
        const baseline = heap()

        const result = yield* Effect.promise(async () => {
          let peakRss = process.memoryUsage().rss
          const sampler = setInterval(() => {
            peakRss = Math.max(peakRss, process.memoryUsage().rss)
          }, 20)
          const started = performance.now()
          const flood = await Promise.all(Array.from({ length: CONNECTIONS }, () => flooder(port)))
          const trickle = await Promise.all(Array.from({ length: TRICKLERS }, () => trickler(port)))
          const probes: Array<{ readonly status: number; readonly millis: number }> = []
          // Ten probes over about two seconds while the flood is in the server.
          for (let i = 0; i < 10; i++) {
            probes.push(await live(port))
            await new Promise((resolve) => setTimeout(resolve, 200))
          }
          clearInterval(sampler)
          // Now read: the server must have closed each connection having answered at most the running request
          // and the 16 that may wait (before the fix it answers all 1,000, or is still at it).
          const answered = await Promise.all(flood.map((f) => f.answered()))
          const trickled = await Promise.all(trickle.map((t) => t.answered().then((n) => [n, t.sent()] as const)))
          const floodMillis = performance.now() - started
          for (const f of [...flood, ...trickle]) f.socket.destroy()
          return { probes, peakRss, answered, trickled, floodMillis }
        })

        // Let the server notice the closed sockets and drop what it still held for them.
        for (let i = 0; i < 20 && (yield* Effect.promise(() => live(port))).status !== 200; i++) {
          yield* Effect.sleep("100 millis")
        }
        yield* Effect.sleep("300 millis")
        const after = heap()
        const report = {
          probesMillis: result.probes.map((p) => Math.round(p.millis)),
          rssBaselineMB: Math.round(baseline.rss / MB),
          rssPeakMB: Math.round(result.peakRss / MB),
          rssAfterMB: Math.round(after.rss / MB),
          heapBaselineMB: Math.round(baseline.heapUsed / MB),
          heapAfterMB: Math.round(after.heapUsed / MB),
          mostAnswered: Math.max(...result.answered),
          stillOpen: result.answered.filter((n) => n === -1).length,
          trickled: result.trickled,
          floodSeconds: Math.round(result.floodMillis / 100) / 10
        }
        console.log(`flood: ${JSON.stringify(report)}`)

        for (const probe of result.probes) {
          assert.strictEqual(probe.status, 200, JSON.stringify(report))
          assert.isBelow(probe.millis, 1_000, JSON.stringify(report))
        }
        assert.isBelow(result.peakRss - baseline.rss, 150 * MB, JSON.stringify(report))
        for (const answered of result.answered) {
          assert.isAtLeast(answered, 0, `the server closed every flooding connection: ${JSON.stringify(report)}`)
          assert.isAtMost(answered, 17, `queued work was dropped: ${JSON.stringify(report)}`)
        }
        assert.isBelow(after.heapUsed - baseline.heapUsed, 20 * MB, JSON.stringify(report))
        assert.isBelow(after.rss - baseline.rss, 100 * MB, JSON.stringify(report))
      }).pipe(Effect.provide(FloodLayer)),
    60_000
  )
})
