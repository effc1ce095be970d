/**
 * The fleet's options checked once, before any connection: the first bad one
 * fails with the `CircuitBreakerOptionsError` every package uses (circuit
 * `"fleet"`), naming the option, the value (never a URL's password) and what is
 * allowed.
 *
 * @internal
 */
import { CircuitBreaker, CircuitBreakerOptionsError, redact } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { hostname } from "node:os"

/** The options as `Fleet.Options` declares them (repeated here so the public module stays the one that exports them). */
export interface Input {
  readonly redis: string | Redacted.Redacted<string>
  readonly group: string
  readonly pod?: string | undefined
  readonly heartbeat?: CircuitBreaker.Options["recoveryTimeout"]
  readonly timeout?: CircuitBreaker.Options["recoveryTimeout"]
  readonly lease?: CircuitBreaker.Options["recoveryTimeout"]
  readonly hold?: CircuitBreaker.Options["recoveryTimeout"]
  readonly countInterval?: CircuitBreaker.Options["recoveryTimeout"]
  readonly circuits?: ReadonlyArray<string> | undefined
}

/** The checked options, durations in milliseconds. */
export interface Settings {
  readonly url: string
  readonly group: string
  readonly pod: string
  readonly heartbeat: number
  readonly timeout: number
  readonly lease: number
  readonly hold: number
  readonly countInterval: number
  /** The circuits the fleet shares; `undefined`: every breaker of the registry. */
  readonly circuits: ReadonlySet<string> | undefined
}

const circuit = "fleet"
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/
const NAME_EXPECTED = "1-64 characters of letters, digits, _ . : -"
const CIRCUIT_NAME = /^[a-z0-9_]{1,64}$/

const bad = (option: string, value: unknown, expected: string) =>
  new CircuitBreakerOptionsError({ circuit, option, value, expected })

/** A refused URL as shown in the error: `redact` hides a well-formed URL's password; a malformed one loses its credentials. */
const shownUrl = (url: unknown): unknown => {
  if (typeof url !== "string") return url
  const shown = redact(url)
  return shown.includes("@") && !shown.includes(":***@") ? shown.replace(/^.*@/, "***@") : shown
}

const duration = (option: string, input: Input["heartbeat"], fallback: number) =>
  CircuitBreaker.durationOption(circuit, option, input, fallback)

/** The settings, or the first bad option. */
export const validate = (options: Input): Effect.Effect<Settings, CircuitBreakerOptionsError> =>
  Effect.gen(function*() {
    if (typeof options.group !== "string" || !NAME.test(options.group)) {
      return yield* bad("group", options.group, NAME_EXPECTED)
    }
    const pod = options.pod ?? hostname()
    if (typeof pod !== "string" || !NAME.test(pod)) return yield* bad("pod", pod, NAME_EXPECTED)
    const url = Redacted.isRedacted(options.redis) ? Redacted.value(options.redis) : options.redis
    if (typeof url !== "string" || !/^rediss?:\/\/[^\s]+$/.test(url)) {
      return yield* bad("redis", shownUrl(url), "a redis://[:password@]host:port[/db] URL")
    }
    const circuits = options.circuits
    if (circuits !== undefined) {
      if (!Array.isArray(circuits)) return yield* bad("circuits", circuits, "an array of breaker names")
      const wrong = circuits.find((name) => typeof name !== "string" || !CIRCUIT_NAME.test(name))
      if (wrong !== undefined) return yield* bad("circuits", wrong, "breaker names: [a-z0-9_], 1-64 characters")
    }
    return {
      url,
      circuits: circuits === undefined ? undefined : new Set(circuits),
      group: options.group,
      pod,
      heartbeat: yield* duration("heartbeat", options.heartbeat, 500),
      timeout: yield* duration("timeout", options.timeout, 1000),
      lease: yield* duration("lease", options.lease, 5000),
      hold: yield* duration("hold", options.hold, 2000),
      countInterval: yield* duration("countInterval", options.countInterval, 10)
    }
  })
