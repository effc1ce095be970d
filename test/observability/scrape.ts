/**
 * Test helpers: read a prom-client registry the way Prometheus does, from its
 * exposition text.
 */
import type { Metrics } from "@neural-hive/observability"
import { Effect } from "effect"

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Parses Prometheus text exposition into samples (comments skipped). */
export const parse = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => {
    const brace = line.indexOf("{")
    const space = line.lastIndexOf(" ")
    const name = brace === -1 ? line.slice(0, space) : line.slice(0, brace)
    const labels: Record<string, string> = {}
    if (brace !== -1) {
      for (const match of line.slice(brace, line.lastIndexOf("}") + 1).matchAll(LABEL)) labels[match[1]!] = match[2]!
    }
    const raw = line.slice(space + 1)
    return { name, labels, value: raw === "+Inf" ? Infinity : Number(raw) }
  })

export interface Scrape {
  readonly text: string
  readonly samples: ReadonlyArray<Sample>
  /** The value of the one sample with this name and at least these labels; undefined when absent. */
  readonly get: (name: string, labels: Readonly<Record<string, string>>) => number | undefined
}

export const scrape = (registry: Metrics.Registry): Effect.Effect<Scrape> =>
  Effect.map(Effect.promise(() => registry.metrics()), (text) => {
    const samples = parse(text)
    return {
      text,
      samples,
      get: (name, labels) => {
        const found = samples.filter((sample) =>
          sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
        )
        if (found.length > 1) throw new Error(`${found.length} samples match ${name} ${JSON.stringify(labels)}`)
        return found[0]?.value
      }
    }
  })
