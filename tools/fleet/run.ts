/**
 * `npm run fleet`: local breakers vs the fleet, measured on real processes, ~4 minutes, stops by itself.
 *
 * Starts a private Redis and a private Kafka (behind a fault proxy) from the rig, then, for each mode
 * (local breakers, fleet, fleet with shared counts), N replica processes of the Orchestrator Dynamic
 * example (`node --conditions=@neural-hive/source examples/orchestrator-dynamic/src/main.ts`, Temporal, MongoDB and the cache embedded)
 * under a steady load of POST /plans. Each outage makes Kafka unreachable at the proxy (new connections
 * reset, open ones cut), waits for every replica to refuse, holds through a probe round, and restores
 * it. In the fleet mode Redis is also killed (SIGKILL) mid-run and restarted. Measured from the
 * replicas' own /metrics and JSON transition logs; prints the table and writes it into docs/fleet.md.
 *
 * Environment: `FLEET_REPLICAS` (4), `FLEET_OUTAGES` per mode (3), `FLEET_RATE` plans/s per replica
 * (25), `FLEET_MODES` (`local,fleet,fleet+counts`), `FLEET_OUT` (docs/fleet.md; `-` for nowhere).
 */
import { Fleet } from "@neural-hive/fleet"
import { CircuitBreaker, Registry, withBreaker } from "@neural-hive/resilience"
import { Effect } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { FaultProxy } from "../rig/proxy.ts"
// kafkajs's idle request-queue fix for this harness's own kafkajs clients (no TimeoutNegativeWarning).
import "../rig/kafkajsQueue.ts"
import { EXAMPLE_ARGS, EXAMPLE_NODE } from "../rig/example.ts"
import { freePort, type ServerHandle, startKafka, startRedis } from "../rig/servers.ts"

const positive = (name: string, fallback: number): number => {
  const text = process.env[name]
  if (text === undefined || text.trim() === "") return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`${name}: got ${JSON.stringify(text)}, expected a positive integer`)
    process.exit(2)
  }
  return value
}

const N = positive("FLEET_REPLICAS", 4)
const OUTAGES = positive("FLEET_OUTAGES", 3)
const RATE = positive("FLEET_RATE", 25)
const FAIL_MAX = 5
const RECOVERY_S = 2
const OUTAGE_MS = 5_000
// How Kafka dies at the proxy: "unlisten" refuses connections (ECONNREFUSED), "reset" accepts and resets them.
const KAFKA_FAULT = process.env["FLEET_KAFKA_FAULT"] === "reset" ? "reset" : "unlisten"
const HEARTBEAT_MS = 500
const TIMEOUT_MS = 1_000
const root = fileURLToPath(new URL("../..", import.meta.url))
const SETTINGS = `circuitBreaker:
  kafka:
    failMax: ${FAIL_MAX}
    recoveryTimeoutSeconds: ${RECOVERY_S}
    timeoutSeconds: ${4 * RECOVERY_S}
    callTimeoutSeconds: 2
    # The relay's sends in flight follow Kafka's latency: what a dying broker can still take is bounded.
    adaptiveLimit: { initialLimit: 4, minLimit: 1, maxLimit: 20 }
  temporal: { failMax: ${FAIL_MAX}, recoveryTimeoutSeconds: ${RECOVERY_S}, timeoutSeconds: ${4 * RECOVERY_S} }
  redis:    { failMax: ${FAIL_MAX}, recoveryTimeoutSeconds: ${RECOVERY_S}, timeoutSeconds: ${4 * RECOVERY_S} }
  mongodb:  { failMax: ${FAIL_MAX}, recoveryTimeoutSeconds: ${RECOVERY_S}, timeoutSeconds: ${4 * RECOVERY_S} }
`
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` every `every` ms until it holds; false after `deadline` ms. */
const until = async (check: () => Promise<boolean> | boolean, deadline: number, every = 10): Promise<boolean> => {
  const end = performance.now() + deadline
  while (performance.now() < end) {
    // A check that throws (a replica slow to answer /metrics on a loaded machine) is "not yet".
    if (await Promise.resolve().then(check).catch(() => false)) return true
    await sleep(every)
  }
  return false
}

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

// -----------------------------------------------------------------------------
// replicas
// -----------------------------------------------------------------------------

interface LogLine {
  readonly t: number
  readonly pod: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

interface Answer {
  readonly pod: string
  readonly at: number
  readonly latency: number
  readonly status: number
}

class Replica {
  readonly lines: Array<LogLine> = []
  readonly pod: string
  readonly port: number
  readonly child: ChildProcess
  inFlight = 0
  constructor(pod: string, port: number, env: Record<string, string>) {
    this.pod = pod
    this.port = port
    this.child = spawn(EXAMPLE_NODE, EXAMPLE_ARGS, {
      env: {
        ...process.env,
        ...env,
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(port),
        POD_NAME: pod,
        DRAIN_SECONDS: "0"
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let rest = ""
    this.child.stdout!.on("data", (chunk: Buffer) => {
      const text = rest + chunk.toString("utf8")
      const lines = text.split("\n")
      rest = lines.pop()!
      for (const line of lines) this.parse(line)
    })
    this.child.stderr!.on("data", () => undefined)
  }

  parse(line: string): void {
    try {
      // The example's lines are flat (observability's Logging): `event`, `timestamp`, the fields beside them.
      const entry = JSON.parse(line) as Record<string, unknown>
      if (typeof entry["event"] !== "string") return
      this.lines.push({
        t: Date.parse(String(entry["timestamp"])),
        pod: this.pod,
        message: entry["event"],
        annotations: entry
      })
    } catch {
      // not a JSON log line
    }
  }

  async metrics(): Promise<string> {
    const response = await fetch(`http://127.0.0.1:${this.port}/metrics`, { signal: AbortSignal.timeout(5000) })
    return response.text()
  }

  /** The kafka_producer circuit: its state, its failures, and its sends in flight (the adaptive limit's gauge). */
  async kafka(): Promise<{ state: number; failures: number; inFlight: number }> {
    const text = await this.metrics()
    const value = (metric: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${metric}{`) && l.includes(`circuit="kafka_producer"`))
      return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(" ") + 1))
    }
    return {
      state: value("circuit_breaker_state"),
      failures: value("circuit_breaker_failures_total"),
      inFlight: value("resilience_bulkhead_in_flight")
    }
  }

  async plan(id: string, answers: Array<Answer>): Promise<void> {
    const at = Date.now()
    const started = performance.now()
    this.inFlight++
    let status = 0
    try {
      const response = await fetch(`http://127.0.0.1:${this.port}/plans`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id, steps: ["plan", "execute"] }),
        signal: AbortSignal.timeout(10_000)
      })
      await response.arrayBuffer()
      status = response.status
    } catch {
      status = 0
    } finally {
      this.inFlight--
    }
    answers.push({ pod: this.pod, at, latency: performance.now() - started, status })
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()))
    this.child.kill("SIGTERM")
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000)
    await exited
    clearTimeout(timer)
  }

  /** First line after `from` with this message (and, if given, annotation values). */
  first(message: string, from: number, where: Record<string, string> = {}): LogLine | undefined {
    return this.lines.find((l) =>
      l.t >= from && l.message === message && Object.entries(where).every(([k, v]) => l.annotations[k] === v)
    )
  }
}

// -----------------------------------------------------------------------------
// one mode
// -----------------------------------------------------------------------------

interface Outage {
  readonly reached: number
  /**
   * Sends in flight to Kafka on every replica at the moment it died (the adaptive limit's in-flight gauge, read
   * as the proxy cut it): each fails with it, so they are the floor no breaker can lower.
   */
  readonly inFlightAtDeath: number
  /** Plans sent after the first trip that still reached dead Kafka (answered 502, not 503). */
  readonly afterTrip: number
  readonly spreads: ReadonlyArray<number>
  readonly allOpenMs: number
  readonly probes: number
  readonly rounds: number
  readonly probesAfterRestore: number
  /** Plans sent while Kafka was down, and how many of them were accepted (202: queued in the outbox). */
  readonly sentDuring: number
  readonly acceptedDuring: number
}

interface ModeResult {
  readonly mode: string
  readonly outages: ReadonlyArray<Outage>
  readonly redis?: { blocked: number; sent: number; fallbackMs: number; rejoinMs: number; p99: number }
}

interface Rig {
  readonly redis: ServerHandle
  readonly kafka: ServerHandle
  readonly kafkaProxy: FaultProxy
  readonly settingsFile: string
}

const runMode = async (
  rig: Rig,
  mode: "local" | "fleet" | "fleet+counts",
  log: (line: string) => void
): Promise<ModeResult> => {
  const group = `fleet-run-${Date.now()}`
  const env: Record<string, string> = {
    KAFKA_BROKERS: rig.kafkaProxy.address,
    RESILIENCE_CONFIG: rig.settingsFile,
    ...(mode === "local" ? {} : { FLEET_REDIS_URL: rig.redis.endpoint, FLEET_GROUP: group }),
    ...(mode === "fleet+counts" ? { FLEET_SHARE_COUNTS: "true" } : {})
  }
  const ports = await Promise.all(Array.from({ length: N }, () => freePort()))
  const replicas = ports.map((port, i) => new Replica(`${mode.replace("+", "-")}-${i}`, port, env))
  const answers: Array<Answer> = []
  let timer: NodeJS.Timeout | undefined
  try {
    const up = await until(
      async () => {
        const states = await Promise.all(replicas.map((r) => r.kafka().catch(() => ({ state: NaN }))))
        return states.every((s) => s.state === 0)
      },
      90_000,
      250
    )
    if (!up) throw new Error(`${mode}: the replicas did not answer /metrics`)
    let sequence = 0
    // Open loop: every replica gets a plan each 1/RATE s, whatever the answers (bounded in flight).
    timer = setInterval(() => {
      for (const r of replicas) if (r.inFlight < 50) void r.plan(`${r.pod}-${++sequence}`, answers)
    }, 1000 / RATE)
    const warm = await until(() => answers.filter((a) => a.status === 202).length >= 4 * N, 60_000, 100)
    if (!warm) throw new Error(`${mode}: no plan accepted during warm-up`)
    if (mode !== "local") {
      await until(() => replicas.every((r) => r.first("circuit_breaker_fleet_connected", 0) !== undefined), 10_000)
    }
    const kafkaStates = () => Promise.all(replicas.map((r) => r.kafka()))
    const outages: Array<Outage> = []
    for (let i = 0; i < OUTAGES; i++) {
      await until(async () => (await kafkaStates()).every((s) => s.state === 0), 30_000, 50)
      await sleep(1000)
      const failures = async () => {
        for (let attempt = 1;; attempt++) {
          try {
            return (await kafkaStates()).reduce((n, s) => n + s.failures, 0)
          } catch (error) {
            if (attempt >= 5) throw error
          }
        }
      }
      const before = await failures()
      const killAt = Date.now()
      // Read as the proxy cuts: what was in flight then fails with it, whatever the breakers do.
      const [atDeath] = await Promise.all([kafkaStates(), rig.kafkaProxy.refuse(KAFKA_FAULT)])
      rig.kafkaProxy.cut()
      const inFlightAtDeath = atDeath.reduce((n, s) => n + s.inFlight, 0)
      // Polled every 50 ms: scraping /metrics more often loads the replicas it measures. The failures counted
      // by the poll that first sees a replica OPEN split the calls into before and after the first trip.
      let atFirstTrip: number | undefined
      const refused = await until(
        async () => {
          const states = await kafkaStates()
          if (atFirstTrip === undefined && states.some((s) => s.state !== 0)) {
            atFirstTrip = states.reduce((n, s) => n + s.failures, 0)
          }
          return states.every((s) => s.state !== 0)
        },
        20_000,
        50
      )
      const after = await failures()
      if (!refused) log(`${mode}: outage ${i + 1}: not every replica opened`)
      await sleep(OUTAGE_MS)
      const restoreAt = Date.now()
      await rig.kafkaProxy.pass()
      const closed = await until(async () => (await kafkaStates()).every((s) => s.state === 0), 60_000, 50)
      if (!closed) log(`${mode}: outage ${i + 1}: not every replica closed again`)
      const firstOpen = replicas.map((r) =>
        r.first("circuit_breaker_open", killAt, { circuit: "kafka_producer" })?.t ?? NaN
      )
      const first = Math.min(...firstOpen)
      const spreads = firstOpen.filter((t) => t !== first).map((t) => t - first)
      // A decided probe: a failed one reopens (probe_failed), a successful one closes (probes_succeeded).
      const probes = replicas.flatMap((r) =>
        r.lines.filter((l) =>
          l.t >= killAt && l.annotations["circuit"] === "kafka_producer" &&
          (l.annotations["reason"] === "probe_failed" || l.annotations["reason"] === "probes_succeeded")
        )
      ).map((l) => l.t).sort((a, b) => a - b)
      const rounds = probes.filter((t, j) => j === 0 || t - probes[j - 1]! > 700).length
      const outage: Outage = {
        reached: after - before,
        inFlightAtDeath,
        afterTrip: atFirstTrip === undefined ? NaN : after - atFirstTrip,
        spreads,
        allOpenMs: Math.max(...firstOpen) - first,
        probes: probes.length,
        rounds,
        probesAfterRestore: probes.filter((t) => t >= restoreAt).length,
        sentDuring: answers.filter((a) => a.at >= killAt && a.at < restoreAt).length,
        acceptedDuring: answers.filter((a) => a.at >= killAt && a.at < restoreAt && a.status === 202).length
      }
      outages.push(outage)
      log(
        `${mode}: outage ${i + 1}: ${outage.reached} calls reached dead Kafka (${outage.inFlightAtDeath} in flight ` +
          `when it died, ${outage.afterTrip} after the ` +
          `first trip was seen), all open in ${outage.allOpenMs} ms, ` +
          `${outage.probes} probes in ${outage.rounds} rounds (${outage.probesAfterRestore} after restore), ` +
          `${outage.acceptedDuring} / ${outage.sentDuring} plans accepted meanwhile`
      )
    }
    let redis: ModeResult["redis"]
    if (mode === "fleet") {
      await sleep(1000)
      const killAt = Date.now()
      await rig.redis.kill()
      await sleep(4000)
      const restartAt = Date.now()
      await rig.redis.restart()
      const readyAt = restartAt + rig.redis.startupMs
      await until(() => replicas.every((r) => r.first("circuit_breaker_fleet_connected", killAt) !== undefined), 20_000)
      const rejoinedAt = Math.max(
        ...replicas.map((r) => r.first("circuit_breaker_fleet_connected", killAt)?.t ?? NaN)
      )
      await sleep(500)
      const fallbackAt = Math.max(
        ...replicas.map((r) => r.first("circuit_breaker_fleet_disconnected", killAt)?.t ?? NaN)
      )
      const during = answers.filter((a) => a.at >= killAt && a.at <= rejoinedAt)
      redis = {
        sent: during.length,
        blocked: during.filter((a) => a.status !== 202 || a.latency > 1000).length,
        fallbackMs: fallbackAt - killAt,
        rejoinMs: Math.max(0, rejoinedAt - readyAt),
        p99: percentile(during.map((a) => a.latency), 99)
      }
      log(
        `${mode}: Redis killed: ${redis.blocked}/${redis.sent} calls blocked, fell back in ${redis.fallbackMs} ms, ` +
          `rejoined ${redis.rejoinMs} ms after Redis answered`
      )
    }
    return { mode, outages, ...(redis === undefined ? {} : { redis }) }
  } finally {
    if (timer !== undefined) clearInterval(timer)
    await Promise.all(replicas.map((r) => r.stop()))
  }
}

// -----------------------------------------------------------------------------
// the closed path, in process
// -----------------------------------------------------------------------------

const closedPathCost = async (redisUrl: string): Promise<{ local: number; fleet: number }> => {
  const calls = 200_000
  const measure = (fleet: boolean) =>
    Effect.gen(function*() {
      const registry = yield* Registry.make
      if (fleet) {
        yield* Fleet.make({ redis: redisUrl, group: "bench", pod: "bench" }).pipe(
          Effect.provideService(Registry.Registry, registry)
        )
      }
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" }).pipe(
        Effect.provideService(Registry.Registry, registry)
      )
      const call = Effect.void.pipe(withBreaker(breaker))
      for (let i = 0; i < 20_000; i++) yield* call
      const started = performance.now()
      for (let i = 0; i < calls; i++) yield* call
      return ((performance.now() - started) * 1e6) / calls
    }).pipe(Effect.scoped)
  const local: Array<number> = []
  const fleet: Array<number> = []
  // Alternating which goes first, so neither side always runs on a warmer (or busier) machine.
  for (let round = 0; round < 9; round++) {
    if (round % 2 === 0) local.push(await Effect.runPromise(measure(false)))
    fleet.push(await Effect.runPromise(measure(true)))
    if (round % 2 === 1) local.push(await Effect.runPromise(measure(false)))
  }
  return { local: percentile(local, 50), fleet: percentile(fleet, 50) }
}

/** Trip to adoption between two in-process replicas on the real Redis: the mechanism without process scheduling. */
const propagation = async (redisUrl: string, trips: number): Promise<ReadonlyArray<number>> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const replica = (pod: string) =>
        Effect.gen(function*() {
          const registry = yield* Registry.make
          const fleet = yield* Fleet.make({ redis: redisUrl, group: "propagation", pod }).pipe(
            Effect.provideService(Registry.Registry, registry)
          )
          const breaker = yield* CircuitBreaker.make({ name: "kafka_producer", failMax: 1, recoveryTimeout: 60_000 })
            .pipe(Effect.provideService(Registry.Registry, registry))
          const opened: Array<number> = []
          yield* breaker.listen({ onTransition: (t) => t.to === "Open" && opened.push(performance.now()) })
          return { fleet, breaker, opened }
        })
      const a = yield* replica("a")
      const b = yield* replica("b")
      for (let i = 0; i < 50 && !(yield* a.fleet.status).connected; i++) yield* Effect.sleep(100)
      const samples: Array<number> = []
      for (let i = 0; i < trips; i++) {
        yield* a.breaker.reset
        yield* Effect.sleep(100)
        const seen = b.opened.length
        yield* Effect.exit(Effect.fail("down").pipe(withBreaker(a.breaker)))
        const tripped = a.opened.at(-1)!
        for (let j = 0; j < 100 && b.opened.length === seen; j++) yield* Effect.sleep(2)
        if (b.opened.length > seen) samples.push(b.opened.at(-1)! - tripped)
      }
      return samples
    }).pipe(Effect.scoped)
  )

// -----------------------------------------------------------------------------
// report
// -----------------------------------------------------------------------------

const table = (
  results: ReadonlyArray<ModeResult>,
  bench: { local: number; fleet: number },
  inProcess: ReadonlyArray<number>
): string => {
  const cell = (r: ModeResult, f: (o: Outage) => number, digits = 0) => {
    const values = r.outages.map(f)
    return `${(values.reduce((a, b) => a + b, 0) / values.length).toFixed(digits)} (max ${
      Math.max(...values).toFixed(digits)
    })`
  }
  const spreads = (r: ModeResult) => r.outages.flatMap((o) => o.spreads)
  const fleet = results.find((r) => r.mode === "fleet")
  // One cell per mode that ran: `text` under the fleet mode (or, measured in process, under the first).
  const only = (mode: "fleet" | "first", text: string) =>
    results.map((r, i) => (mode === "first" ? i === 0 : r.mode === mode) ? text : "").join(" | ")
  const rows = [
    `| measure | goal | ${results.map((r) => r.mode).join(" | ")} |`,
    `|---|---|${results.map(() => "---").join("|")}|`,
    `| calls that reached dead Kafka before every replica refused, per outage: mean (max) | fleet <= failMax + N - 1 + in flight = ${
      FAIL_MAX + N - 1
    } + in flight; local N x failMax = ${N * FAIL_MAX} | ${
      results.map((r) => cell(r, (o) => o.reached, 1)).join(" | ")
    } |`,
    `| of which in flight when Kafka died (the floor no breaker can lower), per outage: mean (max) | | ${
      results.map((r) => cell(r, (o) => o.inFlightAtDeath, 1)).join(" | ")
    } |`,
    `| the rest: calls that reached dead Kafka once it was dead, per outage: mean (max) | fleet <= failMax + N - 1 = ${
      FAIL_MAX + N - 1
    } | ${results.map((r) => cell(r, (o) => o.reached - o.inFlightAtDeath, 1)).join(" | ")} |`,
    `| calls that reached dead Kafka after the first replica was seen OPEN (50 ms polls), per outage: mean (max) | fleet <= N - 1 = ${
      N - 1
    } | ${results.map((r) => cell(r, (o) => o.afterTrip, 1)).join(" | ")} |`,
    `| first trip to each other replica OPEN, ms: p50 / p99 | p99 <= 100 | ${
      results.map((r) => `${percentile(spreads(r), 50)} / ${percentile(spreads(r), 99)}`).join(" | ")
    } |`,
    `| trip to adoption, in process (2 replicas, ${inProcess.length} trips), ms: p50 / p99 | p99 <= 100 | ${
      only("first", `${percentile(inProcess, 50).toFixed(1)} / ${percentile(inProcess, 99).toFixed(1)}`)
    } |`,
    `| first trip to all OPEN, ms: mean (max) | | ${results.map((r) => cell(r, (o) => o.allOpenMs)).join(" | ")} |`,
    `| plans accepted (202, queued in the outbox) while Kafka was down / sent | all | ${
      results.map((r) =>
        `${r.outages.reduce((n, o) => n + o.acceptedDuring, 0)} / ${r.outages.reduce((n, o) => n + o.sentDuring, 0)}`
      ).join(" | ")
    } |`,
    `| probes that reached Kafka per probe round: mean | = permits = 1 | ${
      results.map((r) => {
        const probes = r.outages.reduce((n, o) => n + o.probes, 0)
        const rounds = r.outages.reduce((n, o) => n + o.rounds, 0)
        return (probes / Math.max(rounds, 1)).toFixed(2)
      }).join(" | ")
    } |`,
    `| probes after Kafka was restored, until all closed: mean (max) | = permits = 1 | ${
      results.map((r) => cell(r, (o) => o.probesAfterRestore, 1)).join(" | ")
    } |`
  ]
  if (fleet?.redis !== undefined) {
    const r = fleet.redis
    rows.push(
      `| Redis killed mid-run: calls blocked (non-202 or > 1 s) / sent meanwhile | 0 | ${
        only("fleet", `${r.blocked} / ${r.sent}`)
      } |`,
      `| Redis killed: time to fall back (last replica), ms | <= heartbeat + timeout = ${HEARTBEAT_MS + TIMEOUT_MS} | ${
        only("fleet", String(r.fallbackMs))
      } |`,
      `| Redis restarted: time to rejoin after it answered (last replica), ms | | ${
        only("fleet", String(r.rejoinMs))
      } |`
    )
  }
  rows.push(
    `| closed-path cost per call, ns (in process, median of 9 x 200k): no fleet layer / fleet layer on | unchanged within noise | ${
      only("first", `${bench.local.toFixed(0)} / ${bench.fleet.toFixed(0)}`)
    } |`
  )
  return rows.join("\n")
}

/**
 * What the run failed to observe: a measure that is NaN or infinite (a log line or a metric that never
 * came), no probe in an outage (every outage outlasts the open period), no plan sent during one. A run
 * with any of these prints them and exits 1, and writes nothing into docs/fleet.md.
 */
export const unobserved = (
  results: ReadonlyArray<ModeResult>,
  bench: { local: number; fleet: number },
  inProcess: ReadonlyArray<number>
): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const finite = (what: string, value: number) => {
    if (!Number.isFinite(value)) problems.push(`${what} is ${value}`)
  }
  if (results.length === 0) problems.push("no mode ran (FLEET_MODES)")
  for (const r of results) {
    if (r.outages.length === 0) problems.push(`${r.mode}: no outage measured`)
    r.outages.forEach((o, i) => {
      const at = `${r.mode}, outage ${i + 1}`
      for (
        const key of [
          "reached",
          "inFlightAtDeath",
          "afterTrip",
          "allOpenMs",
          "probes",
          "rounds",
          "probesAfterRestore"
        ] as const
      ) {
        finite(`${at}: ${key}`, o[key])
      }
      for (const spread of o.spreads) finite(`${at}: a trip spread`, spread)
      if (o.probes === 0) problems.push(`${at}: no probe was seen in the replicas' logs`)
      if (o.sentDuring === 0) problems.push(`${at}: no plan was sent while Kafka was down`)
      if (o.reached <= 0) problems.push(`${at}: no call reached dead Kafka (the breakers' failure counts did not move)`)
    })
    if (r.redis !== undefined) {
      for (const key of ["fallbackMs", "rejoinMs", "p99"] as const) finite(`${r.mode}: Redis ${key}`, r.redis[key])
      if (r.redis.sent === 0) problems.push(`${r.mode}: no plan was sent while Redis was down`)
    }
  }
  finite("closed-path cost without the fleet layer", bench.local)
  finite("closed-path cost with the fleet layer", bench.fleet)
  if (inProcess.length === 0) problems.push("no in-process trip was adopted")
  return problems
}

const write = (file: string, body: string) => {
  const start = "<!-- fleet:results:start -->"
  const end = "<!-- fleet:results:end -->"
  const text = fs.readFileSync(file, "utf8")
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i) throw new Error(`${file}: no ${start} ... ${end} markers`)
  fs.writeFileSync(file, `${text.slice(0, i + start.length)}\n${body}\n${text.slice(j)}`)
}

// -----------------------------------------------------------------------------
// main
// -----------------------------------------------------------------------------

const log = (line: string) => console.log(`[fleet] ${line}`)

const main = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nh-fleet-"))
  const settingsFile = path.join(dir, "resilience.yaml")
  fs.writeFileSync(settingsFile, SETTINGS)
  let redis: ServerHandle | undefined
  let kafka: ServerHandle | undefined
  let kafkaProxy: FaultProxy | undefined
  try {
    log(`N = ${N} replicas, ${RATE} plans/s each, ${OUTAGES} Kafka outages per mode; starting Redis and Kafka`)
    const kafkaPort = await freePort()
    ;[redis, kafka] = await Promise.all([
      startRedis({ startTimeoutMs: 60_000 }),
      startKafka({ advertisedPort: kafkaPort, startTimeoutMs: 180_000 })
    ])
    kafkaProxy = await FaultProxy.start({ port: kafkaPort, targetPort: kafka.port })
    const admin = new Kafka({ clientId: "fleet-admin", brokers: [kafkaProxy.address], logLevel: logLevel.NOTHING })
      .admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic: "execution-tickets", numPartitions: 1 }], waitForLeaders: true })
    await admin.disconnect()
    log("closed-path cost, in process, with and without the fleet layer")
    const bench = await closedPathCost(redis.endpoint)
    log("trip propagation, in process")
    const inProcess = await propagation(redis.endpoint, 50)
    const loadBefore = os.loadavg()[0]!
    const rig: Rig = { redis, kafka, kafkaProxy, settingsFile }
    const results: Array<ModeResult> = []
    const modes = (process.env["FLEET_MODES"] ?? "local,fleet,fleet+counts").split(",").map((m) => m.trim())
    const unknown = modes.filter((m) => !["local", "fleet", "fleet+counts"].includes(m))
    if (unknown.length > 0) {
      throw new Error(`FLEET_MODES: unknown mode ${unknown.join(", ")} (local, fleet, fleet+counts)`)
    }
    for (const mode of ["local", "fleet", "fleet+counts"] as const) {
      if (modes.includes(mode)) results.push(await runMode(rig, mode, log))
    }
    const body = [
      `Measured by \`npm run fleet\` on ${new Date().toISOString().slice(0, 10)}: N = ${N} replica processes, ` +
      `${RATE} plans/s each, failMax ${FAIL_MAX}, recoveryTimeout ${RECOVERY_S} s, ${OUTAGES} Kafka outages per ` +
      `mode of ${OUTAGE_MS / 1000} s each, on a ${os.cpus().length}-core machine shared with the servers ` +
      `(load average ${loadBefore.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end).`,
      "",
      table(results, bench, inProcess)
    ].join("\n")
    console.log(`\n${body}\n`)
    const problems = unobserved(results, bench, inProcess)
    if (problems.length > 0) {
      console.error(`fleet: FAILED: measures not observed:\n  ${problems.join("\n  ")}`)
      process.exitCode = 1
      return
    }
    const out = process.env["FLEET_OUT"]
    const busy = Math.max(loadBefore, os.loadavg()[0]!) > os.availableParallelism()
    if (out !== "-" && busy && process.env["FLEET_ALLOW_BUSY"] !== "1") {
      console.error(
        `fleet: not writing ${out ?? "docs/fleet.md"}: the load average was above the ${os.availableParallelism()} ` +
          "cores, so the timings are noise; rerun on a quiet machine (FLEET_ALLOW_BUSY=1 overrides)"
      )
      process.exitCode = 1
      return
    }
    if (out !== "-") write(out ?? path.join(root, "docs/fleet.md"), body)
  } finally {
    await kafkaProxy?.close()
    await Promise.allSettled([redis?.stop(), kafka?.stop()])
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

await main().catch((error) => {
  console.error(`fleet: the run could not complete: ${error instanceof Error ? error.stack : String(error)}`)
  process.exitCode = 1
})
