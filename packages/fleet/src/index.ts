/**
 * @since 0.1.0
 */

/**
 * Breakers that act as one across a service's replicas, through Redis.
 *
 * @since 0.1.0
 */
export * as Fleet from "./Fleet.ts"
