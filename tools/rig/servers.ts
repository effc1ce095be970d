/**
 * Real servers for the integration tests, run as child processes on 127.0.0.1.
 *
 * No Docker: Redis comes from Debian's `redis-server`, Kafka and Temporal are JVM
 * servers whose jars `.ci/provision.sh` fetched from Maven Central, MongoDB is
 * FerretDB 1.x (SQLite backend) that `.ci/provision.sh` built with Go; Jaeger, etcd and
 * kube-apiserver are Go builds of it too. See docs/testing.md.
 *
 * Every server gets a free port (listen on port 0), a fresh temporary directory
 * (`server.log` and `data/`), readiness polling against a deadline with a real
 * protocol request, and a handle to stop, crash, pause, resume and restart it on
 * the same port. A server that does not come up throws with the tail of its log.
 *
 * Plain Node APIs only, so that the rig does not depend on the code under test.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as https from "node:https"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** Every server and proxy of the rig binds this address only. */
export const HOST = "127.0.0.1"

export type ServerName = "redis" | "kafka" | "temporal" | "mongodb" | "jaeger" | "etcd" | "kube-apiserver"

export interface ServerHandle {
  readonly name: ServerName
  readonly host: string
  readonly port: number
  /**
   * What a client connects to:
   * redis `redis://127.0.0.1:PORT`, kafka `127.0.0.1:PORT` (the advertised port, see `KafkaOptions`),
   * temporal `127.0.0.1:PORT`, mongodb `mongodb://127.0.0.1:PORT/`, etcd `http://127.0.0.1:PORT`,
   * kube-apiserver `https://127.0.0.1:PORT`.
   */
  readonly endpoint: string
  /** Temporary directory of this instance: `server.log` and `data/`. */
  readonly dir: string
  readonly logFile: string
  /** Pid of the running process, `undefined` while it is down. */
  readonly pid: number | undefined
  readonly running: boolean
  /** Milliseconds the last (re)start took until the server answered. */
  readonly startupMs: number
  /** SIGTERM (SIGKILL after a grace period), then delete `dir`. Idempotent; final. */
  stop(): Promise<void>
  /** SIGKILL now, keeping `dir`: a crash. `restart()` brings the server back. */
  kill(): Promise<void>
  /** SIGSTOP: the process hangs; its port still accepts TCP connections (kernel backlog). */
  pause(): void
  /** SIGCONT after `pause()`. */
  resume(): void
  /** Stop (if running) and start again on the same port and data directory; waits until ready. */
  restart(): Promise<void>
  /** Last lines of `server.log`. */
  logTail(lines?: number): string
}

export interface StartOptions {
  /** Deadline for the server to answer, ms. */
  readonly startTimeoutMs?: number
}

// ---------------------------------------------------------------------------------------------
// Cache paths (same rule as .ci/provision.sh)
// ---------------------------------------------------------------------------------------------

const servicesDir = path.dirname(fileURLToPath(import.meta.url))

export interface RigPaths {
  readonly cacheDir: string
  /** `libs/` holds the Kafka broker's jars. */
  readonly kafkaDir: string
  /** `libs/` holds the Temporal test server's jars, `classes/` the compiled TemporalLauncher. */
  readonly temporalDir: string
  /** `bin/nh-ferretdb` is the FerretDB build. */
  readonly ferretdbDir: string
  /** `bin/jaeger` is the Jaeger build (OTLP in, query API out). */
  readonly jaegerDir: string
  /** `bin/helm` is the helm build. */
  readonly helmDir: string
  /** `bin/etcd` is the etcd build (the kube-apiserver's store). */
  readonly etcdDir: string
  /** `bin/kube-apiserver` and `bin/kubectl` are the Kubernetes builds; `crds/` holds the prometheus-operator CRDs. */
  readonly kubeDir: string
}

/** First 16 hex digits of sha256 over the files' bytes, concatenated (as `.ci/provision.sh` does). */
function cacheKey(files: ReadonlyArray<string>): string {
  const hash = createHash("sha256")
  for (const file of files) hash.update(fs.readFileSync(path.join(servicesDir, file)))
  return hash.digest("hex").slice(0, 16)
}

/** Where `.ci/provision.sh` put (or will put) each server, for this checkout. */
export function rigPaths(): RigPaths {
  const cacheDir = process.env["NH_CACHE_DIR"] || path.join(os.homedir(), ".cache", "neural-hive")
  return {
    cacheDir,
    kafkaDir: path.join(cacheDir, `kafka-${cacheKey(["poms/kafka/pom.xml"])}`),
    temporalDir: path.join(
      cacheDir,
      `temporal-${cacheKey(["poms/temporal/pom.xml", "launchers/TemporalLauncher.java"])}`
    ),
    ferretdbDir: path.join(
      cacheDir,
      `ferretdb-${cacheKey(["ferretdb/go.mod", "ferretdb/go.sum", "ferretdb/main.go"])}`
    ),
    jaegerDir: path.join(cacheDir, `jaeger-${cacheKey(["jaeger/go.mod", "jaeger/go.sum"])}`),
    helmDir: path.join(cacheDir, `helm-${cacheKey(["helm/go.mod", "helm/go.sum"])}`),
    etcdDir: path.join(cacheDir, `etcd-${cacheKey(["etcd/go.mod", "etcd/go.sum"])}`),
    kubeDir: path.join(
      cacheDir,
      `kube-${cacheKey(["kube/go.mod", "kube/go.sum", "kube/prometheus-operator-crds.txt"])}`
    )
  }
}

function provisioned(dir: string, what: string): string {
  if (!fs.existsSync(path.join(dir, ".complete"))) {
    throw new Error(`${what} is not provisioned: ${dir} is missing or incomplete. Run: bash .ci/provision.sh`)
  }
  return dir
}

const javaCommand = (): string => process.env["NH_JAVA"] || "java"

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A command line as a shell would need it (for logs and error messages). */
const commandLine = (command: string, args: ReadonlyArray<string>): string =>
  [command, ...args].map((a) => (/^[\w@%+=:,./*-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ")

/** Listens on 127.0.0.1:port (0: the OS picks) and closes again; resolves the port, or 0 if taken. */
function tryPort(port: number): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.unref()
    server.once("error", () => resolve(0))
    server.listen(port, HOST, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(bound))
    })
  })
}

/** Lowest port of the kernel's ephemeral range (source ports of outgoing connections). */
function ephemeralLow(): number {
  try {
    const low = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 0 ? low : 32768
  } catch {
    return 32768
  }
}

/**
 * A port that was free a moment ago on 127.0.0.1. Taken below the ephemeral range when there is
 * room, so that no outgoing connection (a client reconnecting, say) can grab it while the server
 * is down between `kill()` and `restart()`.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow()
  if (low > 12_000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const candidate = 10_000 + Math.floor(Math.random() * (low - 10_000))
      if ((await tryPort(candidate)) === candidate) return candidate
    }
  }
  const port = await tryPort(0)
  if (port === 0) throw new Error("no free port on 127.0.0.1")
  return port
}

/** Last `lines` lines of a text file ("" if it does not exist); reads at most the last 64 KiB. */
export function tailFile(file: string, lines = 60): string {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, "r")
    const size = fs.fstatSync(fd).size
    const length = Math.min(size, 64 * 1024)
    const buffer = Buffer.alloc(length)
    fs.readSync(fd, buffer, 0, length, size - length)
    return buffer.toString("utf8").split("\n").slice(-lines).join("\n")
  } catch {
    return ""
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

/**
 * Connects to 127.0.0.1:port, writes `request`, and feeds what comes back to `check`
 * until it returns true (ready) or false (wrong answer); `undefined` means "need more bytes".
 */
function probe(
  port: number,
  request: Buffer,
  check: (received: Buffer) => boolean | undefined,
  timeoutMs: number
): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0)
    let settled = false
    const socket = net.createConnection({ host: HOST, port })
    const finish = (error?: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (error) reject(error)
      else resolve()
    }
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    socket.once("connect", () => socket.write(request))
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length > 1024 * 1024) return finish(new Error("answer too long"))
      const verdict = check(received)
      if (verdict === true) finish()
      else if (verdict === false) {
        finish(new Error(`unexpected answer: ${JSON.stringify(received.subarray(0, 64).toString("latin1"))}`))
      }
    })
    socket.once("error", (error) => finish(error))
    socket.once("close", () => finish(new Error("connection closed before an answer")))
  })
}

// --- protocol probes -------------------------------------------------------------------------

/** Redis: PING -> +PONG; with credentials, AUTH first (its +OK, then +PONG). */
/** A RESP bulk string. */
const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`

const redisProbe = (auth?: RedisOptions["auth"]) => (port: number, timeoutMs: number): Promise<void> => {
  const login = auth === undefined
    ? ""
    : `*3\r\n${bulk("AUTH")}${bulk(auth.username)}${bulk(auth.password)}`
  return probe(port, Buffer.from(`${login}PING\r\n`), (b) => {
    const text = b.toString("latin1")
    const expected = auth === undefined ? "+PONG\r\n" : "+OK\r\n+PONG\r\n"
    if (text.length < expected.length) return text.startsWith("-") && text.includes("\r\n") ? false : undefined
    return text.startsWith(expected)
  }, timeoutMs)
}

/**
 * Kafka: a Metadata v4 request for all topics; ready once the broker answers and lists itself
 * (a KRaft broker only processes requests after it is unfenced).
 */
function kafkaProbe(port: number, timeoutMs: number): Promise<void> {
  const clientId = Buffer.from("nh-rig-probe")
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1)
  let o = 0
  o = body.writeInt16BE(3, o) // api key: Metadata
  o = body.writeInt16BE(4, o) // api version 4 (still served by Kafka 4.x)
  o = body.writeInt32BE(1, o) // correlation id
  o = body.writeInt16BE(clientId.length, o)
  o += clientId.copy(body, o)
  o = body.writeInt32BE(-1, o) // topics: null = all
  body.writeInt8(0, o) // allow_auto_topic_creation: false
  const size = Buffer.alloc(4)
  size.writeInt32BE(body.length)
  return probe(port, Buffer.concat([size, body]), (b) => {
    if (b.length < 4) return undefined
    const length = b.readInt32BE(0)
    if (b.length < 4 + length) return undefined
    // correlation id (4) + throttle_time_ms (4) + brokers array length (4)
    if (length < 12 || b.readInt32BE(4) !== 1) return false
    return b.readInt32BE(12) >= 1
  }, timeoutMs)
}

/** gRPC (Temporal): send the HTTP/2 client preface and an empty SETTINGS frame; expect the server's SETTINGS. */
function grpcProbe(port: number, timeoutMs: number): Promise<void> {
  const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")
  const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]) // length 0, type SETTINGS, no flags, stream 0
  return probe(port, Buffer.concat([preface, settings]), (b) => (b.length < 9 ? undefined : b[3] === 4), timeoutMs)
}

const int32le = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeInt32LE(n)
  return b
}

/** A BSON element: type byte, name as a C string, value bytes. */
const bsonElement = (type: number, name: string, value: Buffer): Buffer =>
  Buffer.concat([Buffer.from([type]), Buffer.from(`${name}\0`, "latin1"), value])

/** OP_MSG (opcode 2013), request id 1, flagBits 0, one body section: { hello: 1, $db: "admin" } */
const mongoHello: Buffer = (() => {
  const elements = Buffer.concat([
    bsonElement(0x10, "hello", int32le(1)), // int32
    bsonElement(0x02, "$db", Buffer.concat([int32le(6), Buffer.from("admin\0", "latin1")])) // string
  ])
  const document = Buffer.concat([int32le(4 + elements.length + 1), elements, Buffer.from([0])])
  const payload = Buffer.concat([int32le(0), Buffer.from([0]), document])
  return Buffer.concat([int32le(16 + payload.length), int32le(1), int32le(0), int32le(2013), payload])
})()

/** MongoDB wire protocol: OP_MSG hello; expect an OP_MSG reply to request 1. */
const mongoProbe = (port: number, timeoutMs: number): Promise<void> =>
  probe(port, mongoHello, (b) => {
    if (b.length < 16) return undefined
    if (b.length < b.readInt32LE(0)) return undefined
    return b.readInt32LE(8) === 1 && b.readInt32LE(12) === 2013
  }, timeoutMs)

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/** Every child the rig started and that has not exited yet; killed if this Node process exits. */
const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
})

interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly error?: Error
}

interface Running {
  readonly child: ChildProcess
  readonly exited: Promise<Exit>
  exit: Exit | undefined
}

function launch(command: string, args: ReadonlyArray<string>, cwd: string, logFile: string): Running {
  const fd = fs.openSync(logFile, "a")
  let child: ChildProcess
  try {
    fs.writeSync(fd, `\n--- ${new Date().toISOString()} ${commandLine(command, args)}\n`)
    child = spawn(command, args, { cwd, stdio: ["ignore", fd, fd], env: process.env })
  } finally {
    fs.closeSync(fd)
  }
  live.add(child)
  const running: Running = {
    child,
    exit: undefined,
    exited: new Promise<Exit>((resolve) => {
      const done = (exit: Exit): void => {
        live.delete(child)
        running.exit ??= exit
        resolve(running.exit)
      }
      child.once("exit", (code, signal) => done({ code, signal }))
      child.once("error", (error) => done({ code: null, signal: null, error }))
    })
  }
  return running
}

async function waitExit(running: Running, ms: number): Promise<boolean> {
  if (running.exit) return true
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  const result = await Promise.race([running.exited.then(() => true as const), timeout])
  clearTimeout(timer)
  return result
}

/** SIGCONT (in case it is paused) + SIGTERM, SIGKILL after `graceMs`. Resolves once it exited. */
async function terminate(running: Running, graceMs: number): Promise<void> {
  if (running.exit) return
  running.child.kill("SIGCONT")
  running.child.kill("SIGTERM")
  if (await waitExit(running, graceMs)) return
  running.child.kill("SIGKILL")
  if (!(await waitExit(running, 10_000))) throw new Error(`pid ${running.child.pid} did not exit after SIGKILL`)
}

const describeExit = (exit: Exit): string =>
  exit.error ? `could not start: ${exit.error.message}` : `exited early (code ${exit.code}, signal ${exit.signal})`

/** Runs a short command to completion (e.g. Kafka's storage format), output appended to the log. */
async function runToCompletion(
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  logFile: string,
  timeoutMs: number
): Promise<void> {
  const running = launch(command, args, cwd, logFile)
  if (!(await waitExit(running, timeoutMs))) {
    running.child.kill("SIGKILL")
    await waitExit(running, 5_000)
    throw new Error(`${commandLine(command, args)} took longer than ${timeoutMs} ms`)
  }
  const exit = running.exit
  if (exit && (exit.error || exit.code !== 0)) throw new Error(`${command} ${describeExit(exit)}`)
}

interface Spec {
  readonly name: ServerName
  readonly port: number
  readonly endpoint: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly probe: (port: number, timeoutMs: number) => Promise<void>
  readonly startTimeoutMs: number
  readonly stopGraceMs: number
}

class ManagedServer implements ServerHandle {
  readonly name: ServerName
  readonly host = HOST
  readonly port: number
  readonly endpoint: string
  readonly dir: string
  readonly logFile: string
  readonly #spec: Spec
  #running: Running | undefined
  #startupMs = 0
  #stopped = false

  constructor(spec: Spec, dir: string) {
    this.#spec = spec
    this.name = spec.name
    this.port = spec.port
    this.endpoint = spec.endpoint
    this.dir = dir
    this.logFile = path.join(dir, "server.log")
  }

  get pid(): number | undefined {
    return this.#running && !this.#running.exit ? this.#running.child.pid : undefined
  }

  get running(): boolean {
    return this.pid !== undefined
  }

  get startupMs(): number {
    return this.#startupMs
  }

  logTail(lines = 60): string {
    return tailFile(this.logFile, lines)
  }

  /** Starts the process and polls the probe until it answers or the deadline passes. */
  async start(): Promise<void> {
    if (this.#stopped) throw new Error(`${this.name}: stopped for good; start a new instance`)
    if (this.running) return
    const spec = this.#spec
    const started = performance.now()
    const deadline = started + spec.startTimeoutMs
    const running = launch(spec.command, spec.args, path.join(this.dir, "data"), this.logFile)
    this.#running = running
    let lastError = "no attempt"
    while (performance.now() < deadline) {
      if (running.exit) break
      try {
        await spec.probe(this.port, Math.max(200, Math.min(2_000, deadline - performance.now())))
        this.#startupMs = Math.round(performance.now() - started)
        return
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error)
      }
      await sleep(100)
    }
    const why = running.exit
      ? describeExit(running.exit)
      : `did not answer within ${spec.startTimeoutMs} ms (last probe: ${lastError})`
    await terminate(running, 2_000).catch(() => undefined)
    throw new Error(
      `${this.name} on ${HOST}:${this.port} ${why}\n` +
        `command: ${commandLine(spec.command, spec.args)}\n` +
        `log ${this.logFile} (last lines):\n${this.logTail()}`
    )
  }

  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#running) await terminate(this.#running, this.#spec.stopGraceMs)
    if (process.env["NH_KEEP_SERVER_DIRS"] !== "1") fs.rmSync(this.dir, { recursive: true, force: true })
  }

  async kill(): Promise<void> {
    const running = this.#running
    if (!running || running.exit) return
    running.child.kill("SIGKILL")
    if (!(await waitExit(running, 10_000))) throw new Error(`${this.name}: pid ${running.child.pid} survived SIGKILL`)
  }

  pause(): void {
    this.#signal("SIGSTOP")
    // SIGSTOP takes effect asynchronously (each thread stops on its next trip through the kernel): return only
    // once the process is stopped, so nothing sent after pause() can be answered.
    const pid = this.#running!.child.pid!
    const tick = new Int32Array(new SharedArrayBuffer(4))
    for (let waited = 0; !isStopped(pid); waited++) {
      if (waited >= 2_000) throw new Error(`${this.name}: pid ${pid} not stopped 2 s after SIGSTOP`)
      Atomics.wait(tick, 0, 0, 1)
    }
  }

  resume(): void {
    this.#signal("SIGCONT")
  }

  async restart(): Promise<void> {
    if (this.#running) await terminate(this.#running, this.#spec.stopGraceMs)
    await this.start()
  }

  #signal(signal: NodeJS.Signals): void {
    const running = this.#running
    if (!running || running.exit) throw new Error(`${this.name} is not running`)
    running.child.kill(signal)
  }
}

/** Every thread of the process is stopped (`T` in `/proc/<pid>/task/<tid>/stat`); without /proc, assume so. */
function isStopped(pid: number): boolean {
  let tasks: Array<string>
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return true
  }
  return tasks.every((tid) => {
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")
    } catch {
      return true // the thread ended
    }
    // The state follows the command name, which is in parentheses and may itself hold spaces or parentheses.
    const state = stat.charAt(stat.lastIndexOf(")") + 2)
    return state === "T" || state === "t" || state === "Z" || state === "X"
  })
}

function makeDir(name: ServerName): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nh-${name}-`))
  fs.mkdirSync(path.join(dir, "data"))
  return dir
}

/** Starts the server; on failure the directory (with its log) is kept for inspection and the error names it. */
async function startManaged(spec: Spec, dir: string): Promise<ServerHandle> {
  const server = new ManagedServer(spec, dir)
  await server.start()
  return server
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

export interface RedisOptions extends StartOptions {
  /** More `redis-server` arguments (e.g. `--tls-port`, `--user`, `--requirepass`). */
  readonly args?: ReadonlyArray<string>
  /** The user the readiness probe logs in as, when the default user needs a password or is off. */
  readonly auth?: { readonly username: string; readonly password: string }
}

/** Redis 7 (Debian `redis-server`), no persistence: a restart comes back empty. */
export async function startRedis(options: RedisOptions = {}): Promise<ServerHandle> {
  const port = await freePort()
  const dir = makeDir("redis")
  return startManaged({
    name: "redis",
    port,
    endpoint: `redis://${HOST}:${port}`,
    command: process.env["NH_REDIS_SERVER"] || "redis-server",
    args: [
      "--bind",
      HOST,
      "--port",
      String(port),
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      path.join(dir, "data"),
      "--daemonize",
      "no",
      "--logfile",
      "",
      ...(options.args ?? [])
    ],
    probe: redisProbe(options.auth),
    startTimeoutMs: options.startTimeoutMs ?? 15_000,
    stopGraceMs: 5_000
  }, dir)
}

// ---------------------------------------------------------------------------------------------
// Kafka
// ---------------------------------------------------------------------------------------------

export interface KafkaOptions extends StartOptions {
  /**
   * Port on 127.0.0.1 the broker tells clients to connect to (`advertised.listeners`), for a
   * FaultProxy in front of it: Kafka clients only use the bootstrap address to fetch metadata,
   * then connect to the advertised one. Take it from `freePort()`, start the broker, then
   * `FaultProxy.start({ port: advertisedPort, targetPort: kafka.port })`, and give clients
   * `127.0.0.1:advertisedPort`. Default: the broker's own port.
   */
  readonly advertisedPort?: number
  /** Extra or overriding `server.properties` entries. */
  readonly properties?: Readonly<Record<string, string>>
  /**
   * More listeners on 127.0.0.1 (besides PLAINTEXT, which the readiness probe and the broker itself use), e.g.
   * `{ name: "SASL_SSL", protocol: "SASL_SSL", port }`; their settings go in `properties`
   * (`listener.name.<name>.*`). Each is advertised on its own port.
   */
  readonly listeners?: ReadonlyArray<{ readonly name: string; readonly protocol: string; readonly port: number }>
  /** More `kafka-storage format` arguments, e.g. `--add-scram SCRAM-SHA-512=[name=alice,password=...]`. */
  readonly formatArgs?: ReadonlyArray<string>
}

/** A Kafka cluster id: 16 random bytes, base64url without padding (not starting with "-"). */
function kafkaClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url")
    if (!id.startsWith("-")) return id
  }
}

/** Apache Kafka (single node, KRaft: broker + controller in one JVM). Topics are auto-created. */
export async function startKafka(options: KafkaOptions = {}): Promise<ServerHandle> {
  const libs = path.join(provisioned(rigPaths().kafkaDir, "Kafka"), "libs", "*")
  const port = await freePort()
  let controllerPort = await freePort()
  while (controllerPort === port) controllerPort = await freePort()
  const dir = makeDir("kafka")
  const extra = options.listeners ?? []
  const more = (f: (l: (typeof extra)[number]) => string) => extra.map((l) => `,${f(l)}`).join("")
  const properties: Record<string, string> = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.quorum.voters": `1@${HOST}:${controllerPort}`,
    "listeners": `PLAINTEXT://${HOST}:${port},CONTROLLER://${HOST}:${controllerPort}${
      more((l) => `${l.name}://${HOST}:${l.port}`)
    }`,
    "advertised.listeners": `PLAINTEXT://${HOST}:${options.advertisedPort ?? port}${
      more((l) => `${l.name}://${HOST}:${l.port}`)
    }`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": `PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${
      more((l) => `${l.name}:${l.protocol}`)
    }`,
    "log.dirs": path.join(dir, "data", "kafka-logs"),
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    // single node: without these, consumer groups and transactions hang (kafkajs issue 1752)
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    // after a crash (kill()), the restarted broker may only register once its old session
    // expired: 4 s instead of 9 s (heartbeats every 0.5 s instead of 2 s)
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "4000",
    ...options.properties
  }
  const propertiesFile = path.join(dir, "server.properties")
  fs.writeFileSync(propertiesFile, Object.entries(properties).map(([k, v]) => `${k}=${v}`).join("\n") + "\n")
  const log4jFile = path.join(dir, "log4j.properties")
  fs.writeFileSync(
    log4jFile,
    [
      "log4j.rootLogger=INFO, stdout",
      "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
      "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
      "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
      "log4j.logger.org.apache.kafka.clients=WARN",
      ""
    ].join("\n")
  )
  const jvm = [`-Dlog4j.configuration=file:${log4jFile}`, "-XX:+UseSerialGC", "-cp", libs]
  const logFile = path.join(dir, "server.log")
  const timeoutMs = options.startTimeoutMs ?? 90_000
  await runToCompletion(
    javaCommand(),
    [
      ...jvm,
      "kafka.tools.StorageTool",
      "format",
      "-t",
      kafkaClusterId(),
      "-c",
      propertiesFile,
      "--ignore-formatted",
      ...(options.formatArgs ?? [])
    ],
    path.join(dir, "data"),
    logFile,
    timeoutMs
  ).catch((error: unknown) => {
    throw new Error(`kafka: storage format failed: ${String(error)}\nlog ${logFile}:\n${tailFile(logFile)}`)
  })
  return startManaged({
    name: "kafka",
    port,
    endpoint: `${HOST}:${options.advertisedPort ?? port}`,
    command: javaCommand(),
    args: ["-Xmx512m", ...jvm, "kafka.Kafka", propertiesFile],
    probe: kafkaProbe,
    startTimeoutMs: timeoutMs,
    stopGraceMs: 15_000
  }, dir)
}

// ---------------------------------------------------------------------------------------------
// Temporal
// ---------------------------------------------------------------------------------------------

/**
 * Temporal's in-memory test server (`io.temporal:temporal-test-server`), through
 * TemporalLauncher (binds 127.0.0.1 only, stops at once on SIGTERM). Any namespace
 * name works; use `default`. State is lost on restart. No visibility (list/count).
 */
export async function startTemporal(options: StartOptions = {}): Promise<ServerHandle> {
  const base = provisioned(rigPaths().temporalDir, "Temporal test server")
  const port = await freePort()
  const dir = makeDir("temporal")
  return startManaged({
    name: "temporal",
    port,
    endpoint: `${HOST}:${port}`,
    command: javaCommand(),
    args: [
      "-Xmx256m",
      "-XX:+UseSerialGC",
      "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
      "-cp",
      `${path.join(base, "libs", "*")}${path.delimiter}${path.join(base, "classes")}`,
      "TemporalLauncher",
      String(port)
    ],
    probe: grpcProbe,
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
    stopGraceMs: 5_000
  }, dir)
}

// ---------------------------------------------------------------------------------------------
// MongoDB (FerretDB)
// ---------------------------------------------------------------------------------------------

/**
 * FerretDB 1.x with its SQLite backend: speaks the MongoDB wire protocol (reports MongoDB 7.0,
 * wire version 21). Data survives `restart()`. No transactions, no change streams.
 */
export interface MongoOptions extends StartOptions {
  /** A TLS listener too (FerretDB's `-listen-tls`), on this port with this certificate and key (PEM files). */
  readonly tls?: { readonly port: number; readonly certFile: string; readonly keyFile: string }
}

export async function startMongo(options: MongoOptions = {}): Promise<ServerHandle> {
  const binary = path.join(provisioned(rigPaths().ferretdbDir, "FerretDB"), "bin", "nh-ferretdb")
  const port = await freePort()
  const dir = makeDir("mongodb")
  return startManaged({
    name: "mongodb",
    port,
    endpoint: `mongodb://${HOST}:${port}/`,
    command: binary,
    args: [
      "-listen",
      `${HOST}:${port}`,
      "-dir",
      path.join(dir, "data", "sqlite"),
      "-log-level",
      "warn",
      ...(options.tls === undefined ? [] : [
        "-listen-tls",
        `${HOST}:${options.tls.port}`,
        "-listen-tls-cert-file",
        options.tls.certFile,
        "-listen-tls-key-file",
        options.tls.keyFile
      ])
    ],
    probe: mongoProbe,
    startTimeoutMs: options.startTimeoutMs ?? 30_000,
    stopGraceMs: 5_000
  }, dir)
}

// ---------------------------------------------------------------------------------------------
// Jaeger
// ---------------------------------------------------------------------------------------------

export interface JaegerHandle extends ServerHandle {
  /** The query API and UI: `http://127.0.0.1:PORT` (`/api/traces?service=...`). */
  readonly queryUrl: string
  /** OTLP over HTTP, the base URL for `OTEL_EXPORTER_OTLP_ENDPOINT`: `http://127.0.0.1:PORT`. */
  readonly otlpHttpEndpoint: string
}

/** HTTP GET `path` on 127.0.0.1:port answers 200. */
const httpOkProbe = (pathname: string) => (port: number, timeoutMs: number): Promise<void> =>
  probe(port, Buffer.from(`GET ${pathname} HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`), (b) => {
    const text = b.toString("latin1")
    if (!text.includes("\r\n")) return undefined
    return /^HTTP\/1\.[01] 200 /.test(text)
  }, timeoutMs)

/**
 * Jaeger v1.76 (`cmd/jaeger`, the OpenTelemetry-collector based all-in-one) with in-memory storage:
 * an OTLP/HTTP receiver and the query API, both on 127.0.0.1 only (its own telemetry off).
 * Traces are lost on restart.
 */
export async function startJaeger(options: StartOptions = {}): Promise<JaegerHandle> {
  const binary = path.join(provisioned(rigPaths().jaegerDir, "Jaeger"), "bin", "jaeger")
  const [otlpPort, queryPort, queryGrpcPort, healthPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort()
  ]
  if (new Set([otlpPort, queryPort, queryGrpcPort, healthPort]).size !== 4) {
    throw new Error("jaeger: port collision, retry")
  }
  const dir = makeDir("jaeger")
  const config = path.join(dir, "jaeger.yaml")
  fs.writeFileSync(
    config,
    `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: ${HOST}:${queryPort}
    grpc:
      endpoint: ${HOST}:${queryGrpcPort}
  healthcheckv2:
    use_v2: true
    http:
      endpoint: ${HOST}:${healthPort}
receivers:
  otlp:
    protocols:
      http:
        endpoint: ${HOST}:${otlpPort}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`
  )
  const server = await startManaged({
    name: "jaeger",
    port: queryPort,
    endpoint: `http://${HOST}:${otlpPort}`,
    command: binary,
    args: ["--config", config],
    // Ready once the query API answers and the OTLP receiver accepts connections.
    probe: async (port, timeoutMs) => {
      await httpOkProbe("/api/services")(port, timeoutMs)
      await new Promise<void>((resolve, reject) => {
        const socket = net.createConnection({ host: HOST, port: otlpPort })
        socket.once("connect", () => {
          socket.destroy()
          resolve()
        })
        socket.once("error", reject)
      })
    },
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
    stopGraceMs: 5_000
  }, dir)
  return Object.assign(server, {
    queryUrl: `http://${HOST}:${queryPort}`,
    otlpHttpEndpoint: `http://${HOST}:${otlpPort}`
  })
}

// ---------------------------------------------------------------------------------------------
// etcd and kube-apiserver
// ---------------------------------------------------------------------------------------------

/**
 * etcd 3.6, single member, client and peer URLs on 127.0.0.1, no fsync (a test store: a crash may lose
 * the last writes). `endpoint` is the client URL, `http://127.0.0.1:PORT`.
 */
export async function startEtcd(options: StartOptions = {}): Promise<ServerHandle> {
  const binary = path.join(provisioned(rigPaths().etcdDir, "etcd"), "bin", "etcd")
  const [port, peerPort] = [await freePort(), await freePort()]
  if (port === peerPort) throw new Error("etcd: port collision, retry")
  const dir = makeDir("etcd")
  const client = `http://${HOST}:${port}`
  const peer = `http://${HOST}:${peerPort}`
  return startManaged({
    name: "etcd",
    port,
    endpoint: client,
    command: binary,
    args: [
      "--name=rig",
      `--data-dir=${path.join(dir, "data", "etcd")}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=rig=${peer}`,
      "--unsafe-no-fsync",
      "--log-level=warn"
    ],
    // 200 once the member has a leader (itself).
    probe: httpOkProbe("/health"),
    startTimeoutMs: options.startTimeoutMs ?? 30_000,
    stopGraceMs: 5_000
  }, dir)
}

export interface KubeApiserverHandle extends ServerHandle {
  /** `https://127.0.0.1:PORT` (also `endpoint`), serving a self-signed certificate the `kubeconfig` trusts. */
  readonly url: string
  /** A kubeconfig file for kubectl: this server, its certificate authority, and a `system:masters` token. */
  readonly kubeconfig: string
  /** The prometheus-operator CRD files `.ci/provision.sh` fetched (ServiceMonitor, PrometheusRule). */
  readonly crds: ReadonlyArray<string>
  /** The kubectl of the same Kubernetes release. */
  readonly kubectl: string
  /** The server's private etcd, stopped with it. */
  readonly etcd: ServerHandle
}

/** HTTPS GET `path` on 127.0.0.1:port with a bearer token answers 200 (the certificate is not checked: a probe). */
const httpsOkProbe = (pathname: string, token: string) => (port: number, timeoutMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const request = https.get({
      host: HOST,
      port,
      path: pathname,
      headers: { authorization: `Bearer ${token}` },
      rejectUnauthorized: false,
      timeout: timeoutMs
    }, (response) => {
      response.resume()
      if (response.statusCode === 200) resolve()
      else reject(new Error(`${pathname} answered ${response.statusCode}`))
    })
    request.once("timeout", () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    request.once("error", reject)
  })

/**
 * Kubernetes' kube-apiserver (the release of tools/rig/kube/go.mod) on 127.0.0.1 over a private etcd:
 * no controller manager, scheduler or kubelet, so objects are stored and validated but nothing runs them:
 * for server-side dry runs of manifests. Authentication by a random token of the `system:masters` group
 * (in the kubeconfig), RBAC authorization, a service-account key pair made at start, the ServiceAccount
 * admission plugin off (no token controller creates the default service accounts). Namespaces other than
 * the built-in ones must be created. Ready when `/readyz` answers 200 (RBAC and CRD bootstrap done).
 */
export async function startKubeApiserver(options: StartOptions = {}): Promise<KubeApiserverHandle> {
  const kubeDir = provisioned(rigPaths().kubeDir, "Kubernetes (kube-apiserver, kubectl)")
  const etcd = await startEtcd(options)
  try {
    const port = await freePort()
    const dir = makeDir("kube-apiserver")
    const token = randomBytes(24).toString("hex")
    const tokens = path.join(dir, "tokens.csv")
    fs.writeFileSync(tokens, `${token},rig-admin,rig-admin,"system:masters"\n`, { mode: 0o600 })
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
    const signingKey = path.join(dir, "service-account.key")
    const verifyKey = path.join(dir, "service-account.pub")
    fs.writeFileSync(signingKey, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 })
    fs.writeFileSync(verifyKey, publicKey.export({ type: "spki", format: "pem" }))
    const certDir = path.join(dir, "certs")
    const url = `https://${HOST}:${port}`
    const server = await startManaged({
      name: "kube-apiserver",
      port,
      endpoint: url,
      command: path.join(kubeDir, "bin", "kube-apiserver"),
      args: [
        `--etcd-servers=${etcd.endpoint}`,
        `--bind-address=${HOST}`,
        `--advertise-address=${HOST}`,
        `--secure-port=${port}`,
        `--cert-dir=${certDir}`,
        `--token-auth-file=${tokens}`,
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${verifyKey}`,
        `--service-account-signing-key-file=${signingKey}`,
        "--service-cluster-ip-range=10.96.0.0/16",
        "--disable-admission-plugins=ServiceAccount",
        "--profiling=false"
      ],
      probe: httpsOkProbe("/readyz", token),
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
      stopGraceMs: 10_000
    }, dir)
    // The self-signed serving certificate (for 127.0.0.1), followed by the certificate of the CA that signed it.
    const kubeconfig = path.join(dir, "kubeconfig")
    fs.writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{
          name: "rig",
          cluster: { server: url, "certificate-authority": path.join(certDir, "apiserver.crt") }
        }],
        users: [{ name: "rig-admin", user: { token } }],
        contexts: [{ name: "rig", context: { cluster: "rig", user: "rig-admin" } }],
        "current-context": "rig"
      }),
      { mode: 0o600 }
    )
    const crdDir = path.join(kubeDir, "crds")
    const stopServer = server.stop.bind(server)
    return Object.assign(server, {
      url,
      kubeconfig,
      crds: fs.readdirSync(crdDir).filter((f) => f.endsWith(".yaml")).toSorted().map((f) => path.join(crdDir, f)),
      kubectl: path.join(kubeDir, "bin", "kubectl"),
      etcd,
      stop: async () => {
        await stopServer().finally(() => etcd.stop())
      }
    })
  } catch (error) {
    await etcd.stop()
    throw error
  }
}

/** Starts the named server with its defaults. */
export function startServer(name: ServerName, options: StartOptions = {}): Promise<ServerHandle> {
  switch (name) {
    case "redis":
      return startRedis(options)
    case "kafka":
      return startKafka(options)
    case "temporal":
      return startTemporal(options)
    case "mongodb":
      return startMongo(options)
    case "jaeger":
      return startJaeger(options)
    case "etcd":
      return startEtcd(options)
    case "kube-apiserver":
      return startKubeApiserver(options)
  }
}
