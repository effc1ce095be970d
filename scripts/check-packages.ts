/**
 * Checks what would be published (docs/packaging.md): builds, packs every package, and on each
 * tarball runs publint (strict: warnings fail) and @arethetypeswrong/cli (profile esm-only), checks
 * the file list (what a user needs, nothing else), and runs `npm publish --dry-run`.
 *
 *   npm run check:packages           --list prints every tarball's contents
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { publint } from "publint"
import { formatMessage } from "publint/utils"
import { capture, CommandError, packageDirs, packageJson, packAll, type Packed, readJson, root, run } from "./lib.ts"

const say = (line: string) => console.log(`packages: ${line}`)

/** Files every tarball must have, and patterns none may have (tests, configs, build state). */
const required = ["package.json", "README.md", "LICENSE", "CHANGELOG.md", "dist/index.js", "dist/index.d.ts"]
const forbidden = [/\.test\./, /(^|\/)tsconfig[^/]*\.json$/, /\.tsbuildinfo$/, /(^|\/)test\//, /(^|\/)node_modules\//]

const checkFiles = (packed: Packed): ReadonlyArray<string> => {
  const files = packed.files.map((f) => f.path)
  const problems = [
    ...required.filter((file) => !files.includes(file)).map((file) => `missing ${file}`),
    ...files.filter((file) => forbidden.some((re) => re.test(file))).map((file) => `ships ${file}`)
  ]
  for (const file of files.filter((f) => f.startsWith("src/") && f.endsWith(".ts"))) {
    const built = file.replace(/^src\//, "dist/").replace(/\.ts$/, ".js")
    if (!files.includes(built)) problems.push(`ships ${file} but not ${built} (stale or missing build)`)
  }
  for (const file of files.filter((f) => f.startsWith("dist/") && f.endsWith(".js"))) {
    const source = file.replace(/^dist\//, "src/").replace(/\.js$/, ".ts")
    if (!files.includes(source)) problems.push(`ships ${file} with no ${source} (stale build: npm run build)`)
  }
  return problems
}

/**
 * Every `@since` of a package names a version it has reached: the version in its package.json or an
 * earlier one. Before the first release that is 0.1.0 everywhere (docs/packaging.md, "Versions").
 */
const checkSince = (packed: Packed): ReadonlyArray<string> => {
  const version = readJson<{ version: string }>(path.join(packed.dir, "package.json")).version
  const problems: Array<string> = []
  for (const file of packed.files.filter((f) => f.path.startsWith("src/") && f.path.endsWith(".ts"))) {
    const lines = readFileSync(path.join(packed.dir, file.path), "utf8").split("\n")
    lines.forEach((line, index) => {
      const since = /@since (\S+)/.exec(line)?.[1]
      if (since !== undefined && compareVersions(since, version) > 0) {
        problems.push(`${file.path}:${index + 1}: @since ${since} is after the package's version ${version}`)
      }
    })
  }
  return problems
}

const versionParts = (v: string) => v.split(".").map((part) => Number.parseInt(part, 10))

const compareVersions = (a: string, b: string): number => {
  const [x, y] = [versionParts(a), versionParts(b)]
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0)
    if (d !== 0) return Number.isNaN(d) ? 1 : d
  }
  return 0
}

const lint = async (packed: Packed): Promise<ReadonlyArray<string>> => {
  const tarball = readFileSync(packed.tarball)
  const { messages, pkg } = await publint({
    pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) },
    strict: true
  })
  if (messages.length === 0) console.log(`  publint ${packed.name}: all good`)
  for (const message of messages) {
    console.log(`  publint ${message.type}: ${formatMessage(message, pkg, { color: false }) ?? message.code}`)
  }
  return messages.filter((m) => m.type !== "suggestion").map((m) => `publint: ${m.code}`)
}

/** docs/packaging.md's dependency table: one row per package, `name` range items in its two cells. */
const TABLE_HEADER = "| package | peer dependencies | dependencies |"

const parseCell = (cell: string): ReadonlyMap<string, string> => {
  const items = new Map<string, string>()
  if (cell.trim() === "–") return items
  for (const item of cell.replace(/\\\|/g, "|").split(/,\s*/)) {
    const match = /^`([^`]+)`\s*(.*)$/.exec(item.trim())
    if (match === null) throw new CommandError(`docs/packaging.md: "${item}" is not \`name\` range`)
    items.set(match[1] ?? "", (match[2] ?? "").trim())
  }
  return items
}

/**
 * The table lists every peer and dependency of every package with the range its package.json
 * declares (our own packages by name only), and nothing else.
 */
export const checkDependencyTable = (): ReadonlyArray<string> => {
  const lines = readFileSync(path.join(root, "docs", "packaging.md"), "utf8").split("\n")
  const start = lines.indexOf(TABLE_HEADER)
  if (start === -1) return [`docs/packaging.md has no line "${TABLE_HEADER}"`]
  const rows = new Map<string, ReadonlyArray<string>>()
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break
    const [name = "", ...cells] = line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim())
    rows.set(name.replace(/`/g, ""), cells)
  }
  const problems: Array<string> = []
  for (const dir of packageDirs) {
    const pkg = packageJson(dir)
    const row = rows.get(pkg.name)
    rows.delete(pkg.name)
    if (row === undefined) {
      problems.push(`docs/packaging.md's dependency table has no row for ${pkg.name}`)
      continue
    }
    const columns = [["peer dependencies", pkg.peerDependencies ?? {}], [
      "dependencies",
      pkg.dependencies ?? {}
    ]] as const
    columns.forEach(([column, declared], i) => {
      const listed = parseCell(row[i] ?? "")
      for (const [name, range] of Object.entries(declared)) {
        const expected = name.startsWith("@neural-hive/") ? "" : range
        if (!listed.has(name)) problems.push(`${pkg.name}: ${column} lacks \`${name}\` ${expected}`)
        else if (listed.get(name) !== expected) {
          problems.push(`${pkg.name}: ${column} lists \`${name}\` ${listed.get(name)}, package.json ${expected}`)
        }
      }
      for (const name of listed.keys()) {
        if (!(name in declared)) problems.push(`${pkg.name}: ${column} lists \`${name}\`, which package.json does not`)
      }
    })
  }
  for (const name of rows.keys()) {
    problems.push(`docs/packaging.md's dependency table has a row for ${name}, no package`)
  }
  return problems.map((problem) => `docs/packaging.md dependency table: ${problem}`)
}

const main = async (): Promise<void> => {
  const table = checkDependencyTable()
  if (process.argv.includes("--table")) {
    if (table.length > 0) throw new CommandError(table.join("\n"))
    say("docs/packaging.md's dependency table matches every package.json")
    return
  }
  say("npm run build")
  run("npm", ["run", "build", "--silent"])
  const work = mkdtempSync(path.join(os.tmpdir(), "nh-pack-"))
  const failures: Array<string> = []
  try {
    for (const packed of packAll(work)) {
      const problems: Array<string> = [...checkFiles(packed), ...checkSince(packed)]
      if (process.argv.includes("--list")) {
        for (const file of packed.files) console.log(`  ${String(file.size).padStart(8)}  ${file.path}`)
      }
      problems.push(...await lint(packed))
      try {
        const out = capture(path.join(root, "node_modules", ".bin", "attw"), [
          packed.tarball,
          "--profile",
          "esm-only",
          "--format",
          "ascii",
          "--no-color"
        ])
        console.log(out.trimEnd().split("\n").map((line) => `  ${line}`).join("\n"))
      } catch (error) {
        console.log(String(error))
        problems.push("attw: problems (above)")
      }
      try {
        capture("npm", ["publish", "--dry-run"], { cwd: packed.dir })
      } catch (error) {
        console.log(String(error))
        problems.push("npm publish --dry-run failed (above)")
      }
      if (problems.length === 0) {
        say(`${packed.name}: ${packed.files.length} files; publint, attw (esm-only), npm publish --dry-run clean`)
      } else {
        for (const problem of problems) failures.push(`${packed.name}: ${problem}`)
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  failures.push(...table)
  if (table.length === 0) say("docs/packaging.md's dependency table matches every package.json")
  if (failures.length > 0) throw new CommandError(failures.join("\n"))
}

main().catch((error: unknown) => {
  console.error(`packages: FAILED\n${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
})
