/**
 * The chart tests' command-line tools: helm (built by .ci/provision.sh from the Go module proxy, or `HELM`),
 * run with a private HOME so that nothing is read from or written to the user's configuration.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { rigPaths } from "../../tools/rig/servers.ts"

/** The repository's root directory. */
export const root = fileURLToPath(new URL("../..", import.meta.url))

/** The chart's directory. */
export const chart = path.join(root, "deploy", "helm", "orchestrator-dynamic")

/** What a finished command gave: its exit status, stdout + stderr, and stdout alone. */
export interface Run {
  readonly status: number | null
  readonly output: string
  readonly stdout: string
}

/**
 * Runs `command` to completion with only PATH and a fresh HOME (removed afterwards) in its environment,
 * plus `env`; `input` goes to its stdin. Throws only when it cannot be started or runs past 60 s.
 */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly input?: string; readonly env?: (home: string) => Record<string, string> } = {}
): Run => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "nh-tool-"))
  try {
    const result = spawnSync(command, args, {
      encoding: "utf8",
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
      ...(options.input === undefined ? {} : { input: options.input }),
      env: { PATH: process.env["PATH"] ?? "", HOME: home, ...options.env?.(home) }
    })
    if (result.error !== undefined) throw result.error
    return { status: result.status, output: `${result.stdout}${result.stderr}`, stdout: result.stdout }
  } finally {
    fs.rmSync(home, { recursive: true, force: true })
  }
}

const helmPath = (): string => {
  const given = process.env["HELM"]
  if (given !== undefined && given !== "") return given
  const built = path.join(rigPaths().helmDir, "bin", "helm")
  if (!fs.existsSync(built)) throw new Error(`helm is not provisioned at ${built}: run bash .ci/provision.sh`)
  return built
}

/** Runs helm; its cache, configuration and data go to the private HOME. */
export const helm = (...args: ReadonlyArray<string>): Run =>
  run(helmPath(), args, {
    env: (home) => ({ HELM_CACHE_HOME: home, HELM_CONFIG_HOME: home, HELM_DATA_HOME: home })
  })
