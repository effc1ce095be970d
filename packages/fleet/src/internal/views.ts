/**
 * Each replica's view of its circuits: published with the heartbeat (a key
 * per replica with a time to live, and a set of the replicas), read by the
 * board once a second while a page is open. Off the call path.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Redis } from "ioredis"
import type { ReplicaView, ReplicaViews } from "../Fleet.ts"
import { command, type Replica as Member } from "./replica.ts"

/** One replica's report (`Fleet.ReplicaView`). */
export type Replica = ReplicaView

/** Writes this replica's report, expiring after `ttl` milliseconds unless renewed. */
export const publish = (
  client: Redis,
  prefix: string,
  pod: string,
  ttl: number,
  circuits: Replica["circuits"]
) =>
  client.multi()
    .set(`${prefix}:replica:${pod}`, JSON.stringify({ ttl, circuits }), "PX", ttl)
    .sadd(`${prefix}:replicas`, pod)
    .exec()

export const stateLabels = { Closed: "closed", Open: "open", HalfOpen: "half_open" } as const

/** The replicas' reports (dropping members whose report expired) and the probe leases' holders. */
export const read = async (client: Redis, prefix: string, names: ReadonlyArray<string>) => {
  const pods = await client.smembers(`${prefix}:replicas`)
  const batch = client.pipeline()
  for (const member of pods) batch.get(`${prefix}:replica:${member}`).pttl(`${prefix}:replica:${member}`)
  for (const name of names) batch.get(`${prefix}:${name}:lease`)
  const replies = (await batch.exec()) ?? []
  const replicas: Array<Replica> = []
  const gone: Array<string> = []
  pods.forEach((member, i) => {
    const text = replies[2 * i]?.[1]
    const ttl = Number(replies[2 * i + 1]?.[1])
    if (typeof text !== "string") return gone.push(member)
    try {
      const report = JSON.parse(text) as { readonly ttl: number; readonly circuits: Replica["circuits"] }
      replicas.push({ pod: member, ageMillis: Math.max(0, report.ttl - ttl), circuits: report.circuits })
    } catch {
      gone.push(member)
    }
  })
  if (gone.length > 0) await client.srem(`${prefix}:replicas`, ...gone)
  const leases: Record<string, string> = {}
  names.forEach((name, i) => {
    const holder = replies[2 * pods.length + i]?.[1]
    // The holder is `pod:epoch`.
    if (typeof holder === "string") leases[name] = holder.slice(0, holder.lastIndexOf(":"))
  })
  replicas.sort((a, b) => a.pod.localeCompare(b.pod))
  return { replicas, leases }
}

/** This replica's state of each circuit. */
export const localStates = (r: Member): Replica["circuits"] =>
  Object.fromEntries(Array.from(r.circuits, ([name, c]) => [name, stateLabels[c.breaker.view.state()]]))

/** Every replica's view (this one first), read from Redis; only this replica's while Redis is away. */
export const replicaViews = (r: Member): Effect.Effect<ReplicaViews> =>
  Effect.suspend(() => {
    const { connected, group, pod } = r
    const own = { pod, ageMillis: 0, circuits: localStates(r) }
    const alone: ReplicaViews = { group, pod, connected, replicas: [own], leases: {} }
    if (!connected) return Effect.succeed(alone)
    const names = Array.from(r.circuits.keys())
    return command(r, "VIEWS", () => read(r.client, r.prefix, names)).pipe(
      Effect.map(({ leases, replicas }): ReplicaViews => ({
        group,
        pod,
        connected,
        replicas: [{ pod, ageMillis: 0, circuits: localStates(r) }, ...replicas.filter((x) => x.pod !== pod)],
        leases
      })),
      Effect.catch(() => Effect.succeed(alone))
    )
  })
