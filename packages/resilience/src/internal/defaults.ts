/**
 * The one table of breaker defaults, in configuration units (seconds). The
 * breaker's options, the configuration loader and the integrations read it
 * from here, so a default is written once.
 *
 * @since 0.2.0
 * @internal
 */

/** Values of the Orchestrator Dynamic format's defaults: 5 failures, first probe after 30 s, open at most 60 s. */
export const circuitDefaults = {
  enabled: true,
  failMax: 5,
  recoveryTimeoutSeconds: 30,
  maxOpenSeconds: 60,
  halfOpenPermits: 1,
  /** Follows `halfOpenPermits` unless given. */
  successThreshold: 1,
  callTimeoutSeconds: 10,
  /** 0: off. */
  slowCallSeconds: 0,
  failureMode: "fail-fast"
} as const
