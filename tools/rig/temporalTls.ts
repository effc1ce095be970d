/**
 * A TLS and API-key front for the Temporal test server, which speaks plaintext gRPC only: an HTTP/2 TLS
 * server on 127.0.0.1 that checks every call's `authorization: Bearer <key>` header and forwards the
 * accepted ones, stream by stream, to the test server (`http2.connect`, plaintext). A call without the
 * right key gets gRPC status 16 (UNAUTHENTICATED) in a trailers-only answer and never reaches Temporal,
 * as Temporal Cloud answers a wrong API key. This is how the Temporal TLS and API-key path is tested
 * (docs/testing.md).
 *
 * Plain Node APIs only, like the rest of the rig.
 */
import * as http2 from "node:http2"
import type * as net from "node:net"
import { HOST } from "./servers.ts"

export interface TemporalTlsProxy {
  /** `127.0.0.1:PORT`: the TLS endpoint (no scheme), for `TEMPORAL_ADDRESS`. */
  readonly address: string
  readonly port: number
  /** Calls refused for a missing or wrong key, and calls forwarded. */
  readonly counts: () => { readonly refused: number; readonly forwarded: number }
  /** Closes the listener and every session, both sides. */
  readonly close: () => Promise<void>
}

export interface TemporalTlsProxyOptions {
  /** The test server's port on 127.0.0.1 (plaintext gRPC). */
  readonly targetPort: number
  /** PEM certificate and key of the TLS listener. */
  readonly cert: string
  readonly key: string
  /** The API key every call must carry as `authorization: Bearer <apiKey>`. */
  readonly apiKey: string
}

const UNAUTHENTICATED = 16

export async function startTemporalTlsProxy(options: TemporalTlsProxyOptions): Promise<TemporalTlsProxy> {
  let refused = 0
  let forwarded = 0
  const sessions = new Set<http2.ClientHttp2Session | http2.ServerHttp2Session>()
  let upstream: http2.ClientHttp2Session | undefined
  const target = (): http2.ClientHttp2Session => {
    if (upstream === undefined || upstream.closed || upstream.destroyed) {
      const session = http2.connect(`http://${HOST}:${options.targetPort}`)
      session.on("error", () => undefined)
      session.on("close", () => sessions.delete(session))
      sessions.add(session)
      upstream = session
    }
    return upstream
  }
  const server = http2.createSecureServer({ cert: options.cert, key: options.key, allowHTTP1: false })
  server.on("session", (session) => {
    sessions.add(session)
    session.on("close", () => sessions.delete(session))
    session.on("error", () => undefined)
  })
  server.on("stream", (stream, headers) => {
    stream.on("error", () => undefined)
    if (headers["authorization"] !== `Bearer ${options.apiKey}`) {
      refused++
      stream.respond({
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(UNAUTHENTICATED),
        "grpc-message": "invalid API key"
      }, { endStream: true })
      return
    }
    forwarded++
    const request: http2.OutgoingHttpHeaders = {}
    for (const [name, value] of Object.entries(headers)) {
      if (name !== ":scheme" && name !== ":authority" && value !== undefined) request[name] = value
    }
    const call = target().request(request)
    call.on("error", () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR))
    stream.on("close", () => {
      if (!call.closed) call.close(http2.constants.NGHTTP2_CANCEL)
    })
    let trailers: http2.OutgoingHttpHeaders = {}
    call.on("response", (response) => {
      const { ...answer } = response as http2.OutgoingHttpHeaders
      // A trailers-only answer (an error status at once) ends the stream with its headers.
      if (answer["grpc-status"] !== undefined) stream.respond(answer, { endStream: true })
      else stream.respond(answer, { waitForTrailers: true })
    })
    call.on("trailers", (received) => {
      trailers = { ...received } as http2.OutgoingHttpHeaders
    })
    stream.on("wantTrailers", () => stream.sendTrailers(trailers))
    stream.pipe(call)
    call.on("data", (chunk: Buffer) => {
      if (!stream.destroyed && !stream.closed && stream.headersSent) stream.write(chunk)
    })
    call.on("end", () => {
      if (!stream.destroyed && !stream.closed && stream.headersSent && !stream.writableEnded) stream.end()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, HOST, () => resolve())
  })
  const port = (server.address() as net.AddressInfo).port
  return {
    address: `${HOST}:${port}`,
    port,
    counts: () => ({ refused, forwarded }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy()
        server.close(() => resolve())
      })
  }
}
