/**
 * The consumer test (docs/packaging.md): packs every package, installs the tarballs into scratch
 * projects outside the repository, compiles test/consumer/app/main.ts and the README's example with
 * strict TypeScript (our declarations checked, skipLibCheck off) and runs them with plain `node` on
 * Node 24 and Node 22. Two projects: "tested" installs the peers this repository tests with, "lowest"
 * the lowest version of every declared peer range. Fails on a second copy of effect or of any peer.
 *
 *   npm run test:consumer            NH_KEEP_CONSUMER=1 keeps the scratch directory
 */
import { spawnSync } from "node:child_process"
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync
} from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { extractBlocks } from "./doc-blocks.ts"
import {
  cacheDir,
  capture,
  CommandError,
  lowest,
  packageDirs,
  packageJson,
  packAll,
  readJson,
  root,
  run
} from "./lib.ts"

const started = Date.now()
const say = (line: string) => console.log(`consumer: ${line}`)

/** Node 22 from the npm package `node@22`, installed once into the cache outside the clone. */
const node22 = (): string => {
  const dir = path.join(cacheDir, "node-22")
  const binary = path.join(dir, "node_modules", "node", "bin", "node")
  if (!existsSync(path.join(dir, ".complete"))) {
    say(`installing node@22 into ${dir}`)
    const tmp = `${dir}.tmp-${process.pid}`
    rmSync(tmp, { recursive: true, force: true })
    mkdirSync(tmp, { recursive: true })
    run("npm", ["install", "--no-audit", "--no-fund", "--prefix", tmp, "node@22"])
    writeFileSync(path.join(tmp, ".complete"), new Date().toISOString())
    rmSync(dir, { recursive: true, force: true })
    renameSync(tmp, dir)
  }
  return binary
}

const nodes = (): ReadonlyArray<{ readonly label: string; readonly binary: string }> => {
  const v24 = capture(process.execPath, ["--version"]).trim()
  if (!v24.startsWith("v24.")) throw new CommandError(`expected to run on Node 24, not ${v24}`)
  const binary22 = node22()
  const v22 = capture(binary22, ["--version"]).trim()
  if (!v22.startsWith("v22.")) throw new CommandError(`${binary22} is ${v22}, not Node 22`)
  return [{ label: `node ${v24}`, binary: process.execPath }, { label: `node ${v22}`, binary: binary22 }]
}

/** Every peer any package declares, with its range (one range per peer across packages). */
const peerRanges = (): ReadonlyMap<string, string> => {
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
}

const installedVersion = (name: string): string =>
  readJson<{ version: string }>(path.join(root, "node_modules", name, "package.json")).version

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
    .filter((block) => block.annotation === "run")
    .map((block) => ({ name: `readme-${block.line}`, code: block.code }))

/**
 * The OTLP trace exporters pin the OpenTelemetry SDK packages to exact versions, so a user whose own
 * `@opentelemetry/resources` or `sdk-trace-base` differs gets the exporter's copy beside it. That is
 * harmless (no global state lives there; `@opentelemetry/api`, which holds it, must be one copy and
 * is checked), so these two are not held to one copy.
 */
const pinnedByExporters = new Set(["@opentelemetry/resources", "@opentelemetry/sdk-trace-base"])

const checkOneCopy = (dir: string, names: ReadonlyArray<string>): void => {
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
  say(`one copy each of ${names.join(", ")}`)
}

/**
 * Compiles the scratch project. Errors in the program or in our packages' declarations fail; errors
 * that these flags raise inside other libraries' declarations (effect's WebCrypto types without the
 * DOM lib, @temporalio's under exactOptionalPropertyTypes) are theirs, counted and shown, not fatal.
 */
const typecheck = (dir: string, name: string): void => {
  const result = spawnSync(path.join(dir, "node_modules", ".bin", "tsc"), ["-p", dir, "--pretty", "false"], {
    cwd: dir,
    encoding: "utf8"
  })
  const errors = result.stdout.split("\n").filter((line) => /error TS\d+/.test(line))
  const ours = errors.filter((line) =>
    !line.startsWith("node_modules/") || line.startsWith("node_modules/@neural-hive/")
  )
  const theirs = new Map<string, number>()
  for (const line of errors) {
    const lib = /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(line)?.[1]
    if (lib !== undefined && !lib.startsWith("@neural-hive/")) theirs.set(lib, (theirs.get(lib) ?? 0) + 1)
  }
  if (theirs.size > 0) {
    say(`[${name}] not ours, ignored: ${[...theirs].map(([lib, n]) => `${n} error(s) in ${lib}`).join(", ")}`)
  }
  if (ours.length > 0 || (result.status !== 0 && errors.length === 0)) {
    throw new CommandError(`tsc failed in ${dir}:\n${ours.join("\n") || result.stdout + result.stderr}`)
  }
  say(`[${name}] tsc: no error in the program or in @neural-hive/* declarations`)
}

const scenario = (
  work: string,
  name: string,
  tarballs: ReadonlyArray<{ readonly name: string; readonly tarball: string }>,
  peers: Readonly<Record<string, string>>,
  runners: ReadonlyArray<{ readonly label: string; readonly binary: string }>
): void => {
  const dir = path.join(work, name)
  mkdirSync(path.join(dir, "src"), { recursive: true })
  const dependencies: Record<string, string> = { ...peers }
  for (const { name: pkg, tarball } of tarballs) dependencies[pkg] = `file:${tarball}`
  writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify(
      {
        name: `nh-consumer-${name}`,
        private: true,
        type: "module",
        dependencies,
        devDependencies: {
          "@types/node": installedVersion("@types/node"),
          typescript: installedVersion("typescript")
        }
      },
      null,
      2
    )
  )
  writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
  copyFileSync(path.join(root, "test", "consumer", "app", "main.ts"), path.join(dir, "src", "main.ts"))
  const programs = readmePrograms()
  if (programs.length === 0) throw new CommandError("README.md has no block marked <!-- doc-check: run -->")
  for (const program of programs) writeFileSync(path.join(dir, "src", `${program.name}.ts`), program.code)

  say(`[${name}] npm install in ${dir}: ${Object.entries(peers).map(([p, v]) => `${p}@${v}`).join(" ")}`)
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: dir })
  checkOneCopy(dir, [
    "effect",
    "@neural-hive/resilience",
    ...Object.keys(peers).filter((p) => p !== "effect" && !pinnedByExporters.has(p))
  ])

  say(`[${name}] tsc (strict, nodenext, skipLibCheck false)`)
  typecheck(dir, name)

  for (const runner of runners) {
    for (const file of ["main", ...programs.map((p) => p.name)]) {
      const out = capture(runner.binary, [path.join("dist", `${file}.js`)], { cwd: dir })
      if (file === "main" && !out.includes("consumer: ok")) {
        throw new CommandError(`dist/main.js on ${runner.label} did not print "consumer: ok":\n${out}`)
      }
      say(`[${name}] ${runner.label} dist/${file}.js: ok`)
      process.stdout.write(out.split("\n").map((line) => `    ${line}`).join("\n").trimEnd() + "\n")
    }
  }
}

const main = (): void => {
  say("npm run build")
  run("npm", ["run", "build", "--silent"])
  const work = mkdtempSync(path.join(os.tmpdir(), "nh-consumer-"))
  if (!path.relative(root, work).startsWith("..")) throw new CommandError(`${work} is inside the repository`)
  try {
    mkdirSync(path.join(work, "tarballs"))
    const tarballs = packAll(path.join(work, "tarballs"))
    say(`packed ${readdirSync(path.join(work, "tarballs")).join(", ")}`)
    const runners = nodes()
    const ranges = peerRanges()
    const tested = Object.fromEntries([...ranges.keys()].map((name) => [name, installedVersion(name)]))
    const lowestPeers = Object.fromEntries([...ranges].map(([name, range]) => [name, lowest(range)]))
    scenario(work, "tested", tarballs, tested, runners)
    scenario(work, "lowest", tarballs, lowestPeers, runners)
    say(`passed in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  } finally {
    if (process.env["NH_KEEP_CONSUMER"] === "1") say(`kept ${work}`)
    else rmSync(work, { recursive: true, force: true })
  }
}

try {
  main()
} catch (error) {
  console.error(`consumer: FAILED: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
}
