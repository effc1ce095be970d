/**
 * Bounded YAML reading for the configuration: a size limit, regular files
 * only, a linear duplicate-key check and problems that name the real line.
 *
 * @since 0.1.0
 * @internal
 */
import * as Effect from "effect/Effect"
import { constants } from "node:fs"
import * as Fs from "node:fs/promises"
import * as Yaml from "yaml"

/** One bad thing found while reading, in the shape of `ResilienceConfig.Problem`. */
export interface Problem {
  readonly key: string
  readonly value: unknown
  readonly expected: string
}

/** 1 MiB: a Helm values file is a few KiB; more is a mistake or an attack. */
export const defaultMaxBytes = 1024 * 1024

const sizeLimit = (maxBytes: number) =>
  `at most ${maxBytes} bytes (${maxBytes >= 1024 * 1024 ? `${maxBytes / (1024 * 1024)} MiB` : `${maxBytes} B`})`

/** Parses one YAML document into plain values (mappings as `Map`, so no key can touch a prototype). */
export const parse = (
  text: string,
  maxBytes: number
): { readonly document: unknown } | { readonly problems: ReadonlyArray<Problem> } => {
  const bytes = Buffer.byteLength(text)
  if (bytes > maxBytes) {
    return { problems: [{ key: "(document)", value: `${bytes} bytes`, expected: sizeLimit(maxBytes) }] }
  }
  const lineCounter = new Yaml.LineCounter()
  const line = (offset: number) => `line ${lineCounter.linePos(offset).line}`
  // One catch for the parser and the conversion (an alias bomb or an unresolved alias throws in `toJS`).
  try {
    // uniqueKeys is quadratic in the yaml library (each key compared with every earlier one): checked below instead.
    const parsed = Yaml.parseDocument(text, { prettyErrors: false, uniqueKeys: false, lineCounter })
    if (parsed.errors.length > 0) {
      return {
        problems: parsed.errors.map((e) => ({
          key: line(e.pos[0]),
          value: e.code,
          expected: `valid YAML (${e.message.split("\n")[0]})`
        }))
      }
    }
    const duplicates: Array<Problem> = []
    Yaml.visit(parsed, {
      Map(_, map) {
        const seen = new Set<unknown>()
        for (const pair of map.items) {
          // A parsed document's keys are nodes, an empty key included (a null scalar).
          const node = pair.key as Yaml.ParsedNode
          const key = Yaml.isScalar(node) ? node.value : String(node)
          if (seen.has(key)) {
            duplicates.push({
              key: line(node.range[0]),
              value: key,
              expected: "each key once per mapping (this key is repeated)"
            })
          }
          seen.add(key)
        }
      }
    })
    if (duplicates.length > 0) return { problems: duplicates }
    return { document: parsed.toJS({ maxAliasCount: 100, mapAsMap: true }) }
  } catch (cause) {
    return { problems: [{ key: "(document)", value: String(cause), expected: "valid YAML" }] }
  }
}

const fileProblem = (path: string, expected: string): Problem => ({ key: "(file)", value: path, expected })

const notRegular = (path: string) => fileProblem(path, "a regular file (not a directory, FIFO, socket or device)")

/**
 * Reads a regular file of at most `maxBytes`: a FIFO, a device or a directory is refused before
 * it is opened (opening a FIFO waits for a writer), and a file that grows past the limit is not read whole.
 */
export const readFile = (path: string, maxBytes: number): Effect.Effect<string, Problem> =>
  Effect.tryPromise({
    try: async (): Promise<string | Problem> => {
      const before = await Fs.stat(path)
      if (!before.isFile()) return notRegular(path)
      if (before.size > maxBytes) return fileProblem(path, `a file of ${sizeLimit(maxBytes)}, got ${before.size}`)
      // O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening it must not wait for a writer.
      const handle = await Fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK)
      try {
        // Fails only for a path swapped since the stat above.
        if (!(await handle.stat()).isFile()) return notRegular(path)
        const buffer = Buffer.alloc(maxBytes + 1)
        let length = 0
        // Until a read returns nothing: the end of the file, or a full buffer (a read of 0 bytes).
        for (;;) {
          const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
          if (bytesRead === 0) break
          length += bytesRead
        }
        if (length > maxBytes) return fileProblem(path, `a file of ${sizeLimit(maxBytes)}, it grew past the limit`)
        return buffer.toString("utf8", 0, length)
      } finally {
        await handle.close()
      }
    },
    catch: (cause) => fileProblem(path, `a readable file (${(cause as Error).message})`)
  }).pipe(Effect.flatMap((result) => typeof result === "string" ? Effect.succeed(result) : Effect.fail(result)))
