/**
 * Read-back, straight from the servers, after the service is gone: every key in the Kafka topic,
 * every ticket in MongoDB with its outbox mark, and the Temporal status of chosen workflows.
 */
import { Client, Connection, WorkflowNotFoundError } from "@temporalio/client"
import { Kafka, logLevel } from "kafkajs"
import { MongoClient } from "mongodb"
import { until } from "../rig/time.ts"
import { DATABASE, TICKETS, TOPIC, within } from "./model.ts"

export interface KafkaKeys {
  /** Messages per key. */
  readonly counts: Map<string, number>
  /** Keys with more than one message whose values are not all the same bytes (a duplicate a consumer cannot collapse). */
  readonly differing: Array<string>
}

/**
 * Every key in the topic, counted, and whether each key's messages carry the same value: a fresh consumer group
 * from the beginning, until the end offsets seen first. `read_committed` (the default, kafkajs's) skips what
 * aborted transactions wrote; `read_uncommitted` counts it too. A batch's last offset counts the transaction
 * markers, so the end is reached in both.
 */
export const readKafka = async (
  broker: string,
  deadlineMs: number,
  isolation: "read_committed" | "read_uncommitted" = "read_committed"
): Promise<KafkaKeys> => {
  const kafka = new Kafka({
    clientId: "chaos-readback",
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 5 }
  })
  const admin = kafka.admin()
  await within(admin.connect(), 30_000, "kafka admin connect")
  let ends: Map<number, number>
  try {
    const offsets = await within(admin.fetchTopicOffsets(TOPIC), 30_000, "kafka fetchTopicOffsets")
    ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]))
  } finally {
    await within(admin.disconnect(), 10_000, "kafka admin disconnect").catch(() => undefined)
  }
  const counts = new Map<string, number>()
  const values = new Map<string, string>()
  const differing = new Set<string>()
  if ([...ends.values()].every((high) => high === 0)) return { counts, differing: [] }
  const reached = new Map<number, number>()
  const consumer = kafka.consumer({
    groupId: `chaos-readback-${isolation}-${process.pid}-${Date.now()}`,
    readUncommitted: isolation === "read_uncommitted"
  })
  try {
    await within(consumer.connect(), 30_000, "kafka consumer connect")
    await within(consumer.subscribe({ topic: TOPIC, fromBeginning: true }), 30_000, "kafka subscribe")
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          const key = message.key === null ? "(null)" : message.key.toString()
          counts.set(key, (counts.get(key) ?? 0) + 1)
          const value = message.value === null ? "(null)" : message.value.toString("base64")
          const first = values.get(key)
          if (first === undefined) values.set(key, value)
          else if (first !== value) differing.add(key)
        }
        reached.set(batch.partition, Number(batch.lastOffset()) + 1)
      }
    })
    const done = await until(
      () => [...ends].every(([partition, high]) => (reached.get(partition) ?? 0) >= high),
      deadlineMs,
      100
    )
    if (!done) {
      throw new Error(
        `kafka read-back: reached ${JSON.stringify([...reached])} of ${JSON.stringify([...ends])} in ${deadlineMs} ms`
      )
    }
  } finally {
    await within(consumer.disconnect(), 15_000, "kafka consumer disconnect").catch(() => undefined)
  }
  return { counts, differing: [...differing] }
}

/** Keys seen more than once, and the messages beyond the first of each. */
export const duplicatesOf = (kafka: KafkaKeys): { readonly duplicatedKeys: number; readonly extraMessages: number } => {
  let duplicatedKeys = 0
  let extraMessages = 0
  for (const n of kafka.counts.values()) {
    if (n > 1) {
      duplicatedKeys++
      extraMessages += n - 1
    }
  }
  return { duplicatedKeys, extraMessages }
}

export interface MongoTickets {
  /** Tickets by plan id. */
  readonly counts: Map<string, number>
  /** Tickets whose `_id` is not `ticket-<plan>`. */
  readonly badIds: number
  /** Tickets still marked `outbox.state: "pending"`. */
  readonly pending: number
}

/** Every ticket in `orchestrator.tickets`, counted by plan. */
export const readMongo = async (url: string): Promise<MongoTickets> => {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000, directConnection: true })
  try {
    const docs = await within(
      client.db(DATABASE).collection(TICKETS).find({}, { projection: { _id: 1, planId: 1, outbox: 1 } }).toArray(),
      60_000,
      "mongodb read-back"
    )
    const counts = new Map<string, number>()
    let badIds = 0
    let pending = 0
    for (const doc of docs) {
      const plan = String(doc["planId"])
      if (String(doc._id) !== `ticket-${plan}`) badIds++
      if ((doc["outbox"] as { state?: unknown } | undefined)?.state === "pending") pending++
      counts.set(plan, (counts.get(plan) ?? 0) + 1)
    }
    return { counts, badIds, pending }
  } finally {
    await within(client.close(), 10_000, "mongodb close").catch(() => undefined)
  }
}

/** Each workflow's status name (`RUNNING`, `TERMINATED`, ...) or `NOT_FOUND`, described with a plain client. */
export const readWorkflows = async (
  address: string,
  workflowIds: ReadonlyArray<string>,
  deadlineMs: number
): Promise<Map<string, string>> => {
  const statuses = new Map<string, string>()
  if (workflowIds.length === 0) return statuses
  const connection = await within(Connection.connect({ address }), 30_000, "temporal connect")
  try {
    const client = new Client({ connection, namespace: "default" })
    const deadline = performance.now() + deadlineMs
    const queue = [...workflowIds]
    // A few describes at once: hundreds of ids, one server shared with nothing else by then.
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        if (performance.now() > deadline) throw new Error(`temporal read-back: over ${deadlineMs} ms`)
        const status = await within(
          client.workflow.getHandle(id).describe().then(
            (d) => d.status.name,
            (error: unknown) => {
              if (error instanceof WorkflowNotFoundError) return "NOT_FOUND"
              throw error
            }
          ),
          15_000,
          `temporal describe ${id}`
        )
        statuses.set(id, status)
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
  } finally {
    await within(connection.close(), 10_000, "temporal close").catch(() => undefined)
  }
  return statuses
}
