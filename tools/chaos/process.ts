/**
 * The Orchestrator Dynamic service as its own process: the example's real entry point
 * (`examples/orchestrator-dynamic/src/main.ts`), configured by environment variables the way a
 * deployment does, pointed at the rig's proxies. It can be SIGKILLed (a crash: no shutdown code runs)
 * and started again on the same port against the same servers, which is what the crash scenario
 * (`crash.ts`) needs and what a service booted inside the harness cannot do.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { EXAMPLE_ARGS, EXAMPLE_NODE } from "../rig/example.ts"
import { freePort } from "../rig/servers.ts"
import { until } from "../rig/time.ts"
import { DATABASE, SETTINGS_YAML, within } from "./model.ts"
import type { Rig } from "./rig.ts"
import type { Service } from "./service.ts"

/** What the service's JSON log lines (one per line on stdout, `Logging`'s schema) said, over every life. */
export interface ProcessLogs {
  lines: number
  readonly byEvent: Map<string, number>
  /** `error` and `critical` lines. */
  errorLines: number
  readonly errorSamples: Array<string>
  /** stdout lines that are not JSON, and stderr lines: a crash report, a warning. */
  readonly stray: Array<string>
}

export interface ServiceProcess extends Service {
  readonly port: number
  readonly logs: ProcessLogs
  /** Starts the process (again) on the same port; resolves once `/live` answers 200, throws after `ms`. */
  readonly start: (ms?: number) => Promise<number>
  /** SIGKILL: the process dies at once, mid-request, mid-send; resolves once it has exited. */
  readonly kill: () => Promise<void>
  /** Exits the process did not ask for: each one's code or signal, when no `kill`/`close` was under way. */
  readonly unexpectedExits: Array<string>
  readonly lives: () => number
}

/** The environment `AppConfig.config` reads: the rig's proxies, the chaos breaker settings, nothing embedded. */
const environment = (
  rig: Rig,
  port: number,
  configFile: string,
  delivery: "at-least-once" | "exactly-once"
): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  // Only what a process needs from ours (PATH, HOME...): no OTEL_*, FLEET_* or NODE_OPTIONS leaks in.
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(OTEL_|FLEET_|OUTBOX_|NODE_OPTIONS$|EMBEDDED_FAULTS$|FAULT_SWITCH$|ADMIN_TOKEN$)/.test(key)) env[key] = value
  }
  return {
    ...env,
    RESILIENCE_CONFIG: configFile,
    SERVICE_NAME: "orchestrator-dynamic",
    // The same replica across its restarts: the restarted relay fences the killed one's transactions.
    POD_NAME: "orchestrator-dynamic-0",
    OUTBOX_DELIVERY: delivery,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(port),
    KAFKA_BROKERS: rig.kafkaProxy.address,
    TEMPORAL_ADDRESS: rig.temporalProxy.address,
    REDIS_URL: `redis://127.0.0.1:${rig.redisProxy.port}`,
    MONGODB_URL: `mongodb://127.0.0.1:${rig.mongodbProxy.port}/${DATABASE}`,
    // The harness stops it itself; no load balancer to drain for.
    DRAIN_SECONDS: "0"
  }
}

/** A service process handle (not started yet): `start()` boots it. */
export const serviceProcess = async (
  rig: Rig,
  options: {
    readonly delivery?: "at-least-once" | "exactly-once" | undefined
    /** The breakers' settings file (docs/configuration.md); default the schedule's `SETTINGS_YAML`. */
    readonly settings?: string | undefined
  } = {}
): Promise<ServiceProcess> => {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nh-chaos-service-"))
  const configFile = path.join(dir, "resilience.yaml")
  fs.writeFileSync(configFile, options.settings ?? SETTINGS_YAML)
  const base = `http://127.0.0.1:${port}`
  const logs: ProcessLogs = { lines: 0, byEvent: new Map(), errorLines: 0, errorSamples: [], stray: [] }
  const unexpectedExits: Array<string> = []
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()
  let lives = 0
  let stopping = false

  // CHAOS_SERVICE_LOG: every line the service wrote, each life's prefixed by its number (for a failed run's post-mortem).
  const transcript = process.env["CHAOS_SERVICE_LOG"]
  const onLine = (line: string) => {
    if (line.trim() === "") return
    let record: { event?: unknown; level?: unknown } | undefined
    try {
      record = JSON.parse(line)
    } catch {
      record = undefined
    }
    if (record === undefined || typeof record !== "object" || record === null) {
      if (logs.stray.length < 20) logs.stray.push(line.slice(0, 400))
      return
    }
    logs.lines++
    const event = String(record.event)
    logs.byEvent.set(event, (logs.byEvent.get(event) ?? 0) + 1)
    if (record.level === "error" || record.level === "critical") {
      logs.errorLines++
      if (logs.errorSamples.length < 3) logs.errorSamples.push(line.slice(0, 400))
    }
  }

  const get = async (route: string) => {
    const response = await fetch(`${base}${route}`, { signal: AbortSignal.timeout(10_000) })
    return { status: response.status, text: await response.text() }
  }

  const start = async (ms = 60_000): Promise<number> => {
    if (child !== undefined) throw new Error("chaos: the service process is already running")
    const started = performance.now()
    stopping = false
    const spawned = spawn(EXAMPLE_NODE, EXAMPLE_ARGS, {
      env: environment(rig, port, configFile, options.delivery ?? "at-least-once"),
      stdio: ["ignore", "pipe", "pipe"]
    })
    child = spawned
    lives++
    // This process may end before the scenario's `finally` (Ctrl-C, a failed assertion): the service goes with it.
    const orphan = () => spawned.kill("SIGKILL")
    process.once("exit", orphan)
    const life = lives
    const keep = (line: string) => {
      if (transcript !== undefined) fs.appendFileSync(transcript, `${life} ${line}\n`)
    }
    readline.createInterface({ input: spawned.stdout! }).on("line", (line) => {
      keep(line)
      onLine(line)
    })
    readline.createInterface({ input: spawned.stderr! }).on("line", (line) => {
      keep(`stderr: ${line}`)
      if (line.trim() !== "" && logs.stray.length < 20) logs.stray.push(`stderr: ${line.slice(0, 400)}`)
    })
    exited = new Promise((resolve) => {
      spawned.once("exit", (code, signal) => {
        process.off("exit", orphan)
        if (!stopping) unexpectedExits.push(`life ${lives}: exited with ${signal ?? `code ${code}`}`)
        if (child === spawned) child = undefined
        resolve()
      })
    })
    const live = await until(
      async () => {
        if (child !== spawned) return true
        return (await get("/live").catch(() => ({ status: 0 }))).status === 200
      },
      ms,
      100
    )
    if (!live || child !== spawned) {
      await kill()
      throw new Error(
        `chaos: the service process did not answer /live within ${ms} ms (life ${lives}); last output:\n${
          logs.stray.slice(-10).join("\n")
        }`
      )
    }
    return performance.now() - started
  }

  const kill = async (): Promise<void> => {
    const running = child
    if (running === undefined) return
    stopping = true
    running.kill("SIGKILL")
    await within(exited, 10_000, "service process exit after SIGKILL")
  }

  const close = async (): Promise<void> => {
    const running = child
    if (running !== undefined) {
      stopping = true
      // A clean stop: the runtime closes every client and the server on SIGTERM.
      running.kill("SIGTERM")
      await within(exited, 30_000, "service process exit after SIGTERM").catch(() => kill())
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }

  return { base, port, get, close, start, kill, logs, unexpectedExits, lives: () => lives }
}
