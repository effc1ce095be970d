/**
 * Code blocks of a Markdown file, with the annotation that may precede each one (an HTML comment on
 * the line before the fence, which renders as nothing). There are no fragments: every TypeScript
 * block is a module that compiles as written (docs/testing.md, "Code blocks in the docs").
 *
 *   <!-- doc-check: run -->              a complete program the consumer test also runs (README.md)
 *   <!-- doc-check: test -->             a vitest test file that needs no server: check:docs runs it
 *   <!-- doc-check: file PATH -->        a file that lives at PATH: a module's relative imports resolve from there
 *   <!-- doc-check: test PATH -->        a test file that lives at PATH
 *
 * PATH is relative to the repository root for the repository's own files (`test/redis/Faults.test.ts`
 * imports `../../tools/rig/proxy.ts`), or to the reader's project in a guide (`src/main.ts`).
 */
import { readFileSync } from "node:fs"

export type Kind = "run" | "test" | "file"

export interface Annotation {
  readonly kind: Kind
  /** Where the block lives, relative: `src/main.ts`, `test/redis/Faults.test.ts`. */
  readonly path: string | undefined
}

export interface Block {
  readonly file: string
  /** 1-based line of the first line of code (the line after the opening fence). */
  readonly line: number
  readonly lang: string
  /** The words after the language on the fence line: ` ```ts signature ` has `["signature"]`. */
  readonly info: ReadonlyArray<string>
  readonly code: string
  readonly annotation: Annotation | undefined
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)(.*)$/
const ANNOTATION = /^<!--\s*doc-check:\s*(.*?)\s*-->\s*$/
const KINDS: ReadonlySet<string> = new Set<Kind>(["run", "test", "file"])
const PATH = /^(?!\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[\w./-]+\.(?:ts|mts|json)$/

export class AnnotationError extends Error {}

/** The code blocks of a TypeScript file's JSDoc comments (their ` * ` prefix removed). */
export const extractJsdocBlocks = (file: string): ReadonlyArray<Block> =>
  blocksOf(file, readFileSync(file, "utf8").split("\n").map((line) => /^\s*\* ?(.*)$/.exec(line)?.[1] ?? ""))

export const extractBlocks = (file: string): ReadonlyArray<Block> =>
  blocksOf(file, readFileSync(file, "utf8").split("\n"))

const parseAnnotation = (file: string, line: number, text: string): Annotation => {
  const [kind = "", path, ...rest] = text.split(/\s+/)
  if (kind === "fragment") {
    throw new AnnotationError(
      `${file}:${line}: "doc-check: fragment" is gone: every TypeScript block compiles as written. Add the imports and ` +
        "declarations it needs (docs/testing.md, \"Code blocks in the docs\")"
    )
  }
  if (!KINDS.has(kind) || rest.length > 0) {
    throw new AnnotationError(
      `${file}:${line}: unknown annotation "doc-check: ${text}" (run, test or file, then a path)`
    )
  }
  if (kind === "file" && path === undefined) {
    throw new AnnotationError(`${file}:${line}: "doc-check: file" needs a path`)
  }
  if (path !== undefined && !PATH.test(path)) {
    throw new AnnotationError(`${file}:${line}: "${path}" is not a relative path to a .ts, .mts or .json file`)
  }
  return { kind: kind as Kind, path }
}

const blocksOf = (file: string, lines: ReadonlyArray<string>): ReadonlyArray<Block> => {
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] ?? "")
    if (open === null) continue
    const [, indent = "", fence = "```", lang = "", rest = ""] = open
    const body: Array<string> = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const line = lines[j] ?? ""
      const close = line.trim()
      if (close.length >= fence.length && close === fence.charAt(0).repeat(close.length)) break
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line)
    }
    let k = i - 1
    while (k >= 0 && (lines[k] ?? "").trim() === "") k--
    const marker = ANNOTATION.exec((lines[k] ?? "").trim())
    blocks.push({
      file,
      line: i + 2,
      lang: lang.toLowerCase(),
      info: rest.trim().split(/\s+/).filter((word) => word !== ""),
      code: body.join("\n") + "\n",
      annotation: marker === null ? undefined : parseAnnotation(file, k + 1, marker[1] ?? "")
    })
    i = j
  }
  return blocks
}
