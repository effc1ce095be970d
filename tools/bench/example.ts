/**
 * The example service as a process, for every measurement that loads it over HTTP (the service table in
 * scaling.ts, the plan profile, the real-server ceiling): started on a free loopback port, with no drain
 * at shutdown, polled until it answers, and stopped by a signal.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { EXAMPLE_MAIN, EXAMPLE_NODE, SOURCE_CONDITION } from "../rig/example.ts"
import { freePort } from "../rig/servers.ts"

export interface ExampleProcess {
  readonly url: string
  readonly child: ChildProcess
  readonly pid: number | undefined
  /** The last 2,000 characters the service wrote to stderr. */
  readonly stderr: () => string
  /** Sends `signal` (SIGTERM unless told) if the process still runs, and resolves once it has exited. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<void>
}

const root = fileURLToPath(new URL("../..", import.meta.url))

/**
 * Starts the example with `env` over the caller's environment and `extraArgs` given to Node before main.ts
 * (on the CPUs `cpus` lists, `taskset -c` syntax, when given), and resolves once `readyPath` answers 2xx (within 60 s; the process is killed and the error carries its
 * stderr otherwise).
 */
export const startExample = async (
  env: Readonly<Record<string, string | undefined>>,
  extraArgs: ReadonlyArray<string> = [],
  readyPath: "/live" | "/ready" = "/live",
  cpus?: string
): Promise<ExampleProcess> => {
  const port = await freePort()
  const node = [EXAMPLE_NODE, SOURCE_CONDITION, ...extraArgs, EXAMPLE_MAIN]
  // `taskset -c CPUS` execs node in place: the pid is node's.
  const [command, ...args] = cpus === undefined ? node : ["taskset", "-c", cpus, ...node]
  const child = spawn(command!, args, {
    cwd: root,
    env: { ...process.env, HTTP_HOST: "127.0.0.1", HTTP_PORT: String(port), DRAIN_SECONDS: "0", ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2_000)
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    await exited
  }
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  while (!(await fetch(`${url}${readyPath}`).then((r) => r.ok, () => false))) {
    const failure = child.exitCode !== null || child.signalCode !== null
      ? `the service exited with ${child.exitCode ?? child.signalCode}`
      : Date.now() > deadline
      ? `the service did not answer ${readyPath} within 60 s`
      : undefined
    if (failure !== undefined) {
      await stop("SIGKILL")
      throw new Error(`${failure}\n${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return { url, child, pid: child.pid, stderr: () => stderr, stop }
}
