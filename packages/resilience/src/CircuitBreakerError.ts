/**
 * The breaker's errors: `CircuitBreakerError` (the call did not run),
 * `CircuitBreakerTimeoutError` (the call ran past `callTimeout`) and
 * `CircuitBreakerOptionsError` (a bad option).
 *
 * `Effect.catchTag("CircuitBreakerError")` therefore means "the dependency was
 * not called" (answer 503 with `retryAfter`), while a timeout is a failure of a
 * call that did run (answer 502).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import type { State } from "./CircuitBreaker.ts"

/**
 * Why a call did not run: `Open` (open period running), `HalfOpen` (every probe
 * permit is taken), `ForcedOpen` (held open by an operator). `Tripped` only with
 * the `throwOnTrip` option: this call failed, its failure opened the circuit, and
 * the caller gets the breaker's error (with the call's error as `cause`) as
 * pybreaker raises it. `Bulkhead`: a `GuardedClient` with a bulkhead refused
 * the call before it reached the breaker (the `BulkheadRejectedError` is its
 * `cause`); the dependency was not called and nothing was counted against it.
 *
 * @since 0.1.0
 * @category errors
 */
export type RejectionReason = "Open" | "HalfOpen" | "ForcedOpen" | "Tripped" | "Bulkhead"

/**
 * The call was rejected without running. `retryAfter` says when a call may be
 * admitted again (infinite while forced open).
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitBreakerError extends Data.TaggedError("CircuitBreakerError")<{
  readonly circuit: string
  readonly state: State
  readonly reason: RejectionReason
  readonly retryAfter: Duration.Duration
  /** With `reason: "Tripped"`: the call's own error. */
  readonly cause?: unknown
}> {
  /** `retryAfter` in milliseconds (`Infinity` while forced open), for code that does not use `Duration`. */
  get retryAfterMillis(): number {
    return Duration.toMillis(this.retryAfter)
  }

  override get message(): string {
    if (this.reason === "Bulkhead") {
      return `circuit "${this.circuit}" refused the call: its bulkhead is full; retry after ${
        Duration.format(this.retryAfter)
      }`
    }
    return this.reason === "Tripped"
      ? `circuit "${this.circuit}" opened on this call's failure; retry after ${Duration.format(this.retryAfter)}`
      : `circuit "${this.circuit}" is ${this.state} (${this.reason}); retry after ${Duration.format(this.retryAfter)}`
  }
}

// Rejections are built without a stack trace (see makeRejection); give them a one-line one.
Object.defineProperty(CircuitBreakerError.prototype, "stack", {
  get(this: CircuitBreakerError) {
    return `${this.name}: ${this.message}`
  },
  configurable: true
})

/**
 * The call ran past the breaker's `callTimeout` and was interrupted. It counts
 * as a failure of the dependency, whatever the classifier says.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitBreakerTimeoutError extends Data.TaggedError("CircuitBreakerTimeoutError")<{
  readonly circuit: string
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `call through circuit "${this.circuit}" timed out after ${Duration.format(this.timeout)}`
  }
}

/**
 * A breaker or integration option out of range. Names the circuit, the option,
 * the value and what is allowed.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitBreakerOptionsError extends Data.TaggedError("CircuitBreakerOptionsError")<{
  readonly circuit: string
  readonly option: string
  readonly value: unknown
  readonly expected: string
}> {
  override get message(): string {
    return `circuit breaker "${this.circuit}": option ${this.option} is ${
      describeValue(this.value)
    }, expected ${this.expected}`
  }
}

// Strings come out quoted by JSON.stringify; undefined and symbols, which it skips, by String.
const describeValue = (value: unknown): string => {
  if (typeof value === "function") return "a function"
  if (typeof value === "number" && !Number.isFinite(value)) return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * A rejection, built without running the Error constructor: a rejection is an
 * expected, frequent answer and the constructor costs ~0.5 µs even with no
 * stack trace. It is still an `instanceof CircuitBreakerError` and `Error`, with
 * the same own fields.
 *
 * @internal
 */
export const makeRejection = (
  circuit: string,
  state: State,
  reason: RejectionReason,
  retryAfterMillis: number
): CircuitBreakerError => {
  const error = Object.create(CircuitBreakerError.prototype)
  error._tag = "CircuitBreakerError"
  error.circuit = circuit
  error.state = state
  error.reason = reason
  error.retryAfter = Duration.millis(retryAfterMillis) // Infinity (forced open) gives Duration.infinity
  return error
}
