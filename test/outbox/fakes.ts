/**
 * In-memory MongoDB stand-in for the outbox's unit tests (DeadLetter.test.ts, ExactlyOnce.test.ts).
 */
import { MongoStore } from "@neural-hive/mongodb"
import { Effect } from "effect"

export type Doc = Record<string, any>

const at = (doc: Doc, path: string): unknown => path.split(".").reduce<any>((value, key) => value?.[key], doc)

const matches = (doc: Doc, filter: Doc): boolean =>
  Object.entries(filter).every(([key, value]) =>
    Array.isArray(value?.$in) ? value.$in.includes(at(doc, key)) : at(doc, key) === value
  )

const setFields = (doc: Doc, set: Doc) => {
  for (const [path, value] of Object.entries(set)) {
    const keys = path.split(".")
    let target = doc
    for (const key of keys.slice(0, -1)) target = target[key] ??= {}
    target[keys[keys.length - 1]!] = structuredClone(value)
  }
}

/** A MongoDB stand-in: equality and `$in` filters, `$set` with dotted paths, sort on one field. */
export const fakeStore = (docs: Array<Doc>): MongoStore.MongoStore["Service"] => {
  const update = (filter: Doc, change: Doc, many: boolean) =>
    Effect.sync(() => {
      const hits = docs.filter((doc) => matches(doc, filter)).slice(0, many ? undefined : 1)
      for (const doc of hits) setFields(doc, change.$set)
      return { acknowledged: true, matchedCount: hits.length, modifiedCount: hits.length } as any
    })
  return MongoStore.MongoStore.of(
    {
      find: (_collection, filter, options) =>
        Effect.sync(() => {
          const [[field, direction]] = Object.entries(options.sort as Doc) as any
          return docs.filter((doc) => matches(doc, filter as Doc))
            .toSorted((a, b) => direction * ((at(a, field) as number) - (at(b, field) as number)))
            .slice(0, options.limit)
            .map((doc) => structuredClone(doc)) as any
        }),
      findOne: (_collection, filter) =>
        Effect.sync(() => {
          const doc = docs.find((d) => matches(d, filter as Doc))
          return doc === undefined ? { _tag: "None" } : { _tag: "Some", value: structuredClone(doc) }
        }) as any,
      countDocuments: (_collection, filter) =>
        Effect.sync(() => docs.filter((doc) => matches(doc, filter as Doc)).length),
      updateMany: (_collection, filter, change) => update(filter as Doc, change as Doc, true),
      updateOne: (_collection, filter, change) => update(filter as Doc, change as Doc, false)
    } as Partial<MongoStore.MongoStore["Service"]> as MongoStore.MongoStore["Service"]
  )
}
