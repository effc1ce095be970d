/**
 * Smoke test of the test rig: each shared server answers through the real client the project
 * uses, and the fault tools (FaultProxy modes, pause/kill/restart) produce the client-side
 * failures the integration tests rely on.
 */
import { Client as TemporalClient, Connection, WorkflowExecutionAlreadyStartedError } from "@temporalio/client"
import { Redis } from "ioredis"
import { Kafka, logLevel } from "kafkajs"
import { MongoClient, MongoServerError } from "mongodb"
import { execFileSync } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { FaultProxy } from "../../tools/rig/proxy.ts"
import { freePort, rigPaths, startKafka, startRedis } from "../../tools/rig/servers.ts"
import type { ServerHandle } from "../../tools/rig/servers.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const unique = (prefix: string): string => `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`

/** ioredis set up to fail fast (see docs/testing.md); never retries a command. */
function fastRedis(port: number, overrides: { commandTimeout?: number; reconnect?: boolean } = {}): Redis {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: overrides.commandTimeout ?? 500,
    connectTimeout: 1_000,
    retryStrategy: (times) => (overrides.reconnect === false ? null : Math.min(times * 50, 200))
  })
  client.on("error", () => undefined)
  return client
}

/** Polls `check` every 50 ms until it passes or `ms` elapse. */
async function eventually(check: () => Promise<unknown>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      await check()
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as Error & { code?: unknown }).code
  return `${error.name} ${error.message} ${typeof code === "string" ? code : ""}`
}

describe("shared servers (globalSetup)", () => {
  it("provision.sh and servers.ts agree on the cache paths", () => {
    const out = execFileSync("bash", [path.join(repoRoot, ".ci", "provision.sh"), "--paths"], { encoding: "utf8" })
    const env = new Map(out.trim().split("\n").map((line) => line.split("=", 2) as [string, string]))
    const paths = rigPaths()
    expect(env.get("NH_KAFKA_DIR")).toBe(paths.kafkaDir)
    expect(env.get("NH_TEMPORAL_DIR")).toBe(paths.temporalDir)
    expect(env.get("NH_FERRETDB_DIR")).toBe(paths.ferretdbDir)
    expect(env.get("NH_JAEGER_DIR")).toBe(paths.jaegerDir)
    expect(env.get("NH_HELM_DIR")).toBe(paths.helmDir)
    expect(env.get("NH_ETCD_DIR")).toBe(paths.etcdDir)
    expect(env.get("NH_KUBE_DIR")).toBe(paths.kubeDir)
  })

  it("Redis answers through ioredis, with persistence off", async () => {
    const url = inject("redisUrl")
    expect(url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/)
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 })
    try {
      await redis.connect()
      expect(await redis.ping()).toBe("PONG")
      const key = unique("rig")
      await redis.set(key, "v", "EX", 60)
      expect(await redis.get(key)).toBe("v")
      expect(await redis.config("GET", "save")).toEqual(["save", ""])
      expect(await redis.config("GET", "appendonly")).toEqual(["appendonly", "no"])
    } finally {
      redis.disconnect()
    }
  })

  it("Kafka answers through kafkajs: describeCluster, produce, consume in a group", async () => {
    const brokers = inject("kafkaBrokers")
    expect(brokers).toMatch(/^127\.0\.0\.1:\d+$/)
    const kafka = new Kafka({ clientId: "rig-test", brokers: brokers.split(","), logLevel: logLevel.NOTHING })
    const admin = kafka.admin()
    const producer = kafka.producer({ allowAutoTopicCreation: true })
    const topic = unique("rig-topic")
    const consumer = kafka.consumer({ groupId: unique("rig-group") })
    try {
      await admin.connect()
      const cluster = await admin.describeCluster()
      expect(cluster.brokers.length).toBe(1)
      await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
      await producer.connect()
      await producer.send({ topic, messages: [{ key: "k", value: "hello" }] })
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      const received = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no message within 20 s")), 20_000)
        void consumer.run({
          eachMessage: async ({ message }) => {
            clearTimeout(timer)
            resolve(message.value?.toString() ?? "")
          }
        })
      })
      expect(received).toBe("hello")
    } finally {
      await consumer.disconnect()
      await producer.disconnect()
      await admin.disconnect()
    }
  })

  it("Temporal answers through @temporalio/client: start, describe, terminate", async () => {
    const address = inject("temporalAddress")
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/)
    const connection = await Connection.connect({ address, connectTimeout: 5_000 })
    try {
      const client = new TemporalClient({ connection, namespace: "default" })
      const workflowId = unique("rig-wf")
      const handle = await client.workflow.start("RigWorkflow", { taskQueue: "rig", workflowId, args: [1] })
      const description = await handle.describe()
      expect(description.status.name).toBe("RUNNING")
      expect(description.type).toBe("RigWorkflow")
      await expect(client.workflow.start("RigWorkflow", { taskQueue: "rig", workflowId })).rejects.toBeInstanceOf(
        WorkflowExecutionAlreadyStartedError
      )
      await handle.terminate("rig test done")
      expect((await handle.describe()).status.name).toBe("TERMINATED")
    } finally {
      await connection.close()
    }
  })

  it("MongoDB (FerretDB) answers through the mongodb driver; duplicate key is code 11000", async () => {
    const url = inject("mongodbUrl")
    expect(url).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/$/)
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 })
    try {
      await client.connect()
      const collection = client.db("rig").collection<{ k: string; v: number }>(unique("things"))
      await collection.createIndex({ k: 1 }, { unique: true })
      await collection.insertOne({ k: "a", v: 1 })
      expect(await collection.findOne({ k: "a" }, { projection: { _id: 0 } })).toEqual({ k: "a", v: 1 })
      const duplicate = await collection.insertOne({ k: "a", v: 2 }).then(() => undefined, (e: unknown) => e)
      expect(duplicate).toBeInstanceOf(MongoServerError)
      expect((duplicate as MongoServerError).code).toBe(11000)
      await collection.drop()
    } finally {
      await client.close()
    }
  })
})

describe("FaultProxy in front of a private Redis", () => {
  let server: ServerHandle
  let proxy: FaultProxy
  const clients: Array<Redis> = []
  const client = (port: number, overrides: { commandTimeout?: number; reconnect?: boolean } = {}): Redis => {
    const c = fastRedis(port, overrides)
    clients.push(c)
    return c
  }

  beforeAll(async () => {
    server = await startRedis()
    proxy = await FaultProxy.start({ targetPort: server.port })
  })

  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await proxy?.close()
    await server?.stop()
  })

  it("pass: commands go through, connections are counted", async () => {
    await proxy.pass()
    const before = proxy.connectionsAccepted
    const redis = client(proxy.port)
    await redis.connect()
    expect(await redis.ping()).toBe("PONG")
    expect(proxy.connectionsAccepted).toBe(before + 1)
    expect(proxy.openConnections).toBeGreaterThanOrEqual(1)
  })

  it("refuse(): a new connection is reset, and the attempt is counted", async () => {
    await proxy.refuse()
    const before = proxy.connectionsAccepted
    const redis = client(proxy.port, { reconnect: false })
    const error = await redis.connect().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    expect(redis.status).toBe("end")
    expect(proxy.connectionsAccepted).toBe(before + 1)
    await proxy.pass()
  })

  it("refuse(\"unlisten\"): connects fail with ECONNREFUSED; pass() listens again on the same port", async () => {
    const port = proxy.port
    await proxy.refuse("unlisten")
    const redis = client(port, { reconnect: false })
    const socketError = new Promise<unknown>((resolve) => redis.once("error", resolve))
    await expect(redis.connect()).rejects.toThrow() // "Connection is closed."; the cause comes as an event
    expect(errorText(await socketError)).toContain("ECONNREFUSED")
    await proxy.pass()
    expect(proxy.port).toBe(port)
    const again = client(port)
    await again.connect()
    expect(await again.ping()).toBe("PONG")
  })

  it("cut(): open connections drop at once; the client reconnects through the proxy", async () => {
    await proxy.pass()
    const redis = client(proxy.port)
    await redis.connect()
    expect(await redis.ping()).toBe("PONG")
    const closed = new Promise<void>((resolve) => redis.once("close", () => resolve()))
    proxy.cut()
    await closed
    await expect(redis.ping()).rejects.toThrow()
    await eventually(async () => expect(await redis.ping()).toBe("PONG"))
  })

  it("stall(): no answer, so commandTimeout fires; pass() heals the connection", async () => {
    await proxy.pass()
    const redis = client(proxy.port, { commandTimeout: 300 })
    await redis.connect()
    expect(await redis.ping()).toBe("PONG")
    await proxy.stall()
    const started = Date.now()
    await expect(redis.ping()).rejects.toThrow(/timed out/i)
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    await proxy.pass()
    expect(await redis.ping()).toBe("PONG")
  })

  it("delay(ms): answers come late but come", async () => {
    await proxy.delay(150)
    const redis = client(proxy.port, { commandTimeout: 5_000 })
    await redis.connect()
    const started = Date.now()
    expect(await redis.ping()).toBe("PONG")
    expect(Date.now() - started).toBeGreaterThanOrEqual(280) // 150 ms each way
    await proxy.pass()
  })

  it("slowTail: a seeded share of replies held, requests and order untouched; pass() ends it", async () => {
    // One command at a time, so each reply is one chunk from the server.
    const run = async (tail: { fraction: number; delayMs: number; seed?: number }, n: number) => {
      await proxy.slowTail(tail)
      proxy.resetCounters()
      const redis = client(proxy.port, { commandTimeout: 5_000 })
      await redis.connect() // its handshake's replies (INFO, CLIENT SETINFO...) are in the sequence too
      const before = { seen: proxy.repliesSeen, delayed: proxy.repliesDelayed }
      const slow: Array<number> = []
      for (let i = 0; i < n; i++) {
        const started = Date.now()
        expect(await redis.echo(`m${i}`)).toBe(`m${i}`) // every reply, in order, to its own request
        if (Date.now() - started >= tail.delayMs) slow.push(i)
      }
      const counts = { seen: proxy.repliesSeen - before.seen, delayed: proxy.repliesDelayed - before.delayed }
      redis.disconnect()
      return { ...counts, total: proxy.repliesDelayed, slow }
    }
    const a = await run({ fraction: 0.2, delayMs: 60, seed: 7 }, 100)
    expect(a.seen).toBe(100) // one reply a request
    expect(a.delayed).toBeGreaterThanOrEqual(8)
    expect(a.delayed).toBeLessThanOrEqual(35)
    // Each held reply took at least the delay (a lower bound: never flaky); on a quiet machine no other did.
    expect(a.slow.length).toBeGreaterThanOrEqual(a.delayed)
    const b = await run({ fraction: 0.2, delayMs: 60, seed: 7 }, 100)
    expect(b.total).toBe(a.total) // same seed, same chunks: same choices
    const none = await run({ fraction: 0, delayMs: 60 }, 20)
    expect(none).toMatchObject({ seen: 20, delayed: 0, total: 0 })
    const all = await run({ fraction: 1, delayMs: 20 }, 10)
    expect(all).toMatchObject({ seen: 10, delayed: 10 })
    expect(all.slow.length).toBe(10)
    await proxy.pass()
    proxy.resetCounters()
    const redis = client(proxy.port)
    await redis.connect()
    expect(await redis.ping()).toBe("PONG")
    expect(proxy.repliesSeen).toBe(0) // counted in slowTail mode only
    await expect(proxy.slowTail({ fraction: 1.5, delayMs: 10 })).rejects.toThrow(/bad fraction/)
    expect(proxy.mode).toBe("pass")
  })

  it("server pause()/resume(): commands time out while the process is stopped", async () => {
    const redis = client(server.port, { commandTimeout: 300 })
    await redis.connect()
    server.pause()
    try {
      await expect(redis.ping()).rejects.toThrow(/timed out/i)
    } finally {
      server.resume()
    }
    await eventually(async () => expect(await redis.ping()).toBe("PONG"))
  })

  it("server kill() then restart(): same port, the client reconnects", async () => {
    const redis = client(server.port)
    await redis.connect()
    await redis.set("k", "v")
    const port = server.port
    await server.kill()
    expect(server.running).toBe(false)
    await expect(redis.ping()).rejects.toThrow()
    await server.restart()
    expect(server.port).toBe(port)
    expect(server.running).toBe(true)
    await eventually(async () => expect(await redis.ping()).toBe("PONG"))
    expect(await redis.get("k")).toBeNull() // no persistence: a restarted Redis is empty
  })
})

describe("FaultProxy relays how the server closed", () => {
  /** A TCP server on 127.0.0.1 that ends (FIN) or resets (RST) each connection on its first bytes. */
  const closingServer = async (how: "end" | "reset") => {
    const server = net.createServer((socket) => {
      socket.on("error", () => undefined)
      socket.once("data", () => (how === "end" ? socket.end() : socket.resetAndDestroy()))
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const address = server.address()
    return { server, port: typeof address === "object" && address !== null ? address.port : 0 }
  }

  /** Connects through the proxy, writes, and resolves how the connection ended (bounded). */
  const closeSeen = (port: number) =>
    new Promise<string>((resolve) => {
      const socket = net.createConnection({ host: "127.0.0.1", port })
      const timer = setTimeout(() => {
        socket.destroy()
        resolve("still open after 5 s")
      }, 5_000)
      let ended = false
      socket.on("end", () => {
        ended = true
        socket.end()
      })
      socket.on("error", () => undefined)
      socket.once("connect", () => socket.write("hello"))
      socket.once("close", (hadError) => {
        clearTimeout(timer)
        resolve(hadError ? "reset" : ended ? "end" : "closed")
      })
    })

  it("a server that resets the connection resets the client's too (a crashed server with unread input)", async () => {
    const { server, port } = await closingServer("reset")
    const proxy = await FaultProxy.start({ targetPort: port })
    try {
      expect(await closeSeen(proxy.port)).toBe("reset")
      await eventually(async () => expect(proxy.openConnections).toBe(0))
    } finally {
      await proxy.close()
      server.close()
    }
  })

  it("a server that closes gracefully: the client gets the half-close, then the pair is gone", async () => {
    const { server, port } = await closingServer("end")
    const proxy = await FaultProxy.start({ targetPort: port })
    try {
      expect(await closeSeen(proxy.port)).toBe("end")
      await eventually(async () => expect(proxy.openConnections).toBe(0))
    } finally {
      await proxy.close()
      server.close()
    }
  })
})

describe("FaultProxy in front of a private Kafka (advertised through the proxy)", () => {
  let server: ServerHandle
  let proxy: FaultProxy

  beforeAll(async () => {
    const proxyPort = await freePort()
    server = await startKafka({ advertisedPort: proxyPort })
    proxy = await FaultProxy.start({ port: proxyPort, targetPort: server.port })
  })

  afterAll(async () => {
    await proxy?.close()
    await server?.stop()
  })

  it("kafkajs only talks through the proxy, and fails fast while it refuses", async () => {
    expect(server.endpoint).toBe(proxy.address)
    const kafka = new Kafka({
      clientId: "rig-proxy",
      brokers: [proxy.address],
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1_000,
      requestTimeout: 2_000,
      retry: { retries: 0 }
    })
    const admin = kafka.admin()
    await admin.connect()
    const cluster = await admin.describeCluster()
    expect(cluster.brokers.map((b) => `${b.host}:${b.port}`)).toEqual([proxy.address])
    await admin.disconnect()

    await proxy.refuse()
    proxy.cut()
    const before = proxy.connectionsAccepted
    const refused = kafka.admin()
    const started = Date.now()
    await expect(refused.connect()).rejects.toThrow()
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(proxy.connectionsAccepted).toBeGreaterThan(before)
    await refused.disconnect()

    await proxy.pass()
    const again = kafka.admin()
    await again.connect()
    expect((await again.describeCluster()).brokers.length).toBe(1)
    await again.disconnect()
  })
})
