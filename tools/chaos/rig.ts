/**
 * The rig: private Redis, Kafka, Temporal (test server) and MongoDB (FerretDB) servers, each behind
 * a fault proxy on 127.0.0.1, and the topic the relay publishes to. Started together, stopped in
 * any state (a half-started rig included).
 */
import { Kafka, logLevel } from "kafkajs"
import { FaultProxy } from "../rig/proxy.ts"
// kafkajs's idle request-queue fix for this harness's own kafkajs clients (no TimeoutNegativeWarning).
import "../rig/kafkajsQueue.ts"
import { freePort, type ServerHandle, startKafka, startMongo, startRedis, startTemporal } from "../rig/servers.ts"
import { TOPIC, within } from "./model.ts"

export interface Rig {
  readonly redis: ServerHandle
  readonly kafka: ServerHandle
  readonly temporal: ServerHandle
  readonly mongodb: ServerHandle
  readonly redisProxy: FaultProxy
  readonly kafkaProxy: FaultProxy
  readonly temporalProxy: FaultProxy
  readonly mongodbProxy: FaultProxy
}

/** Starts every server and proxy into `into` (so `stopRig` can stop a half-started rig); throws if one cannot start. */
export const startRig = async (into: Partial<Rig>): Promise<Rig> => {
  const rig = into as { -readonly [K in keyof Rig]?: Rig[K] }
  // Kafka advertises the proxy's port, so clients reconnect through the proxy after a metadata refresh.
  const kafkaProxyPort = await freePort()
  const started = await Promise.allSettled([
    startRedis({ startTimeoutMs: 60_000 }),
    startKafka({ advertisedPort: kafkaProxyPort, startTimeoutMs: 180_000 }),
    startTemporal({ startTimeoutMs: 120_000 }),
    startMongo({ startTimeoutMs: 60_000 })
  ])
  const [redis, kafka, temporal, mongodb] = started
  if (redis.status === "fulfilled") rig.redis = redis.value
  if (kafka.status === "fulfilled") rig.kafka = kafka.value
  if (temporal.status === "fulfilled") rig.temporal = temporal.value
  if (mongodb.status === "fulfilled") rig.mongodb = mongodb.value
  const failures = started.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []))
  if (failures.length > 0) throw new Error(`chaos: a server did not start:\n${failures.join("\n")}`)
  rig.redisProxy = await FaultProxy.start({ targetPort: rig.redis!.port })
  rig.kafkaProxy = await FaultProxy.start({ port: kafkaProxyPort, targetPort: rig.kafka!.port })
  rig.temporalProxy = await FaultProxy.start({ targetPort: rig.temporal!.port })
  rig.mongodbProxy = await FaultProxy.start({ targetPort: rig.mongodb!.port })
  await createTopic(rig.kafkaProxy.address)
  return rig as Rig
}

/** The topic exists before the first send (auto-creation would make the first sends fail or wait). */
const createTopic = async (broker: string): Promise<void> => {
  const admin = new Kafka({
    clientId: "chaos-admin",
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    retry: { retries: 8 }
  })
    .admin()
  await within(admin.connect(), 60_000, "kafka admin connect")
  try {
    await within(
      admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true }),
      60_000,
      "create topic"
    )
  } finally {
    await within(admin.disconnect(), 10_000, "kafka admin disconnect").catch(() => undefined)
  }
}

/** Closes the proxies, then stops the servers; never throws. */
export const stopRig = async (rig: Partial<Rig>): Promise<void> => {
  for (const proxy of [rig.redisProxy, rig.kafkaProxy, rig.temporalProxy, rig.mongodbProxy]) {
    await proxy?.close().catch(() => undefined)
  }
  await Promise.allSettled([rig.redis, rig.kafka, rig.temporal, rig.mongodb].map((server) => server?.stop()))
}
