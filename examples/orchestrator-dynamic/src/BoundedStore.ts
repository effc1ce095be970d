/**
 * A map with a capacity, for the embedded demo's in-memory dependencies: at
 * most `capacity` entries and `maxBytes` of weighed values, the least recently
 * used evicted first. Every operation is O(1) (amortised for eviction), so a
 * long-running demo neither grows without bound nor slows down as it fills.
 */

export interface Limits {
  /** Entries kept at most. */
  readonly capacity: number
  /** Sum of the entries' weights (about their bytes) kept at most. */
  readonly maxBytes: number
}

/** 10,000 entries or 16 MiB per store: plenty for a demo, a few tens of MiB for the four dependencies. */
export const defaultLimits: Limits = { capacity: 10_000, maxBytes: 16 * 1024 * 1024 }

/** About the bytes a value holds in memory (UTF-16 strings: 2 per character). */
export const weigh = (value: unknown): number => {
  if (typeof value === "string") return 2 * value.length + 16
  if (value === undefined || value === null || typeof value !== "object") return 16
  try {
    return 2 * (JSON.stringify(value)?.length ?? 0) + 64
  } catch {
    return 1024
  }
}

export class BoundedStore<K, V> {
  private readonly entries = new Map<K, { value: V; readonly bytes: number }>()
  private total = 0
  readonly limits: Limits
  private readonly weight: (value: V) => number
  private readonly onRemove: ((key: K, value: V) => void) | undefined
  /** Entries evicted so far (not removed by `delete`). */
  evicted = 0

  /** `onRemove` runs for every entry that leaves: deleted, replaced by `set`, or evicted (an index follows it). */
  constructor(
    limits: Limits = defaultLimits,
    weight: (value: V) => number = weigh,
    onRemove?: (key: K, value: V) => void
  ) {
    this.limits = limits
    this.weight = weight
    this.onRemove = onRemove
  }

  get size(): number {
    return this.entries.size
  }

  get bytes(): number {
    return this.total
  }

  has(key: K): boolean {
    return this.entries.has(key)
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    // Re-inserting moves the key to the end of the Map's order: the LRU order costs nothing more.
    this.entries.delete(key)
    this.entries.set(key, entry)
    return entry.value
  }

  /** The value, its place in the order unchanged. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value
  }

  set(key: K, value: V): this {
    this.delete(key)
    const bytes = this.weight(value)
    this.entries.set(key, { value, bytes })
    this.total += bytes
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.limits.capacity && this.total <= this.limits.maxBytes) break
      // Never evict the entry just written: one value over maxBytes is still kept, alone.
      if (oldest === key) break
      this.delete(oldest)
      this.evicted++
    }
    return this
  }

  delete(key: K): boolean {
    const entry = this.entries.get(key)
    if (entry === undefined) return false
    this.entries.delete(key)
    this.total -= entry.bytes
    this.onRemove?.(key, entry.value)
    return true
  }

  /** Least recently used first; does not change the order. */
  *values(): IterableIterator<V> {
    for (const entry of this.entries.values()) yield entry.value
  }

  keys(): IterableIterator<K> {
    return this.entries.keys()
  }
}
