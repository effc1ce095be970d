/**
 * The sockets a `MongoClient` opened, so that closing it can destroy the ones the driver leaves open.
 *
 * `MongoClient.close()` cancels a connection only while its TCP connect is under way: a connection whose
 * handshake (`hello`) is waiting for a server that accepted and never answers stays open until
 * `connectTimeout`, and holds the process that long after the layer closed (the server monitor opens one
 * on every check).
 *
 * Node publishes every client socket it creates on the `net.client.socket` diagnostics channel. The
 * store runs the driver's work inside `run`; what the driver starts from there (the monitor's timers, its
 * connection attempts) keeps that async context, so each socket is counted to its client.
 *
 * @internal
 */
import { AsyncLocalStorage } from "node:async_hooks"
import * as diagnostics from "node:diagnostics_channel"
import type { Socket } from "node:net"

/** The open sockets of one client. */
export type Sockets = Set<Socket>

const owner = new AsyncLocalStorage<Sockets>()
const CHANNEL = "net.client.socket"
let subscribers = 0

const onSocket = (message: unknown): void => {
  const sockets = owner.getStore()
  if (sockets === undefined) return
  const socket = (message as { readonly socket: Socket }).socket
  sockets.add(socket)
  socket.once("close", () => sockets.delete(socket))
}

/** Runs `f` (a driver call) so that the sockets it opens, now or later, are counted in `sockets`. */
export const run = <A>(sockets: Sockets, f: () => A): A => owner.run(sockets, f)

/** Destroys the sockets still open; after `close()`, nothing of the client's is left holding the process. */
export const destroy = (sockets: Sockets): void => {
  for (const socket of sockets) socket.destroy()
  sockets.clear()
}

/** Listens to the channel while at least one store lives (acquire). */
export const subscribe = (): void => {
  if (subscribers++ === 0) diagnostics.subscribe(CHANNEL, onSocket)
}

/** Stops listening when the last store closed (release). */
export const unsubscribe = (): void => {
  if (--subscribers === 0) diagnostics.unsubscribe(CHANNEL, onSocket)
}
