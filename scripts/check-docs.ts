/**
 * Type-checks every TypeScript code block of README.md, docs/*.md and packages/*\/README.md against
 * the packages (docs/testing.md, "Code blocks in the docs"), so a doc example cannot rot. Each block
 * is a module of its own that must compile as written: there is no prelude and no fragment, so a
 * block that uses a name it does not import or declare fails. A block annotated with a path
 * (`<!-- doc-check: file src/app.ts -->`, see scripts/doc-blocks.ts) is placed there, so its relative
 * imports resolve; a block annotated `test` is a vitest test file, and is run too. The one block
 * that is not compiled is one tagged ` ```ts signature `: a type signature shown as such, not a program.
 *
 *   npm run check:docs               the Markdown docs
 *   npm run check:docs -- --jsdoc    the `**Example**` blocks of the packages' JSDoc instead
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { AnnotationError, type Block, extractBlocks, extractJsdocBlocks } from "./doc-blocks.ts"
import { root } from "./lib.ts"

const LANGS = new Set(["ts", "typescript", "mts"])

/** The one word a TypeScript fence may carry after its language: a signature, shown, not compiled. */
const SIGNATURE = "signature"

export const markdownFiles = (): ReadonlyArray<string> => {
  const docs = path.join(root, "docs")
  const inDocs = readdirSync(docs).filter((f) => f.endsWith(".md")).map((f) => path.join(docs, f))
  const packages = readdirSync(path.join(root, "packages"))
    .map((p) => path.join(root, "packages", p, "README.md"))
    .filter((f) => existsSync(f))
  return [path.join(root, "README.md"), ...inDocs, ...packages]
}

export const sourceFiles = (): ReadonlyArray<string> => {
  const files: Array<string> = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.name.endsWith(".ts")) files.push(full)
    }
  }
  for (const pkg of readdirSync(path.join(root, "packages"))) walk(path.join(root, "packages", pkg, "src"))
  return files
}

/** `docs/testing.md` -> `docs_testing_md`: the folder of a file's blocks under build/doc-check. */
const slug = (file: string) => path.relative(root, file).replace(/[/.]/g, "_")

const at = (block: Block, row = 1, col = 1) => `${path.relative(root, block.file)}:${block.line + row - 1}:${col}`

const main = (): number => {
  const jsdoc = process.argv.includes("--jsdoc")
  const out = path.join(root, "build", "doc-check")
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  /** Each compiled block by its path under `out`. */
  const checked = new Map<string, Block>()
  const tests: Array<string> = []
  /** Folders standing for the repository root: a block placed at `test/redis/x.ts` imports `../../tools/rig/…` from there. */
  const placedRoots = new Set<string>()
  let signatures = 0
  const problems: Array<string> = []
  for (const file of jsdoc ? sourceFiles() : markdownFiles()) {
    let blocks: ReadonlyArray<Block>
    try {
      blocks = jsdoc ? extractJsdocBlocks(file) : extractBlocks(file)
    } catch (error) {
      if (!(error instanceof AnnotationError)) throw error
      problems.push(error.message.replace(`${root}${path.sep}`, ""))
      continue
    }
    for (const block of blocks) {
      if (!LANGS.has(block.lang)) continue
      const extra = block.info.filter((word) => word !== SIGNATURE)
      if (extra.length > 0) {
        problems.push(`${at(block, 0)}: unknown word "${extra.join(" ")}" after the language (only "${SIGNATURE}")`)
        continue
      }
      if (block.info.includes(SIGNATURE)) {
        if (block.annotation !== undefined) problems.push(`${at(block, 0)}: a signature is not compiled: no annotation`)
        signatures++
        continue
      }
      let name = `${slug(file)}_L${block.line}.ts`
      if (block.annotation?.path !== undefined) {
        placedRoots.add(slug(file))
        name = path.join(slug(file), block.annotation.path)
      } else if (block.annotation?.kind === "test") {
        name = `${slug(file)}_L${block.line}.test.ts`
      }
      if (checked.has(name)) {
        problems.push(`${at(block, 0)}: a second block at ${block.annotation?.path ?? name}`)
        continue
      }
      mkdirSync(path.dirname(path.join(out, name)), { recursive: true })
      // `export {}` makes every block a module, so blocks never share top-level names
      writeFileSync(path.join(out, name), `${block.code}\nexport {}\n`)
      checked.set(name, block)
      if (block.annotation?.kind === "test") tests.push(name)
    }
  }
  if (problems.length > 0) {
    for (const problem of problems) console.log(problem)
    console.error(`docs: FAILED: ${problems.length} block(s) that cannot be checked (docs/testing.md)`)
    return 1
  }
  writeFileSync(
    path.join(out, "tsconfig.json"),
    JSON.stringify({
      extends: "../../tsconfig.base.json",
      compilerOptions: {
        composite: false,
        incremental: false,
        declaration: false,
        declarationMap: false,
        emitDeclarationOnly: false,
        noEmit: true,
        // an example may name a value only to show it
        noUnusedLocals: false,
        noUnusedParameters: false,
        // a block placed at test/redis/x.ts resolves `../../tools/rig/proxy.ts` to the repository's tools/rig/proxy.ts
        rootDirs: ["../..", ...[...placedRoots].map((dir) => `./${dir}`)]
      },
      include: ["**/*.ts"]
    })
  )
  // TypeScript 7, the native compiler (docs/packaging.md, "The compiler"): the same checks in a third of the time
  const tsc = path.join(root, "node_modules", "typescript-7", "bin", "tsc")
  const result = spawnSync(tsc, ["-p", out, "--pretty", "false"], { cwd: root, encoding: "utf8" })
  let errors = 0
  for (const line of result.stdout.split("\n")) {
    const match = /^(?:.*\/)?build\/doc-check\/([^(]+)\((\d+),(\d+)\): (.*)$/.exec(line)
    const block = match === null ? undefined : checked.get(match[1] ?? "")
    if (match !== null && block !== undefined) {
      errors++
      console.log(`${at(block, Number(match[2]), Number(match[3]))}: ${match[4]}`)
    } else if (line.trim() !== "") {
      console.log(line)
    }
  }
  const summary =
    `${checked.size} TypeScript blocks${jsdoc ? " of JSDoc" : ""} compiled, ${signatures} signature(s) shown ` +
    `uncompiled, ${errors} error(s)`
  if (result.status !== 0) {
    console.error(`docs: FAILED: ${summary}. Make each block a module that compiles as written (docs/testing.md).`)
    return 1
  }
  console.log(`docs: ${summary}`)
  return tests.length === 0 ? 0 : runTests(out, tests, checked)
}

/** Runs the test blocks with the repository's vitest, on the packages' sources, with no server. */
const runTests = (out: string, tests: ReadonlyArray<string>, checked: ReadonlyMap<string, Block>): number => {
  writeFileSync(
    path.join(out, "vitest.config.mjs"),
    [
      `import { defaultServerConditions } from "vite"`,
      `import { defineConfig } from "vitest/config"`,
      `const conditions = ["@neural-hive/source", ...defaultServerConditions.filter((c) => c !== "module")]`,
      `export default defineConfig({ ssr: { resolve: { conditions } }, test: { include: ${
        JSON.stringify(tests)
      }, testTimeout: 30000 } })`,
      ""
    ].join("\n")
  )
  const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs")
  const result = spawnSync(process.execPath, [vitest, "run", "--root", out, "--config", "vitest.config.mjs"], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" }
  })
  const names = tests.map((name) => `${name} (${at(checked.get(name)!, 0)})`)
  if (result.status !== 0) {
    process.stdout.write(result.stdout + result.stderr)
    console.error(`docs: FAILED: the test blocks ${names.join(", ")}`)
    return 1
  }
  const summary = /Tests\s+(.*)$/m.exec(result.stdout)?.[1]?.trim() ?? "passed"
  console.log(`docs: ${tests.length} test block(s) run with vitest: ${summary}`)
  return 0
}

if (import.meta.main) process.exitCode = main()
