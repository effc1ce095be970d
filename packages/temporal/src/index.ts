/**
 * @neural-hive/temporal: the Orchestrator Dynamic's fail-fast Temporal client over `@temporalio/client`.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as TemporalClient from "./TemporalClient.ts"

export {
  /**
   * @since 0.1.0
   */
  TemporalError
} from "./TemporalClient.ts"
