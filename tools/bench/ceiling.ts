/**
 * The real-server ceiling (`BENCH_ONLY=ceiling`): each test server's own rate
 * on this machine for the operations a plan costs it, through the same clients
 * the service uses (`RedisCache`, `MongoStore`, `TemporalClient`,
 * `KafkaProducer`, each with its breaker), standalone and `concurrency` calls
 * in flight; then the example service against the four servers under
 * autocannon. Each server's ceiling in plans/s is its rate in calls over the
 * calls a plan makes to it (read from the service's own `/metrics`), and the
 * service's rate is reported as a fraction of the slowest ceiling. CPU is read
 * for every process (each server, the service, this one), so the machine's own
 * bound (its cores over the CPU a plan costs them all) is reported too.
 *
 * The servers are the ones `npm test` provisions (tools/rig/servers.ts), started
 * here on loopback with no proxy, and stopped at the end.
 */
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { Metrics } from "@neural-hive/observability"
import { Outbox } from "@neural-hive/outbox"
import { RedisCache } from "@neural-hive/redis"
import { TemporalClient } from "@neural-hive/temporal"
import * as Effect from "effect/Effect"
import { Kafka, logLevel } from "kafkajs"
import os from "node:os"
import { type ServerHandle, startKafka, startMongo, startRedis, startTemporal } from "../rig/servers.ts"
import { startExample } from "./example.ts"
import { acceptedOrShed, loadPlans, processCpuMicros } from "./planLoad.ts"

/** The four circuits, the operation a plan makes on each, and how the standalone loop makes it. */
export type Circuit = "redis_client" | "mongodb_client" | "temporal_client" | "kafka_producer"

export interface CeilingRow {
  readonly circuit: Circuit
  readonly server: string
  readonly operation: string
  /** Calls per second, standalone. */
  readonly opsPerSecond: number
  /** Calls through this circuit's breaker per plan, in the service run. */
  readonly callsPerPlan: number
  /** `opsPerSecond ÷ callsPerPlan`: the plans/s this server alone would allow. */
  readonly plansPerSecond: number
  /** The mean time of a call through this circuit during the service run, ms. */
  readonly serviceCallMs: number
  /** The server's own CPU per call, standalone (µs, from /proc). */
  readonly serverCpuPerOpUs: number
  /** The client's CPU per call, standalone (this process: the integration's client, its breaker, the loop). */
  readonly clientCpuPerOpUs: number
  /** The server's CPU per plan during the service run (µs). */
  readonly serverCpuPerPlanUs: number
}

export interface Ceiling {
  readonly rows: ReadonlyArray<CeilingRow>
  readonly service: {
    readonly plansPerSecond: number
    readonly cpuPerPlanUs: number
    readonly p50Ms: number
    readonly p99Ms: number
    /**
     * Tickets the relay published (sent to Kafka and marked) per second in the same run: a plan is done only
     * then, so the service's sustained rate is the lower of this and `plansPerSecond`.
     */
    readonly publishedPerSecond: number
    /** `min(plansPerSecond, publishedPerSecond)`. */
    readonly sustainedPerSecond: number
    /** Plans accepted (202) in the measured run. */
    readonly requests: number
    /** Plans the service refused with 503 (its adaptive limits shedding load) in the measured run. */
    readonly shed: number
    /** The load generator's CPU per plan (autocannon, in this process). */
    readonly loadCpuPerPlanUs: number
    /** The service's, the four servers' and the load generator's CPU per plan, added up (µs). */
    readonly machineCpuPerPlanUs: number
    /** The plans/s this machine's cores allow at `machineCpuPerPlanUs`: `cores × 10⁶ ÷ machineCpuPerPlanUs`. */
    readonly cpuBoundPlansPerSecond: number
    /** The service's sustained plans/s over `cpuBoundPlansPerSecond`. */
    readonly cpuBoundFraction: number
  }
  /** The cores the CPU bound counts. */
  readonly cores: number
  /** The row with the lowest `plansPerSecond`. */
  readonly slowest: CeilingRow
  /** The service's sustained plans/s (accepted and published) over the slowest server's ceiling. */
  readonly fraction: number
  readonly seconds: number
  readonly concurrency: number
  readonly connections: number
}

export interface CeilingSettings {
  readonly seconds: number
  readonly concurrency: number
  readonly connections: number
  readonly log: (line: string) => void
}

const TOPIC = "execution-tickets"

interface Servers {
  redis?: ServerHandle
  kafka?: ServerHandle
  temporal?: ServerHandle
  mongodb?: ServerHandle
}

/** This process's CPU time (user + system), µs. */
const ownCpuMicros = (): number => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** A standalone loop's rate and its CPU per operation, in the server and in this process (the client). */
interface Standalone {
  readonly opsPerSecond: number
  readonly serverCpuPerOpUs: number
  readonly clientCpuPerOpUs: number
}

/**
 * `concurrency` loops calling `op` for a warm-up (connections, the server's and V8's JIT), then for `seconds`:
 * operations per second of the second part (every one must succeed), and the CPU the server (`serverPid`) and
 * this process spent per operation in it.
 */
const closedLoop = <E>(
  op: (i: number) => Effect.Effect<unknown, E>,
  seconds: number,
  concurrency: number,
  serverPid: number | undefined,
  callsPerOp = 1
): Effect.Effect<Standalone, E> =>
  Effect.gen(function*() {
    let next = 0
    const loop = (millis: number) =>
      Effect.gen(function*() {
        let done = 0
        const started = performance.now()
        const server = processCpuMicros(serverPid)
        const client = ownCpuMicros()
        const end = started + millis
        const worker = Effect.gen(function*() {
          while (performance.now() < end) {
            yield* op(next++)
            done++
          }
        })
        yield* Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded" })
        const calls = done * callsPerOp
        return {
          opsPerSecond: calls / ((performance.now() - started) / 1000),
          serverCpuPerOpUs: (processCpuMicros(serverPid) - server) / calls,
          clientCpuPerOpUs: (ownCpuMicros() - client) / calls
        }
      })
    yield* loop(Math.max(1000, seconds * 500))
    return yield* loop(seconds * 1000)
  })

/** Each server's standalone rate for the operation a plan makes on it, through the integration's own client. */
const standalone = (servers: Required<Servers>, settings: CeilingSettings) => {
  const { concurrency, seconds } = settings
  const tag = Date.now().toString(36)
  const redis = Effect.gen(function*() {
    const cache = yield* RedisCache.RedisCache
    // A plan reads its cache key (a miss), then writes it: one command per operation, alternating.
    return yield* closedLoop(
      (i) => i % 2 === 0 ? cache.get(`ceiling:${tag}:${i >> 1}`) : cache.setex(`ceiling:${tag}:${i >> 1}`, 300, "{}"),
      seconds,
      concurrency,
      servers.redis.pid
    )
  }).pipe(Effect.provide(RedisCache.layer({ url: servers.redis.endpoint })))
  const mongodb = Effect.gen(function*() {
    const store = yield* MongoStore.MongoStore
    // What a plan costs MongoDB: its ticket written pending, then the relay's mark by `_id` once published.
    const published = { $set: { "outbox.state": "published", "outbox.publishedAt": Date.now() } }
    return yield* closedLoop(
      (i) =>
        Effect.andThen(
          store.insertOne(
            "ceiling",
            Outbox.pending({ _id: `${tag}-${i}`, plan: "p", steps: ["plan", "execute"] }, Date.now()) as never
          ),
          store.updateOne("ceiling", { _id: `${tag}-${i}` } as never, published)
        ),
      seconds,
      concurrency,
      servers.mongodb.pid,
      2
    )
  }).pipe(Effect.provide(MongoStore.layer({ url: servers.mongodb.endpoint, database: "ceiling" })))
  const temporal = Effect.gen(function*() {
    const client = yield* TemporalClient.TemporalClient
    return yield* closedLoop(
      (i) =>
        client.startWorkflow("orchestratePlan", {
          workflowId: `ceiling-${tag}-${i}`,
          taskQueue: "ceiling",
          args: [{ id: i }]
        }),
      seconds,
      concurrency,
      servers.temporal.pid
    )
  }).pipe(Effect.provide(TemporalClient.layer({ address: servers.temporal.endpoint, namespace: "default" })))
  const kafka = Effect.gen(function*() {
    const producer = yield* KafkaProducer.KafkaProducer
    return yield* closedLoop(
      (i) => producer.send({ topic: TOPIC, messages: [{ key: `${tag}-${i}`, value: "{}" }] }),
      seconds,
      concurrency,
      servers.kafka.pid
    )
  }).pipe(
    Effect.provide(KafkaProducer.layer({ brokers: [servers.kafka.endpoint], clientId: "ceiling", idempotent: true }))
  )
  return { redis, mongodb, temporal, kafka }
}

/**
 * From one read of the service's `/metrics`: per circuit so far, calls and the sum and count of their
 * durations; and the tickets its outbox relay has published (`outbox_published_total`).
 */
const scrape = async (url: string) => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const sums = {
    calls: new Map<string, number>(),
    seconds: new Map<string, number>(),
    timed: new Map<string, number>(),
    published: NaN
  }
  const add = (map: Map<string, number>, circuit: string, value: number) =>
    map.set(circuit, (map.get(circuit) ?? 0) + value)
  for (const line of text.split("\n")) {
    const value = Number(line.slice(line.lastIndexOf(" ") + 1))
    if (line.startsWith("outbox_published_total")) sums.published = value
    const circuit = /circuit="([^"]+)"/.exec(line)?.[1]
    if (circuit === undefined) continue
    if (line.startsWith(`${Metrics.names.calls}{`)) add(sums.calls, circuit, value)
    else if (line.startsWith(`${Metrics.names.duration}_sum{`)) add(sums.seconds, circuit, value)
    else if (line.startsWith(`${Metrics.names.duration}_count{`)) add(sums.timed, circuit, value)
  }
  return sums
}

/** The example service against the four servers: plans/s, CPU per plan and the calls a plan makes per circuit. */
const serviceRun = async (servers: Required<Servers>, settings: CeilingSettings) => {
  const profileDir = process.env["BENCH_CEILING_PROFILE"] || undefined
  const service = await startExample(
    {
      KAFKA_BROKERS: servers.kafka.endpoint,
      TEMPORAL_ADDRESS: servers.temporal.endpoint,
      REDIS_URL: servers.redis.endpoint,
      MONGODB_URL: `${servers.mongodb.endpoint}ceiling`
    },
    // BENCH_CEILING_PROFILE=<dir>: the service runs under `node --cpu-prof` and writes its profile there
    // (read it with `node tools/bench/profile.ts top <file>`).
    profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, "--cpu-prof-interval=200"],
    "/ready"
  )
  const url = service.url
  try {
    await loadPlans(url, 3, settings.connections)
    const before = await scrape(url)
    const serverCpu = (circuit: Circuit) => processCpuMicros(servers[serverOf[circuit]].pid)
    const serversBefore = circuits.map(serverCpu)
    const cpuBefore = processCpuMicros(service.pid)
    const loadBefore = ownCpuMicros()
    const result = await loadPlans(url, 2 * settings.seconds, settings.connections)
    const load = ownCpuMicros() - loadBefore
    const cpu = processCpuMicros(service.pid) - cpuBefore
    const serversCpu = circuits.map((circuit, i) => serverCpu(circuit) - serversBefore[i]!)
    const after = await scrape(url)
    const { accepted: plans, shed } = acceptedOrShed(result, "the service run")
    const delta = (map: "calls" | "seconds" | "timed", circuit: Circuit) =>
      (after[map].get(circuit) ?? NaN) - (before[map].get(circuit) ?? 0)
    const perPlan = (circuit: Circuit) => delta("calls", circuit) / plans
    const meanMs = (circuit: Circuit) => 1000 * delta("seconds", circuit) / delta("timed", circuit)
    const serverCpuPerPlan = (circuit: Circuit) => serversCpu[circuits.indexOf(circuit)]! / plans
    return {
      plansPerSecond: plans / (2 * settings.seconds),
      publishedPerSecond: (after.published - before.published) / (2 * settings.seconds),
      cpuPerPlanUs: cpu / plans,
      loadCpuPerPlanUs: load / plans,
      machineCpuPerPlanUs: (cpu + load + serversCpu.reduce((a, b) => a + b, 0)) / plans,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      requests: plans,
      shed,
      perPlan,
      meanMs,
      serverCpuPerPlan
    }
  } finally {
    await service.stop(profileDir === undefined ? "SIGTERM" : "SIGINT")
  }
}

const circuits: ReadonlyArray<Circuit> = ["redis_client", "mongodb_client", "temporal_client", "kafka_producer"]
const serverOf: Record<Circuit, keyof Servers> = {
  redis_client: "redis",
  mongodb_client: "mongodb",
  temporal_client: "temporal",
  kafka_producer: "kafka"
}

const createTopic = async (broker: string): Promise<void> => {
  const admin = new Kafka({ clientId: "ceiling-admin", brokers: [broker], logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    await admin.createTopics({
      topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 1 }],
      waitForLeaders: true
    })
  } finally {
    await admin.disconnect()
  }
}

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

/** Starts the four servers, measures each standalone, then the service against them; stops the servers. */
export const ceilingRun = async (settings: CeilingSettings): Promise<Ceiling> => {
  const servers: Servers = {}
  try {
    settings.log("ceiling  starting Redis, Kafka, Temporal and MongoDB (FerretDB)")
    const started = await Promise.all([
      startRedis({ startTimeoutMs: 60_000 }),
      startKafka({ startTimeoutMs: 180_000 }),
      startTemporal({ startTimeoutMs: 120_000 }),
      startMongo({ startTimeoutMs: 60_000 })
    ])
    ;[servers.redis, servers.kafka, servers.temporal, servers.mongodb] = started
    const all = servers as Required<Servers>
    await createTopic(all.kafka.endpoint)
    const ops = standalone(all, settings)
    const measured: Array<
      Omit<CeilingRow, "callsPerPlan" | "plansPerSecond" | "serviceCallMs" | "serverCpuPerPlanUs">
    > = []
    const rows: ReadonlyArray<readonly [Circuit, string, string, Effect.Effect<Standalone, unknown>]> = [
      ["redis_client", "Redis 7", "GET or SETEX", ops.redis],
      ["mongodb_client", "FerretDB", "insertOne, then updateOne by _id (the relay's mark)", ops.mongodb],
      ["temporal_client", "Temporal test server", "startWorkflow", ops.temporal],
      ["kafka_producer", "Kafka (KRaft)", "send, 1 message", ops.kafka]
    ]
    for (const [circuit, server, operation, effect] of rows) {
      settings.log(`ceiling  ${server}: ${operation}, ${settings.concurrency} in flight, ${settings.seconds} s`)
      measured.push({ circuit, server, operation, ...await run(effect) })
    }
    settings.log(`ceiling  the service against the four servers, ${settings.connections} connections`)
    const service = await serviceRun(all, settings)
    const withPlans: Array<CeilingRow> = measured.map((row) => {
      const callsPerPlan = service.perPlan(row.circuit)
      return {
        ...row,
        callsPerPlan,
        plansPerSecond: row.opsPerSecond / callsPerPlan,
        serviceCallMs: service.meanMs(row.circuit),
        serverCpuPerPlanUs: service.serverCpuPerPlan(row.circuit)
      }
    })
    const sustained = Math.min(service.plansPerSecond, service.publishedPerSecond)
    const cores = os.availableParallelism()
    const cpuBoundPlansPerSecond = cores * 1e6 / service.machineCpuPerPlanUs
    // Kafka is reached by the relay's batches, far less than once per plan: every ceiling counts, the lowest binds.
    const slowest = withPlans.reduce((a, b) => (b.plansPerSecond < a.plansPerSecond ? b : a))
    return {
      rows: withPlans,
      service: {
        plansPerSecond: service.plansPerSecond,
        publishedPerSecond: service.publishedPerSecond,
        sustainedPerSecond: sustained,
        cpuPerPlanUs: service.cpuPerPlanUs,
        p50Ms: service.p50Ms,
        p99Ms: service.p99Ms,
        requests: service.requests,
        shed: service.shed,
        loadCpuPerPlanUs: service.loadCpuPerPlanUs,
        machineCpuPerPlanUs: service.machineCpuPerPlanUs,
        cpuBoundPlansPerSecond,
        cpuBoundFraction: sustained / cpuBoundPlansPerSecond
      },
      cores,
      slowest,
      fraction: sustained / slowest.plansPerSecond,
      seconds: settings.seconds,
      concurrency: settings.concurrency,
      connections: settings.connections
    }
  } finally {
    await Promise.allSettled([servers.redis, servers.kafka, servers.temporal, servers.mongodb].map((s) => s?.stop()))
  }
}
