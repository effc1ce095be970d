/**
 * @neural-hive/mongodb: the Orchestrator Dynamic's fail-fast MongoDB persistence over the `mongodb` driver.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as MongoStore from "./MongoStore.ts"

export {
  /**
   * @since 0.1.0
   */
  MongoStoreError
} from "./MongoStore.ts"
