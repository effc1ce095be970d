/**
 * Code blocks of a Markdown file, with the annotation that may precede each one: an HTML comment
 * `<!-- doc-check: fragment -->` (not compiled: deliberately incomplete) or `<!-- doc-check: run -->`
 * (a complete program the consumer test also runs). See docs/testing.md.
 */
import { readFileSync } from "node:fs"

export type Annotation = "fragment" | "run"

export interface Block {
  readonly file: string
  /** 1-based line of the first line of code (the line after the opening fence). */
  readonly line: number
  readonly lang: string
  readonly code: string
  readonly annotation: Annotation | undefined
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/
const ANNOTATION = /^<!--\s*doc-check:\s*([\w-]+)\s*-->\s*$/

export class AnnotationError extends Error {}

/** The code blocks of a TypeScript file's JSDoc comments (their ` * ` prefix removed). */
export const extractJsdocBlocks = (file: string): ReadonlyArray<Block> =>
  blocksOf(file, readFileSync(file, "utf8").split("\n").map((line) => /^\s*\* ?(.*)$/.exec(line)?.[1] ?? ""))

export const extractBlocks = (file: string): ReadonlyArray<Block> =>
  blocksOf(file, readFileSync(file, "utf8").split("\n"))

const blocksOf = (file: string, lines: ReadonlyArray<string>): ReadonlyArray<Block> => {
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] ?? "")
    if (open === null) continue
    const [, indent = "", fence = "```", lang = ""] = open
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
    let annotation: Annotation | undefined
    if (marker !== null) {
      if (marker[1] !== "fragment" && marker[1] !== "run") {
        throw new AnnotationError(`${file}:${k + 1}: unknown annotation "doc-check: ${marker[1]}" (fragment or run)`)
      }
      annotation = marker[1]
    }
    blocks.push({ file, line: i + 2, lang: lang.toLowerCase(), code: body.join("\n") + "\n", annotation })
    i = j
  }
  return blocks
}
