/**
 * Self time per function and per file of a V8 CPU profile (`node --cpu-prof`), for
 * `profile.ts top` and the plan profile of `npm run bench` (`planProfile.ts`).
 */
import { readFileSync } from "node:fs"
import { relative } from "node:path"
import { fileURLToPath } from "node:url"

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
    readonly columnNumber: number
  }
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface SelfTimes {
  /** µs of self time per `name  file:line:column` (the repository-relative path, or node's internal name). */
  readonly byFunction: ReadonlyMap<string, number>
  /** µs of self time per file. */
  readonly byFile: ReadonlyMap<string, number>
  /** µs sampled in all, idle included. */
  readonly total: number
}

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Reads a `.cpuprofile` and adds up each sample's time to its function and its file. */
export const selfTimes = (file: string): SelfTimes => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
  const byNode = new Map(profile.nodes.map((n) => [n.id, n] as const))
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byNode.get(profile.samples[i]!)
    const delta = profile.timeDeltas[i] ?? 0
    if (node === undefined) continue
    const { columnNumber, functionName, lineNumber, url } = node.callFrame
    const where = url.startsWith("file:") ? relative(root, fileURLToPath(url)) : url
    const key = `${functionName === "" ? "(anonymous)" : functionName}  ${
      where === "" ? "" : `${where}:${lineNumber + 1}:${columnNumber + 1}`
    }`
    byFunction.set(key, (byFunction.get(key) ?? 0) + delta)
    const fileKey = where === "" ? key.trim() : where
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + delta)
    total += delta
  }
  return { byFunction, byFile, total }
}
