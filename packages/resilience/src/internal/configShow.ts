/**
 * How a configuration problem shows the value it got: cut short, YAML's
 * spelling for the numbers JSON cannot show, a mapping's first entries only.
 *
 * @internal
 */

export const clip = (text: string, max = 80) => text.length > max ? `${text.slice(0, max)}...` : text

/** YAML's own spelling for the numbers JSON cannot show. */
const showNumber = (n: number) =>
  Number.isNaN(n) ? ".nan" : n === Infinity ? ".inf" : n === -Infinity ? "-.inf" : `${n}`

const plain = (value: unknown, depth = 0): unknown => {
  if (depth > 4) return "..."
  if (value instanceof Map) {
    // The first 20 entries only: a problem's value may be a mapping of the whole file, never copied whole.
    const entries: Array<[string, unknown]> = []
    for (const [k, v] of value) {
      if (entries.length === 20) break
      entries.push([String(k), plain(v, depth + 1)])
    }
    return Object.fromEntries(entries)
  }
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => plain(v, depth + 1))
  if (typeof value === "number" && !Number.isFinite(value)) return showNumber(value)
  return value
}

export const show = (value: unknown): string => {
  if (value === undefined) return "nothing"
  if (typeof value === "number") return showNumber(value)
  if (typeof value === "string") return JSON.stringify(clip(value))
  try {
    const json = JSON.stringify(plain(value))
    return json === undefined ? String(value) : clip(json)
  } catch {
    return String(value)
  }
}
