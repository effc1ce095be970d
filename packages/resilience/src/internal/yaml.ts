/**
 * Bounded YAML reading for the configuration: a size limit, regular files
 * only, a linear duplicate-key check and problems that name the real line.
 *
 * @since 0.2.0
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
  const bytes = Buffer.byteLength(text, "utf8")
  if (bytes > maxBytes) {
    return { problems: [{ key: "(document)", value: `${bytes} bytes`, expected: sizeLimit(maxBytes) }] }
  }
  const lineCounter = new Yaml.LineCounter()
  const line = (offset: number | undefined) => offset === undefined ? "?" : String(lineCounter.linePos(offset).line)
  let parsed: Yaml.Document.Parsed
  try {
    // uniqueKeys is quadratic in the yaml library (each key compared with every earlier one): checked below instead.
    parsed = Yaml.parseDocument(text, { prettyErrors: false, uniqueKeys: false, lineCounter })
  } catch (cause) {
    return { problems: [{ key: "(document)", value: String(cause), expected: "valid YAML" }] }
  }
  if (parsed.errors.length > 0) {
    return {
      problems: parsed.errors.map((e) => ({
        key: `line ${line(e.pos[0])}`,
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
        const key = Yaml.isScalar(pair.key) ? pair.key.value : String(pair.key)
        if (seen.has(key)) {
          const node = pair.key as Yaml.Node | null
          duplicates.push({
            key: `line ${line(node?.range?.[0])}`,
            value: key,
            expected: "each key once per mapping (this key is repeated)"
          })
        }
        seen.add(key)
      }
    }
  })
  if (duplicates.length > 0) return { problems: duplicates }
  try {
    return { document: parsed.toJS({ maxAliasCount: 100, mapAsMap: true }) }
  } catch (cause) {
    return { problems: [{ key: "(document)", value: String(cause), expected: "valid YAML" }] }
  }
}

const fileProblem = (path: string, expected: string): Problem => ({ key: "(file)", value: path, expected })

/**
 * Reads a regular file of at most `maxBytes`: a FIFO, a device or a directory is refused before
 * it is opened (opening a FIFO waits for a writer), and a file that grows past the limit is not read whole.
 */
export const readFile = (path: string, maxBytes: number): Effect.Effect<string, Problem> =>
  Effect.tryPromise({
    try: async (): Promise<string | Problem> => {
      const before = await Fs.stat(path)
      if (!before.isFile()) return fileProblem(path, "a regular file (not a directory, FIFO, socket or device)")
      if (before.size > maxBytes) return fileProblem(path, `a file of ${sizeLimit(maxBytes)}, got ${before.size}`)
      // O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening it must not wait for a writer.
      const handle = await Fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK)
      try {
        const stat = await handle.stat()
        if (!stat.isFile()) return fileProblem(path, "a regular file (not a directory, FIFO, socket or device)")
        const buffer = Buffer.alloc(maxBytes + 1)
        let length = 0
        while (length < buffer.length) {
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
