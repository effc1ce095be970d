/**
 * Helpers shared by the packaging scripts (docs/packaging.md): the published packages, running a
 * command with its output shown, packing tarballs, and the cache directory outside the clone.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const root = path.resolve(fileURLToPath(new URL("..", import.meta.url)))

/** The published packages, in dependency order (the first is a dependency of the others). */
export const packageDirs = ["resilience", "observability", "kafka", "temporal", "redis", "mongodb", "outbox", "fleet"]
  .map((name) => path.join(root, "packages", name))

export interface PackageJson {
  readonly name: string
  readonly version: string
  readonly peerDependencies?: Readonly<Record<string, string>>
  readonly dependencies?: Readonly<Record<string, string>>
  readonly devDependencies?: Readonly<Record<string, string>>
  readonly engines?: Readonly<Record<string, string>>
}

export const readJson = <A>(file: string): A => JSON.parse(readFileSync(file, "utf8")) as A

export const packageJson = (dir: string): PackageJson => readJson<PackageJson>(path.join(dir, "package.json"))

/** Where downloads are kept between runs, outside the clone (the same directory as .ci/provision.sh). */
export const cacheDir = process.env["NH_CACHE_DIR"] ?? path.join(os.homedir(), ".cache", "neural-hive")

export class CommandError extends Error {}

/** Runs a command, its output going to ours; throws naming the command when it fails. */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv } = {}
): void => {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? root,
    env: options.env ?? process.env,
    stdio: "inherit"
  })
  if (result.status !== 0) {
    throw new CommandError(`${command} ${args.join(" ")} failed (exit ${result.status ?? result.signal})`)
  }
}

/** Runs a command and returns what it printed; throws with its output when it fails. */
export const capture = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv } = {}
): string => {
  try {
    return execFileSync(command, args, {
      cwd: options.cwd ?? root,
      env: options.env ?? process.env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 64 * 1024 * 1024
    })
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; status?: number }
    throw new CommandError(
      `${command} ${args.join(" ")} failed (exit ${e.status ?? "?"})\n${e.stdout ?? ""}${e.stderr ?? ""}`
    )
  }
}

export interface Packed {
  readonly name: string
  readonly dir: string
  readonly tarball: string
  readonly files: ReadonlyArray<{ readonly path: string; readonly size: number }>
}

/** `npm pack` of each package into `destination`, in `packageDirs` order. */
export const packAll = (destination: string): ReadonlyArray<Packed> =>
  packageDirs.map((dir) => {
    const out = capture("npm", ["pack", "--json", "--pack-destination", destination], { cwd: dir })
    const [info] = JSON.parse(out) as ReadonlyArray<Omit<Packed, "dir" | "tarball"> & { readonly filename: string }>
    if (info === undefined) throw new CommandError(`npm pack printed nothing for ${dir}`)
    return { name: info.name, dir, tarball: path.join(destination, info.filename), files: info.files }
  })

/**
 * The lowest version a range admits, for the ranges this repository writes (`^x.y.z`, `>=x.y.z`, and
 * alternatives of those joined by `||`, whose first is the lowest: `^5.3.0 || ^6.0.0`).
 */
export const lowest = (range: string): string => {
  const first = range.split("||")[0]!
  const match = /^(?:\^|>=|~)?(\d+\.\d+\.\d+)$/.exec(first.trim())
  if (match?.[1] === undefined) throw new CommandError(`cannot take the lowest version of range "${range}"`)
  return match[1]
}
