/**
 * The store's operations over the guarded `call` (`MongoStore.make`'s last phase): each one driver call
 * on the store's database, through the breaker and the deadline, in a span naming its collection.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Db, Document, Filter, UpdateFilter, WithId } from "mongodb"
import type { MongoStore, MongoStoreResult } from "../MongoStore.ts"

/** One guarded driver call on the store's database; `collection` names the span (and the error). */
export type Call = <A>(
  operation: string,
  collection: string | undefined,
  f: (db: Db, signal: AbortSignal) => Promise<A>
) => MongoStoreResult<A>

/** Every operation of the service but `breaker`; `badLimit` is `find`'s error for a limit that is not a positive integer. */
export const operations = (
  call: Call,
  badLimit: (collection: string, limit: number) => MongoStoreResult<never>
): Omit<MongoStore["Service"], "breaker"> => ({
  insertOne: (collection, document, insertOptions) =>
    call("insertOne", collection, (db) => db.collection(collection).insertOne(document, insertOptions)),
  findOne: (collection, filter, findOptions) =>
    Effect.map(
      call(
        "findOne",
        collection,
        (db, signal) => db.collection(collection).findOne(filter as Filter<Document>, { ...findOptions, signal })
      ),
      (found) => Option.fromNullishOr(found as WithId<any> | null)
    ),
  updateOne: (collection, filter, update, updateOptions) =>
    call(
      "updateOne",
      collection,
      (db) =>
        db.collection(collection).updateOne(
          filter as Filter<Document>,
          update as UpdateFilter<Document> | Array<Document>,
          updateOptions
        )
    ),
  updateMany: (collection, filter, update, updateOptions) =>
    call(
      "updateMany",
      collection,
      (db) =>
        db.collection(collection).updateMany(
          filter as Filter<Document>,
          update as UpdateFilter<Document> | Array<Document>,
          updateOptions
        )
    ),
  deleteOne: (collection, filter, deleteOptions) =>
    call(
      "deleteOne",
      collection,
      (db) => db.collection(collection).deleteOne(filter as Filter<Document>, deleteOptions)
    ),
  countDocuments: (collection, filter, countOptions) =>
    call(
      "countDocuments",
      collection,
      (db, signal) => db.collection(collection).countDocuments(filter as Filter<Document>, { ...countOptions, signal })
    ),
  find: (collection, filter, findOptions) =>
    Number.isInteger(findOptions.limit) && findOptions.limit > 0
      ? call(
        "find",
        collection,
        (db, signal) =>
          db.collection(collection).find(filter as Filter<Document>, { ...findOptions, signal }).toArray() as Promise<
            Array<WithId<any>>
          >
      )
      : badLimit(collection, findOptions.limit),
  use: (operation, f) => call(operation, undefined, f)
})
