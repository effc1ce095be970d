/**
 * Type-checks every TypeScript code block of README.md, docs/*.md and packages/*\/README.md against
 * the packages (docs/testing.md), so a doc example cannot rot. Each block is a module of its own;
 * a block preceded by `<!-- doc-check: fragment -->` is deliberately incomplete and skipped.
 *
 *   npm run check:docs               the Markdown docs
 *   npm run check:docs -- --jsdoc    the `**Example**` blocks of the packages' JSDoc instead
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { type Block, extractBlocks, extractJsdocBlocks } from "./doc-blocks.ts"
import { root } from "./lib.ts"

const LANGS = new Set(["ts", "typescript", "mts"])

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

const main = (): number => {
  const jsdoc = process.argv.includes("--jsdoc")
  const out = path.join(root, "build", "doc-check")
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  const checked = new Map<string, Block>()
  let fragments = 0
  for (const file of jsdoc ? sourceFiles() : markdownFiles()) {
    for (const block of jsdoc ? extractJsdocBlocks(file) : extractBlocks(file)) {
      if (!LANGS.has(block.lang)) continue
      if (block.annotation === "fragment") {
        fragments++
        continue
      }
      const name = `${path.relative(root, file).replace(/[/.]/g, "_")}_L${block.line}.ts`
      // `export {}` makes every block a module, so blocks never share top-level names
      writeFileSync(path.join(out, name), `${block.code}\nexport {}\n`)
      checked.set(name, block)
    }
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
        noUnusedParameters: false
      },
      include: ["*.ts"]
    })
  )
  // TypeScript 7, the native compiler (docs/packaging.md, "The compiler"): the same checks in a third of the time
  const tsc = path.join(root, "node_modules", "typescript-7", "bin", "tsc")
  const result = spawnSync(tsc, ["-p", out, "--pretty", "false"], { cwd: root, encoding: "utf8" })
  let errors = 0
  let current: Block | undefined
  for (const line of result.stdout.split("\n")) {
    const match = /^(?:.*\/)?build\/doc-check\/([^(]+)\((\d+),(\d+)\): (.*)$/.exec(line)
    if (match !== null) {
      const [, name = "", row = "0", col = "0", message = ""] = match
      current = checked.get(name)
      if (current === undefined) {
        console.log(line)
      } else {
        errors++
        const at = `${path.relative(root, current.file)}:${current.line + Number(row) - 1}:${col}`
        console.log(`${at}: ${message}`)
      }
    } else if (line.trim() !== "") {
      console.log(line)
    }
  }
  const summary = `${checked.size} TypeScript blocks${
    jsdoc ? " of JSDoc" : ""
  } compiled, ${fragments} marked fragment, ${errors} error(s)`
  if (result.status !== 0) {
    console.error(`docs: FAILED: ${summary}. Fix the example, or mark a deliberate fragment (docs/testing.md).`)
    return 1
  }
  console.log(`docs: ${summary}`)
  return 0
}

if (import.meta.main) process.exitCode = main()
