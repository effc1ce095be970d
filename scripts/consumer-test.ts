/**
 * The consumer test (docs/packaging.md): packs every package, installs the tarballs into scratch
 * projects outside the repository, compiles test/consumer/app/main.ts and the README's example with
 * strict TypeScript 5.9 and 7 (our declarations checked, skipLibCheck off) and runs them with plain
 * `node` on Node 24 and Node 22. Two projects: "tested" installs the versions this repository tests
 * with (every package, transitive ones included, at its version in the root package-lock.json),
 * "lowest" the lowest version of every declared peer range (a family released in lockstep, effect
 * and @effect/*, moves together). Fails on a second copy of effect or of any peer. In "tested" it
 * also tries docs/library-getting-started.md from an empty folder (scripts/consumer-guide.ts): the
 * guide's files type-checked, its service run until /metrics shows both breakers, its test run.
 *
 * Hermetic: each project installs with `npm ci` from a lockfile committed under
 * test/consumer/scenarios/<name>/, so nothing here resolves a version range. `--relock` is the one
 * step that resolves (a developer runs it after changing the root lockfile or a peer range); a
 * committed lockfile that no longer matches is an error naming the command.
 *
 *   npm run test:consumer                  NH_KEEP_CONSUMER=1 keeps the scratch directory
 *   npm run test:consumer -- --relock      rewrites test/consumer/scenarios/*
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { runGuide, testGuide, typecheckGuide, writeGuide } from "./consumer-guide.ts"
import {
  checkOneCopy,
  compilers,
  lockedVersions,
  nodes,
  packStable,
  peerRanges,
  rootVersion,
  runProgram,
  type Tarball,
  typecheck,
  TYPESCRIPT_7_ALIAS,
  writePrograms
} from "./consumer.ts"
import { CommandError, lowest, readJson, root, run } from "./lib.ts"

const started = Date.now()
const say = (line: string) => console.log(`consumer: ${line}`)

const scenarios = ["tested", "lowest"] as const
type Scenario = (typeof scenarios)[number]

/** Where a scenario's package.json and package-lock.json are committed. */
const committed = (scenario: Scenario) => path.join(root, "test", "consumer", "scenarios", scenario)
const relockHint = "run `npm run test:consumer -- --relock` and commit test/consumer/scenarios/"

const rootLock = path.join(root, "package-lock.json")

/** The effect family, released in lockstep: its members move together in the "lowest" project. */
const isEffectFamily = (name: string) => name === "effect" || name.startsWith("@effect/")

interface Manifest {
  readonly name: string
  readonly private: true
  readonly type: "module"
  readonly dependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
  readonly overrides?: Record<string, string>
}

/** A scenario's package.json, its overrides left out: the direct versions, a function of the repository. */
const manifest = (scenario: Scenario, tarballs: ReadonlyArray<Tarball>): Manifest => {
  const dependencies: Record<string, string> = {}
  for (const [name, range] of peerRanges()) {
    dependencies[name] = scenario === "tested"
      ? rootVersion(name)
      : lowest(range)
  }
  for (const { name, file } of tarballs) dependencies[name] = `file:../tarballs/${file}`
  return {
    name: `nh-consumer-${scenario}`,
    private: true,
    type: "module",
    dependencies,
    devDependencies: {
      "@types/node": rootVersion("@types/node"),
      typescript: rootVersion("typescript"),
      // TypeScript 7, which users get as `latest`, at the version the repository's own check uses
      [TYPESCRIPT_7_ALIAS]: `npm:typescript@${rootVersion(TYPESCRIPT_7_ALIAS)}`,
      // the test runner of docs/library-getting-started.md, tried in "tested" only
      ...(scenario === "tested"
        ? { vitest: rootVersion("vitest"), "@effect/vitest": rootVersion("@effect/vitest") }
        : {})
    }
  }
}

/** Packages a scratch project installs that the root lockfile does not: the second compiler. */
const compilerOnly = (name: string) => name === TYPESCRIPT_7_ALIAS || name.startsWith("@typescript/typescript-")

/** Why a scenario's lockfile does not hold what the scenario means, or nothing when it does. */
const lockProblems = (scenario: Scenario, lockfile: string): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const locked = lockedVersions(lockfile)
  if (scenario === "tested") {
    const tested = lockedVersions(rootLock)
    for (const [name, versions] of locked) {
      if (name.startsWith("@neural-hive/") || compilerOnly(name)) continue
      for (const version of versions) {
        if (!tested.get(name)?.has(version)) {
          problems.push(`${name}@${version} is not what package-lock.json has (${[...(tested.get(name) ?? ["none"])]})`)
        }
      }
    }
  } else {
    const effect = lowest(peerRanges().get("effect") ?? "")
    for (const [name, versions] of locked) {
      if (isEffectFamily(name) && (versions.size !== 1 || !versions.has(effect))) {
        problems.push(`${name}@${[...versions].join(",")} is not effect's lowest, ${effect}`)
      }
    }
  }
  return problems
}

/** The lockfile of `dir`'s package.json, resolved by npm without installing; file: tarballs keep no checksum. */
const resolve = (dir: string, pkg: Manifest): void => {
  writeFileSync(path.join(dir, "package.json"), JSON.stringify(pkg, null, 2) + "\n")
  rmSync(path.join(dir, "package-lock.json"), { force: true })
  run("npm", ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: dir
  })
  const lockfile = path.join(dir, "package-lock.json")
  const lock = readJson<{ packages: Record<string, { resolved?: string; integrity?: string }> }>(lockfile)
  // A rebuilt tarball has other bytes (timestamps aside, any source change): its checksum cannot be committed.
  for (const entry of Object.values(lock.packages)) {
    if (entry.resolved?.startsWith("file:") === true) delete entry.integrity
  }
  writeFileSync(lockfile, JSON.stringify(lock, null, 2) + "\n")
}

/**
 * `--relock`: resolves each scenario once more and writes its package.json and lockfile under
 * test/consumer/scenarios/. "tested" pins every package the root lockfile has to that version
 * (overrides), "lowest" every member of the effect family to effect's lowest version.
 */
const relock = (work: string, tarballs: ReadonlyArray<Tarball>): void => {
  for (const scenario of scenarios) {
    const dir = path.join(work, scenario)
    mkdirSync(dir, { recursive: true })
    const base = manifest(scenario, tarballs)
    resolve(dir, base)
    const direct = new Set([...Object.keys(base.dependencies), ...Object.keys(base.devDependencies)])
    const overrides: Record<string, string> = {}
    const tested = lockedVersions(rootLock)
    const effect = lowest(peerRanges().get("effect") ?? "")
    for (const name of [...lockedVersions(path.join(dir, "package-lock.json")).keys()].toSorted()) {
      if (direct.has(name) || name.startsWith("@neural-hive/") || compilerOnly(name)) continue
      if (scenario === "tested") {
        const versions = tested.get(name)
        if (versions?.size === 1) overrides[name] = [...versions][0]!
      } else if (isEffectFamily(name)) {
        overrides[name] = effect
      }
    }
    const pkg = { ...base, overrides }
    resolve(dir, pkg)
    const problems = lockProblems(scenario, path.join(dir, "package-lock.json"))
    if (problems.length > 0) throw new CommandError(`[${scenario}] relock:\n  ${problems.join("\n  ")}`)
    const target = committed(scenario)
    mkdirSync(target, { recursive: true })
    for (const file of ["package.json", "package-lock.json"]) cpSync(path.join(dir, file), path.join(target, file))
    say(`[${scenario}] wrote ${path.relative(root, target)} (${Object.keys(overrides).length} overrides)`)
  }
}

/** Installs one scenario from its committed lockfile, then checks, compiles and runs the programs. */
const scenario = async (
  work: string,
  name: Scenario,
  tarballs: ReadonlyArray<Tarball>,
  runners: ReturnType<typeof nodes>
): Promise<void> => {
  const dir = path.join(work, name)
  const source = committed(name)
  if (!existsSync(path.join(source, "package-lock.json"))) {
    throw new CommandError(`${source} has no lockfile: ${relockHint}`)
  }
  const pkg = readJson<Manifest>(path.join(source, "package.json"))
  const expected = manifest(name, tarballs)
  for (const field of ["dependencies", "devDependencies"] as const) {
    if (JSON.stringify(pkg[field]) !== JSON.stringify(expected[field])) {
      throw new CommandError(
        `[${name}] ${path.relative(root, source)}/package.json ${field} are stale:\n  committed ${
          JSON.stringify(pkg[field])
        }\n  expected  ${JSON.stringify(expected[field])}\n${relockHint}`
      )
    }
  }
  const problems = lockProblems(name, path.join(source, "package-lock.json"))
  if (problems.length > 0) {
    throw new CommandError(`[${name}] stale lockfile:\n  ${problems.join("\n  ")}\n${relockHint}`)
  }

  mkdirSync(dir, { recursive: true })
  for (const file of ["package.json", "package-lock.json"]) cpSync(path.join(source, file), path.join(dir, file))
  const programs = writePrograms(dir)
  const peers = [...peerRanges().keys()]
  say(`[${name}] npm ci in ${dir}: ${peers.map((p) => `${p}@${pkg.dependencies[p]}`).join(" ")}`)
  run("npm", ["ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: dir })
  say(`[${name}] ${checkOneCopy(dir, peers)}`)

  for (const compiler of compilers(dir)) {
    say(`[${name}] ${typecheck(dir, compiler)}`)
    // Both Nodes run what TypeScript 5.9 emitted; TypeScript 7's output runs on the Node this script runs on.
    for (const runner of compiler.outDir === "dist" ? runners : runners.slice(0, 1)) {
      for (const program of programs) {
        const out = runProgram(dir, compiler.outDir, program, runner)
        say(`[${name}] ${runner.label} ${compiler.outDir}/${program}.js: ok`)
        if (compiler.outDir === "dist") {
          process.stdout.write(out.split("\n").map((line) => `    ${line}`).join("\n").trimEnd() + "\n")
        }
      }
    }
  }
  if (name === "tested") await guide(dir, pkg, runners)
}

/** docs/library-getting-started.md from an empty folder: the reader's project is a folder of the scratch project. */
const guide = async (dir: string, pkg: Manifest, runners: ReturnType<typeof nodes>): Promise<void> => {
  const guideStarted = Date.now()
  const guideDir = path.join(dir, "guide")
  const available = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)])
  say(`[guide] ${writeGuide(guideDir, available)}`)
  for (const compiler of compilers(dir)) say(`[guide] tsc: ${typecheckGuide(guideDir, compiler)}`)
  for (const runner of runners) {
    const states = await runGuide(guideDir, runner)
    say(`[guide] ${runner.label} src/main.ts: /metrics shows both breakers open, then it stopped on SIGINT`)
    process.stdout.write(states.split("\n").map((line) => `    ${line}`).join("\n") + "\n")
  }
  say(`[guide] ${testGuide(guideDir, dir, runners[0]!)}`)
  say(`[guide] tried in ${((Date.now() - guideStarted) / 1000).toFixed(0)} s`)
}

const main = async (): Promise<void> => {
  const relocking = process.argv.includes("--relock")
  const work = mkdtempSync(path.join(os.tmpdir(), "nh-consumer-"))
  if (!path.relative(root, work).startsWith("..")) throw new CommandError(`${work} is inside the repository`)
  try {
    say("npm run build, npm pack")
    const tarballs = packStable(path.join(work, "tarballs"))
    say(`packed ${tarballs.map((t) => t.file).join(", ")}`)
    if (relocking) {
      relock(work, tarballs)
    } else {
      const runners = nodes(say)
      for (const name of scenarios) await scenario(work, name, tarballs, runners)
    }
    say(`${relocking ? "relocked" : "passed"} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  } finally {
    if (process.env["NH_KEEP_CONSUMER"] === "1") say(`kept ${work}`)
    else rmSync(work, { recursive: true, force: true })
  }
}

await main().catch((error: unknown) => {
  console.error(`consumer: FAILED: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
})
