/**
 * The consecutive-failures policy (pybreaker's, the default).
 *
 * @since 0.1.0
 */
import * as Check from "../internal/policyChecks.ts"
import type { PolicyProblem, Schema, TripCounter, TripPolicy } from "../TripPolicy.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Consecutive extends TripPolicy {
  readonly _tag: "Consecutive"
  readonly failMax: number
}

/**
 * The default `failMax` of a breaker (and of the YAML key `failMax`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultFailMax = 5

/**
 * The Orchestrator Dynamic policy (pybreaker's): open after `failMax`
 * consecutive counted failures; a success starts the count again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const consecutive = (failMax: number): Consecutive => new ConsecutivePolicy(failMax)

class ConsecutivePolicy implements Consecutive {
  readonly _tag = "Consecutive"
  readonly usesClock = false
  readonly failMax: number
  constructor(failMax: number) {
    this.failMax = failMax
  }
  // Replicas' consecutive counts add up: the fleet opens them all at failMax in total.
  get shareableCount() {
    return this.failMax
  }
  counter(): TripCounter {
    return new ConsecutiveCounter(this.failMax)
  }
  check(): PolicyProblem | undefined {
    return Check.integer("failMax", this.failMax, 1)
  }
}

// A class, not closures: one small object per breaker.
class ConsecutiveCounter implements TripCounter {
  readonly failMax: number
  count = 0
  constructor(failMax: number) {
    this.failMax = failMax
  }
  success() {
    this.count = 0
    return false
  }
  failure() {
    return ++this.count >= this.failMax
  }
  reset() {
    this.count = 0
  }
  failures() {
    return this.count
  }
}

/**
 * `policy: consecutive` (the default): `failMax`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const consecutiveSchema: Schema = {
  name: "consecutive",
  tag: "Consecutive",
  keys: { failMax: { _tag: "Integer", option: "failMax", max: 1_000_000, default: defaultFailMax } },
  make: (values) => consecutive(values.failMax as number)
}
