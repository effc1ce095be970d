/**
 * @neural-hive/redis: the Orchestrator Dynamic's fail-open Redis cache over ioredis.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as RedisCache from "./RedisCache.ts"

export {
  /**
   * @since 0.1.0
   */
  RedisError
} from "./RedisCache.ts"
