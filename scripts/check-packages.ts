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
import { capture, CommandError, packAll, type Packed, readJson, root, run } from "./lib.ts"

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

const compareVersions = (a: string, b: string): number => {
  const parse = (v: string) => v.split(".").map((part) => Number.parseInt(part, 10))
  const [x, y] = [parse(a), parse(b)]
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

const main = async (): Promise<void> => {
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
  if (failures.length > 0) throw new CommandError(failures.join("\n"))
}

main().catch((error: unknown) => {
  console.error(`packages: FAILED\n${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
})
