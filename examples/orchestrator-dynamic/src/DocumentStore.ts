/**
 * The embedded MongoDB's documents: bounded (`limits`, least recently used
 * evicted first), indexed by collection and `_id`, and by the equality of the
 * fields the service queries on (`indexed`: the outbox's state and attempt),
 * as the real collection's indexes would serve them. A query on `_id` (one or
 * `$in`) or on an indexed field reads only the documents it names; any other
 * query scans its collection. So the outbox relay's rounds cost what they
 * touch, not the size of the store.
 */
import { MongoStoreError } from "@neural-hive/mongodb"
import { Effect, Option } from "effect"
import { BoundedStore, type Limits, weigh } from "./BoundedStore.ts"

type Doc = Record<string, unknown>

/** The fields with an equality index: those the outbox relay filters on. */
export const indexed: ReadonlyArray<string> = ["outbox.state", "outbox.attempt"]

/** The value at a dotted path (`outbox.state`), as MongoDB reads it. */
const at = (doc: Doc, path: string): unknown =>
  path.split(".").reduce<unknown>((value, key) => (value as Doc | undefined)?.[key], doc)

/** Equality per field, `{ $in: [...] }` or `{ $exists: boolean }`: what the example's queries use. */
export const matches = (doc: Doc, filter: Doc): boolean =>
  Object.entries(filter).every(([key, value]) => {
    const exists = (value as { readonly $exists?: unknown } | null)?.$exists
    if (typeof exists === "boolean") return (at(doc, key) !== undefined) === exists
    const actual = JSON.stringify(at(doc, key))
    const within = (value as { readonly $in?: ReadonlyArray<unknown> } | null)?.$in
    return Array.isArray(within)
      ? within.some((candidate) => JSON.stringify(candidate) === actual)
      : actual === JSON.stringify(value)
  })

/** `$set` with dotted paths, on a copy. */
const setFields = (doc: Doc, set: Doc): Doc => {
  const out: Doc = structuredClone(doc)
  for (const [path, value] of Object.entries(set)) {
    if (path === "_id") continue
    const keys = path.split(".")
    let target = out
    for (const key of keys.slice(0, -1)) {
      const next = target[key]
      target = (target[key] = typeof next === "object" && next !== null ? next : {}) as Doc
    }
    target[keys[keys.length - 1]!] = value
  }
  return out
}

/** The index key of a document: its collection and its `_id` (the unique field). */
const keyOf = (collection: string, id: unknown) => `${collection}\u0000${JSON.stringify(id)}`

/** A scalar an equality filter compares with (not an operator object). */
const isScalar = (value: unknown) => value === null || typeof value !== "object"

/** An update's answer: `n` documents matched and modified. */
const updated = (n: number) =>
  ({ acknowledged: true, matchedCount: n, modifiedCount: n, upsertedCount: 0, upsertedId: null }) as never

interface Entry {
  readonly collection: string
  readonly doc: Doc
}

/** An index's slot: a collection, an indexed path and a value. */
const slot = (collection: string, path: string, value: unknown) =>
  `${collection}\u0000${path}\u0000${JSON.stringify(value)}`

/** Runs `f` on each index slot the entry is in. */
const each = (entry: Entry, f: (slot: string) => void) => {
  for (const path of indexed) {
    const value = at(entry.doc, path)
    if (value !== undefined && isScalar(value)) f(slot(entry.collection, path, value))
  }
}

/** The equality indexes: for each indexed path, the keys of the documents per collection and value. */
const makeIndexes = () => {
  const byValue = new Map<string, Set<string>>()
  return {
    add: (key: string, entry: Entry) =>
      each(entry, (s) => {
        const keys = byValue.get(s)
        if (keys === undefined) byValue.set(s, new Set([key]))
        else keys.add(key)
      }),
    remove: (key: string, entry: Entry) =>
      each(entry, (s) => {
        const keys = byValue.get(s)
        if (keys?.delete(key) === true && keys.size === 0) byValue.delete(s)
      }),
    /** The keys a filter's indexed equality names, or `undefined` when it has none. */
    lookup: (collection: string, filter: Doc): Iterable<string> | undefined => {
      for (const path of indexed) {
        const value = filter[path]
        if (value !== undefined && isScalar(value)) return byValue.get(slot(collection, path, value)) ?? []
      }
      return undefined
    }
  }
}

/** The documents of the embedded MongoDB within `limits`, with the MongoStore operations the example uses. */
export const make = (limits: Limits) => {
  const indexes = makeIndexes()
  const documents = new BoundedStore<string, Entry>(limits, (entry) => weigh(entry.doc), indexes.remove)
  let ids = 0
  const put = (key: string, entry: Entry) => {
    documents.set(key, entry)
    indexes.add(key, entry)
  }
  /** The keys a filter can match: named by `_id` or an index, or every key (a scan). */
  const candidates = (collection: string, filter: Doc): Iterable<string> => {
    const id = filter._id
    if (id !== undefined && isScalar(id)) return [keyOf(collection, id)]
    const within = (id as { readonly $in?: ReadonlyArray<unknown> } | undefined)?.$in
    if (Array.isArray(within)) return within.map((one) => keyOf(collection, one))
    return indexes.lookup(collection, filter) ?? documents.keys()
  }
  /** The matching documents, at most `limit` (the scan stops there). */
  const all = (collection: string, filter: Doc, limit = Number.POSITIVE_INFINITY): Array<readonly [string, Doc]> => {
    const hits: Array<readonly [string, Doc]> = []
    // A copy (each key once): the caller may re-store what it found, which changes the index and the order.
    for (const key of new Set(candidates(collection, filter))) {
      if (hits.length >= limit) break
      const entry = documents.peek(key)
      if (entry !== undefined && entry.collection === collection && matches(entry.doc, filter)) {
        hits.push([key, entry.doc])
      }
    }
    return hits
  }
  const first = (collection: string, filter: Doc) => all(collection, filter, 1)[0]
  return {
    insertOne: (collection: string, document: Doc) =>
      Effect.suspend(() => {
        const doc = { _id: `embedded-${++ids}`, ...document }
        const key = keyOf(collection, doc._id)
        if (documents.has(key)) {
          return Effect.fail(
            new MongoStoreError({
              reason: "DuplicateKey",
              operation: "insertOne",
              collection,
              code: 11000,
              message: `E11000 duplicate key error collection: ${collection}`
            })
          )
        }
        put(key, { collection, doc })
        return Effect.succeed({ acknowledged: true, insertedId: doc._id } as never)
      }),
    findOne: (collection: string, filter: Doc) =>
      Effect.sync(() => {
        const found = first(collection, filter)
        // A read by `_id` makes the document the most recently used, as before the indexes.
        if (found !== undefined) documents.get(found[0])
        return Option.fromNullishOr(found?.[1] as never)
      }),
    updateOne: (collection: string, filter: Doc, update: unknown) =>
      Effect.sync(() => {
        const found = first(collection, filter)
        const set = (update as { readonly $set?: Doc }).$set
        // Re-stored so its weight is counted again; an _id in $set is ignored, as the index key.
        if (found !== undefined && set !== undefined) put(found[0], { collection, doc: setFields(found[1], set) })
        return updated(found === undefined ? 0 : 1)
      }),
    updateMany: (collection: string, filter: Doc, update: unknown) =>
      Effect.sync(() => {
        const set = (update as { readonly $set?: Doc }).$set ?? {}
        const hits = all(collection, filter)
        for (const [key, doc] of hits) put(key, { collection, doc: setFields(doc, set) })
        return updated(hits.length)
      }),
    countDocuments: (collection: string, filter: Doc) => Effect.sync(() => all(collection, filter).length),
    deleteOne: (collection: string, filter: Doc) =>
      Effect.sync(() => {
        const found = first(collection, filter)
        if (found !== undefined) documents.delete(found[0])
        return { acknowledged: true, deletedCount: found === undefined ? 0 : 1 }
      }),
    find: (collection: string, filter: Doc, limit: number) =>
      Effect.sync(() => all(collection, filter, limit).map(([, doc]) => doc) as never)
  }
}
