/**
 * Runs the Orchestrator Dynamic example as an operator does
 * (`node --conditions=@neural-hive/source examples/orchestrator-dynamic/src/main.ts`, from tools/rig/example.ts)
 * in a child process on Node 24, configured by environment variables only, on a free port of 127.0.0.1.
 * Its stdout lines (the JSON logs) are collected; `stop()` sends SIGTERM and waits for the exit.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { EXAMPLE_ARGS, EXAMPLE_NODE } from "../../tools/rig/example.ts"
import { freePort } from "../../tools/rig/servers.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))

export interface Service {
  readonly url: string
  /** Every stdout line so far, parsed (a line that is not JSON is kept as `{ raw }`). */
  readonly lines: () => ReadonlyArray<Record<string, unknown>>
  /** The last 8 KB of stderr (the runtime's report of why the program stopped). */
  readonly stderr: () => string
  /** SIGTERM (or `signal`), then the exit code (or signal) once the process is gone. */
  readonly stop: (signal?: "SIGTERM" | "SIGINT") => Promise<number | string>
}

/** The admin token of the tests: long enough for the service's check (16 characters or more). */
export const ADMIN_TOKEN = "board-test-admin-token-0123456789"

export const startService = async (env: Record<string, string>, timeoutMs = 60_000): Promise<Service> => {
  const port = await freePort()
  const child = spawn(EXAMPLE_NODE, EXAMPLE_ARGS, {
    cwd: root,
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: process.env["HOME"] ?? "",
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(port),
      ADMIN_TOKEN,
      // No drain at SIGTERM unless a test asks (test/examples/drain.test.ts): stop() should not wait 5 s.
      DRAIN_SECONDS: "0",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<Record<string, unknown>> = []
  let stderr = ""
  let buffer = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk
    let newline: number
    while ((newline = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + 1)
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        lines.push({ raw: line })
      }
    }
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000)
  })
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
  )
  const deadline = Date.now() + timeoutMs
  while (!lines.some((line) => line["event"] === "service_listening")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(
        `the service did not start (exit ${child.exitCode}):\n${
          lines.map((l) => JSON.stringify(l)).join("\n")
        }\n${stderr}`
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    lines: () => lines,
    stderr: () => stderr,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null) child.kill(signal)
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
      const result = await exited
      clearTimeout(timer)
      return result
    }
  }
}
