/**
 * What a user installs today (docs/packaging.md, "What users get today"): unlike the hermetic
 * `npm run test:consumer`, this resolves ranges on purpose, against the registry as it is now.
 *
 * 1. "readme": the README's Install lines, typed as written into an empty project (our packages
 *    from their tarballs, every other name as the line gives it, so the newest the registry serves),
 *    then `npm ls`, the consumer program and the README example compiled with TypeScript 5.9 and 7
 *    and run on Node 24.
 * 2. "newest": a copy of this repository without its lockfile, installed fresh (the newest version in
 *    every declared range), built, and its tests that need no server run (`NH_NO_SERVERS=1`).
 * 3. "next major": for each peer whose registry has a release past our range (ioredis 6, ...), the
 *    same copy with that peer forced to it: does our code work there, so the range could widen?
 *
 * Prints a table (peer, range, newest in range, what the README's lines install, next major, result).
 * Exits 1 only when our code fails on versions inside our declared ranges: a compile, run or test
 * failure in 1 (on a tree `npm ls` accepts, so every peer in our ranges) or in 2. An install refused
 * or a tree `npm ls` rejects is reported, not failed (saying so when one of our ranges is the
 * cause), and so is every next-major result and a registry that does not answer.
 *
 *   npm run check:latest                   NH_KEEP_LATEST=1 keeps the scratch directory
 *   npm run check:latest -- --no-majors    skips 3
 */
import { spawnSync } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  checkOneCopy,
  compilers,
  nodes,
  packStable,
  peerRanges,
  runProgram,
  type Tarball,
  typecheck,
  TYPESCRIPT_7_ALIAS,
  writePrograms
} from "./consumer.ts"
import { capture, CommandError, packageDirs, readJson, root } from "./lib.ts"

const started = Date.now()
const say = (line: string) => console.log(`latest: ${line}`)

/** A command's outcome, its output kept to show on failure. */
const attempt = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  env: NodeJS.ProcessEnv = process.env
): { readonly ok: boolean; readonly output: string } => {
  const result = spawnSync(command, args, { cwd, env, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 })
  return { ok: result.status === 0, output: `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ?? ""}` }
}

/** What a failed command said: npm's error lines (its ERESOLVE explanation) or the last lines. */
const tail = (output: string, lines = 15) => {
  const all = output.trimEnd().split("\n")
  const errors = all.filter((l) => l.startsWith("npm error") && !l.includes("A complete log of this run"))
  return (errors.length > 0 ? errors : all).slice(-lines).join("\n")
}

const npmView = (spec: string): unknown => JSON.parse(capture("npm", ["view", spec, "version", "--json"]) || "null")

/** The newest version the registry serves in `range`. */
const newestIn = (name: string, range: string): string => {
  const found = npmView(`${name}@${range}`)
  // npm lists them in publication order, and a backport (5.9.2 after 5.11.1) is published last
  const releases = (Array.isArray(found) ? found : [found]).flatMap((v) => {
    const parsed = typeof v === "string" ? parse(v) : undefined
    return parsed === undefined ? [] : [parsed]
  })
  if (releases.length === 0) throw new CommandError(`the registry has no release of ${name}@${range}`)
  return releases.reduce((a, b) => compare(a, b) >= 0 ? a : b).join(".")
}

/** `[major, minor, patch]` of a plain release, or undefined for a prerelease. */
const parse = (version: string): readonly [number, number, number] | undefined => {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(version)
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3])]
}

/** Caret semantics: the line a version belongs to (`5` for 5.3.0, `0.223` for 0.223.1). */
const line = ([major, minor]: readonly [number, number, number]) => major === 0 ? `0.${minor}` : `${major}`

/** The newest release of the first line past `inRange`'s (ioredis 6.1.0 past 5.x), if the registry has one. */
const nextMajor = (name: string, inRange: string): string | undefined => {
  const current = parse(inRange)
  if (current === undefined) return undefined
  const all = JSON.parse(capture("npm", ["view", name, "versions", "--json"])) as ReadonlyArray<string>
  const later = all.flatMap((v) => {
    const parsed = parse(v)
    return parsed !== undefined && line(parsed) !== line(current) && compare(parsed, current) > 0 ? [parsed] : []
  })
  if (later.length === 0) return undefined
  const first = line(later.reduce((a, b) => compare(a, b) <= 0 ? a : b))
  return later.filter((v) => line(v) === first).reduce((a, b) => compare(a, b) >= 0 ? a : b).join(".")
}

const compare = (a: readonly [number, number, number], b: readonly [number, number, number]) =>
  a[0] - b[0] || a[1] - b[1] || a[2] - b[2]

/** The `npm install` lines of the README's Install section, continuation lines joined and comments dropped. */
export const readmeInstallLines = (readme: string): ReadonlyArray<ReadonlyArray<string>> => {
  const section = /^## Install\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1]
  if (section === undefined) throw new CommandError("README.md has no '## Install' section")
  const lines: Array<ReadonlyArray<string>> = []
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const command of block[1]!.replace(/\\\n/g, " ").split("\n")) {
      const words = command.replace(/#.*$/, "").trim().split(/\s+/).filter((w) => w !== "")
      if (words[0] === "npm" && words[1] === "install") lines.push(words.slice(2))
    }
  }
  if (lines.length === 0) throw new CommandError("README.md's Install section has no `npm install` line")
  return lines
}

interface Outcome {
  readonly ok: boolean
  /** Our code failed on versions inside our ranges: the run fails. */
  readonly ours: boolean
  readonly detail: string
}

/** `npm ls`'s problems: ours when they name a package whose range we declare, else upstream's. */
const treeProblems = (
  dir: string
): { readonly ours: ReadonlyArray<string>; readonly theirs: ReadonlyArray<string> } => {
  const ls = attempt("npm", ["ls", "--all", "--json"], dir)
  let problems: ReadonlyArray<string>
  try {
    problems = (JSON.parse(ls.output.slice(ls.output.indexOf("{"))) as { problems?: ReadonlyArray<string> })
      .problems ?? []
  } catch {
    problems = ls.ok ? [] : [`npm ls failed and printed no report:\n${tail(ls.output)}`]
  }
  const peers = [...peerRanges().keys()]
  const ours = problems.filter((p) => peers.some((peer) => p.includes(` ${peer}@`)) || p.includes("@neural-hive/"))
  return { ours, theirs: problems.filter((p) => !ours.includes(p)) }
}

/** 1: the README's Install lines into an empty project, then the consumer programs. */
const readmeScenario = (work: string, tarballs: ReadonlyArray<Tarball>): Outcome & {
  readonly installed: ReadonlyMap<string, string>
} => {
  const dir = path.join(work, "readme")
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "nh-latest", private: true, type: "module" }))
  const tarballOf = new Map(tarballs.map((t) => [t.name, `file:../tarballs/${t.file}`]))
  const installed = new Map<string, string>()
  const done = (outcome: Outcome) => ({ ...outcome, installed })
  for (const words of readmeInstallLines(readFileSync(path.join(root, "README.md"), "utf8"))) {
    const args = words.map((w) => tarballOf.get(w) ?? w)
    say(`[readme] npm install ${words.join(" ")}`)
    const result = attempt("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...args], dir)
    if (!result.ok) {
      // Reported, not failed: no code of ours ran. Refused because of one of our ranges: the README or the range is wrong.
      const blame = /from @neural-hive\//.test(result.output)
        ? " (against one of our ranges: fix the README or the range)"
        : ""
      return done({
        ok: false,
        ours: false,
        detail: `npm install ${words.join(" ")} failed${blame}:\n${tail(result.output, 40)}`
      })
    }
  }
  for (const name of peerRanges().keys()) {
    try {
      installed.set(name, readJson<{ version: string }>(path.join(dir, "node_modules", name, "package.json")).version)
    } catch {
      // a peer no README line installs stays out of the table's "installed" column
    }
  }
  // An invalid tree is reported, not failed (no code of ours ran on it); a valid one holds only versions inside
  // our ranges, so a compile or run failure on it below is ours.
  const tree = treeProblems(dir)
  if (tree.ours.length > 0) {
    return done({
      ok: false,
      ours: false,
      detail: `npm ls after the README's lines rejects a peer of ours (fix the README or the range):\n  ${
        tree.ours.join("\n  ")
      }`
    })
  }
  if (tree.theirs.length > 0) {
    return done({ ok: false, ours: false, detail: `npm ls, upstream:\n  ${tree.theirs.join("\n  ")}` })
  }
  const compilersInstall = attempt("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    "--save-dev",
    "@types/node@24",
    "typescript@5.9",
    `${TYPESCRIPT_7_ALIAS}@npm:typescript@7`
  ], dir)
  if (!compilersInstall.ok) {
    return done({ ok: false, ours: false, detail: `installing the compilers:\n${tail(compilersInstall.output)}` })
  }
  const programs = writePrograms(dir)
  const [node24] = nodes(say)
  try {
    say(`[readme] ${checkOneCopy(dir, [...installed.keys()])}`)
    for (const compiler of compilers(dir)) {
      say(`[readme] ${typecheck(dir, compiler)}`)
      for (const program of programs) runProgram(dir, compiler.outDir, program, node24!)
      say(`[readme] ${node24!.label} ${compiler.outDir}/{${programs.join(",")}}.js: ok`)
    }
  } catch (error) {
    return done({ ok: false, ours: true, detail: error instanceof Error ? error.message : String(error) })
  }
  return done({ ok: true, ours: false, detail: "npm ls valid, both compilers, programs ran" })
}

/** A copy of the repository's tracked and new files (no node_modules, no lockfile) in `dir`. */
const copyRepository = (dir: string): void => {
  const files = capture("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]).split("\0")
  for (const file of files) {
    if (file === "" || file === "package-lock.json") continue
    try {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
      cpSync(path.join(root, file), path.join(dir, file))
    } catch (error) {
      // a file deleted in the work tree but still in the index is not part of the copy
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    }
  }
}

/**
 * The peer ranges other packages of the tree declare for `name` (`@effect/opentelemetry@4.1.5: >=2.0.0 <3.0.0`):
 * a next major that works with our code still cannot be recommended while one of them excludes it.
 */
const otherPeerRanges = (dir: string, name: string): string => {
  const explained = attempt("npm", ["explain", name, "--json"], dir)
  if (!explained.ok) return ""
  const nodes = JSON.parse(explained.output.slice(explained.output.indexOf("["))) as ReadonlyArray<{
    readonly dependents: ReadonlyArray<{ type: string; from?: { name?: string; location?: string } }>
  }>
  const peers = new Set(nodes.flatMap((node) =>
    node.dependents.flatMap((d) => {
      const from = d.from
      if (!d.type.startsWith("peer") || from?.name === undefined || from.name.startsWith("@neural-hive/")) return []
      // The range as the package declares it: npm explain shows the overridden spec instead.
      try {
        const declared = readJson<{ version?: string; peerDependencies?: Record<string, string> }>(
          path.join(dir, from.location ?? path.join("node_modules", from.name), "package.json")
        )
        return [`${from.name}@${declared.version}: ${declared.peerDependencies?.[name] ?? "?"}`]
      } catch {
        return [`${from.name}: ?`]
      }
    })
  ))
  return peers.size === 0 ? "" : ` (forced: other packages' ranges for it: ${[...peers].join("; ")})`
}

/** Build and the server-free tests in a repository copy; `force` pins one peer past our range. */
const repositoryScenario = (
  work: string,
  label: string,
  force?: { readonly name: string; readonly version: string }
): Outcome & { readonly versions: ReadonlyMap<string, string> } => {
  const dir = path.join(work, label.replace(/[^a-z0-9]+/gi, "-"))
  copyRepository(dir)
  if (force !== undefined) {
    // Every workspace that develops against the peer takes the forced version, and so does every other copy.
    for (const pkgDir of [dir, ...packageDirs.map((d) => path.join(dir, path.relative(root, d)))]) {
      const file = path.join(pkgDir, "package.json")
      const pkg = readJson<Record<string, Record<string, string> | undefined>>(file)
      if (pkg["devDependencies"]?.[force.name] !== undefined) pkg["devDependencies"][force.name] = force.version
      if (pkgDir === dir) pkg["overrides"] = { ...pkg["overrides"], [force.name]: force.version }
      writeFileSync(file, JSON.stringify(pkg, null, 2))
    }
  }
  const versions = new Map<string, string>()
  const done = (outcome: Outcome) => ({ ...outcome, versions })
  say(
    `[${label}] npm install (no lockfile: the newest in every range${force ? `, ${force.name}@${force.version}` : ""})`
  )
  let install = attempt("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], dir)
  let blockedBy = ""
  if (!install.ok && force !== undefined) {
    // Another package's peer range refuses the forced version: say whose, then try our code with it anyway.
    const others = new Set(
      [...install.output.matchAll(/peer \S+ from (@?[^@\s]+)@/g)].map((m) => m[1]!).filter((n) =>
        !n.startsWith("@neural-hive/")
      )
    )
    blockedBy = others.size > 0 ? ` (forced with --force: ${[...others].join(", ")} declare(s) a range without it)` : ""
    install = attempt("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", "--force"], dir)
  }
  if (!install.ok) return done({ ok: false, ours: false, detail: `npm install failed:\n${tail(install.output)}` })
  if (force !== undefined && blockedBy === "") blockedBy = otherPeerRanges(dir, force.name)
  for (const name of peerRanges().keys()) {
    versions.set(name, readJson<{ version: string }>(path.join(dir, "node_modules", name, "package.json")).version)
  }
  const steps: ReadonlyArray<readonly [string, ReadonlyArray<string>, NodeJS.ProcessEnv]> = [
    ["build", ["run", "build", "--silent"], process.env],
    ["tests that need no server", ["exec", "--", "vitest", "run"], {
      ...process.env,
      NH_NO_SERVERS: "1",
      NO_COLOR: "1"
    }]
  ]
  for (const [step, args, env] of steps) {
    say(`[${label}] ${step}`)
    // npm puts the copy's node_modules/.bin, and so its pinned Node 24, first on the PATH
    const result = attempt("npm", args, dir, env)
    if (!result.ok) {
      return done({ ok: false, ours: force === undefined, detail: `${step} failed:\n${tail(result.output, 30)}` })
    }
    if (step.startsWith("tests")) {
      const summary = /Tests\s+(.*)/.exec(result.output)?.[1]
      if (summary === undefined) return done({ ok: false, ours: true, detail: "vitest printed no summary" })
      say(`[${label}] ${summary.trim()}`)
    }
  }
  return done({ ok: true, ours: false, detail: `build and the server-free tests pass${blockedBy}` })
}

const main = (): void => {
  const majors = !process.argv.includes("--no-majors")
  const work = mkdtempSync(path.join(os.tmpdir(), "nh-latest-"))
  let failed = false
  try {
    const tarballs = packStable(path.join(work, "tarballs"))
    let rows: ReadonlyArray<{ name: string; range: string; inRange: string; next: string | undefined }>
    try {
      rows = [...peerRanges()].map(([name, range]) => {
        const inRange = newestIn(name, range)
        return { name, range, inRange, next: nextMajor(name, inRange) }
      })
    } catch (error) {
      // The registry's state is what this command reports on, never a reason to fail it.
      say(`the registry did not answer (reported, not failed): ${error instanceof Error ? error.message : error}`)
      return
    }
    const readme = readmeScenario(work, tarballs)
    say(`[readme] ${readme.ok ? "ok" : `FAILED${readme.ours ? "" : " (upstream, reported)"}: ${readme.detail}`}`)
    const newest = repositoryScenario(work, "newest")
    say(`[newest] ${newest.ok ? "ok" : `FAILED: ${newest.detail}`}`)
    failed = readme.ours || newest.ours
    const nextResults = new Map<string, Outcome>()
    if (majors) {
      for (const row of rows) {
        if (row.next === undefined) continue
        const outcome = repositoryScenario(work, `${row.name}@${row.next}`, { name: row.name, version: row.next })
        say(`[${row.name}@${row.next}] ${outcome.ok ? "works" : `fails: ${outcome.detail}`}`)
        nextResults.set(row.name, outcome)
      }
    }
    const table = [
      ["peer", "range", "newest in range", "README install gives", "next major", "result"],
      ...rows.map((row) => {
        const next = nextResults.get(row.name)
        return [
          row.name,
          row.range,
          `${row.inRange}${
            newest.versions.get(row.name) === row.inRange ? "" : ` (tree: ${newest.versions.get(row.name) ?? "-"})`
          } ${newest.ok ? "ok" : "FAILED"}`,
          `${readme.installed.get(row.name) ?? "-"}${readme.ok ? " ok" : ""}`,
          row.next ?? "none",
          row.next === undefined
            ? "in range: ok"
            : next === undefined
            ? "not tried (--no-majors)"
            : next.ok
            ? `works${
              next.detail.includes(" (forced")
                ? next.detail.slice(next.detail.indexOf(" (forced"))
                : ": the range could widen"
            }`
            : `fails: ${next.detail.split("\n")[0]}`
        ]
      })
    ]
    const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)))
    console.log(table.map((r) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`).join("\n"))
    say(
      `${failed ? "FAILED: our code fails inside our ranges" : "done"} in ${
        ((Date.now() - started) / 1000).toFixed(0)
      } s`
    )
  } finally {
    if (process.env["NH_KEEP_LATEST"] === "1") say(`kept ${work}`)
    else rmSync(work, { recursive: true, force: true })
  }
  if (failed) process.exitCode = 1
}

try {
  main()
} catch (error) {
  console.error(`latest: FAILED: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
}
