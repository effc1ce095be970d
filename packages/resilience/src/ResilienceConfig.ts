/**
 * Breaker configuration by circuit name: any number of circuits, any names,
 * each with breaker options in configuration units and one table of defaults
 * (`defaults`). Read from the `circuitBreaker` key of a YAML file (a Helm
 * values file loads as is: every other key is ignored), overridable by
 * environment variables, validated in full before anything starts.
 *
 * ```yaml
 * circuitBreaker:
 *   payments_api: { failMax: 3, recoveryTimeoutSeconds: 10, maxOpenSeconds: 120 }
 *   search_cache: { failureMode: fail-open, callTimeoutSeconds: 0.5 }
 * ```
 *
 * A variable `CIRCUIT_BREAKER_<CIRCUIT>_<KEY>` overrides a key of a circuit
 * the file or the format declares, e.g. `CIRCUIT_BREAKER_PAYMENTS_API_FAIL_MAX=10`.
 * An unknown key is an error in the file and in the environment alike (a
 * misspelled variable is never silently ignored). A bad value gives one problem
 * per key, naming the key path (or variable), the value and what is allowed.
 *
 * An application's own format (section, circuits it knows, names of its keys)
 * is a `Format`; the Orchestrator Dynamic example maps its
 * `circuitBreaker.kafka.timeoutSeconds` format onto this one that way.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import type * as Bulkhead from "./Bulkhead.ts"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import type { CircuitBreakerOptionsError } from "./CircuitBreakerError.ts"
import type * as Hedge from "./Hedge.ts"
import { circuitSettings, type KeyNames, keyNames, offeredByDefault } from "./internal/configCircuit.ts"
import { entriesOf } from "./internal/configKeys.ts"
import { isSection, makePolicies } from "./internal/configPolicies.ts"
import { clip, show } from "./internal/configShow.ts"
import { defaults as breakerDefaults, NAME } from "./internal/options.ts"
import * as Yaml from "./internal/yaml.ts"
import type * as RetryBudget from "./RetryBudget.ts"
import * as TripPolicy from "./TripPolicy.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * One circuit's breaker settings, as the breaker takes them: the loader reads
 * the YAML's seconds into `Duration`s and the policy's keys into the policy,
 * once.
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitSettings {
  readonly enabled: boolean
  /** The trip policy: `policy` and its keys (`failMax` for the default `consecutive`), by the policy's schema. */
  readonly policy: TripPolicy.TripPolicy
  /** The first open period (the breaker's `recoveryTimeout`; YAML `recoveryTimeoutSeconds`). */
  readonly recoveryTimeout: Duration.Duration
  /** The cap of the doubling open period (the breaker's `maxOpenDuration`; YAML `maxOpenSeconds`). */
  readonly maxOpenDuration: Duration.Duration
  /** Probes admitted in HALF_OPEN. */
  readonly halfOpenPermits: number
  /** Successful probes that close the breaker (at most `halfOpenPermits`; default `halfOpenPermits`). */
  readonly successThreshold: number
  /** Per-call timeout; a call running longer counts as a failure (YAML `callTimeoutSeconds`). */
  readonly callTimeout: Duration.Duration
  /** A success slower than this counts as a failure; zero turns it off (YAML `slowCallSeconds`). */
  readonly slowCallThreshold: Duration.Duration
  /** How callers see an open circuit: a `CircuitBreakerError` or a fallback (informs `/health`). */
  readonly failureMode: CircuitBreaker.FailureMode
  /** A fixed concurrency limit (YAML `bulkhead`), when configured and enabled. */
  readonly bulkhead?: BulkheadSettings | undefined
  /** An adaptive concurrency limit (YAML `adaptiveLimit`), when configured and enabled; never beside `bulkhead`. */
  readonly adaptiveLimit?: AdaptiveLimitSettings | undefined
  /** Retries within a budget (YAML `retry`), when configured and enabled. */
  readonly retry?: RetrySettings | undefined
  /** Hedged reads (YAML `hedge`), when configured and enabled. */
  readonly hedge?: HedgeSettings | undefined
}

/**
 * A circuit's fixed bulkhead (`Bulkhead.make`), from the YAML's
 * `bulkhead: { maxConcurrent, maxQueued, queueTimeoutSeconds }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BulkheadSettings {
  /** Calls in flight at most (required). */
  readonly maxConcurrent: number
  /** Calls waiting for a slot at most (default 0). */
  readonly maxQueued: number
  /** How long a call may wait for a slot (YAML `queueTimeoutSeconds`, default 1). */
  readonly queueTimeout: Duration.Duration
}

/**
 * A circuit's adaptive limit (`Bulkhead.adaptive`), from the YAML's
 * `adaptiveLimit: { initialLimit, minLimit, maxLimit, maxQueued, queueTimeoutSeconds }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdaptiveLimitSettings {
  /** The limit to start from (default 20, brought within `minLimit`..`maxLimit`). */
  readonly initialLimit: number
  /** The limit never goes below this (default 1). */
  readonly minLimit: number
  /** The limit never goes above this (default 200). */
  readonly maxLimit: number
  /** Calls waiting for a slot at most (default 0). */
  readonly maxQueued: number
  /** How long a call may wait for a slot (YAML `queueTimeoutSeconds`, default 1). */
  readonly queueTimeout: Duration.Duration
}

/**
 * A circuit's retries and their budget (`RetryBudget.make`, `RetryBudget.withRetry`), from the YAML's
 * `retry: { maxRetries, budgetRatio, budgetMinPerSecond, budgetWindowSeconds, baseDelaySeconds }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetrySettings {
  /** Retries per call at most (default 2). */
  readonly maxRetries: number
  /** Retries allowed per call over the window, from 0 to 1 (default 0.1). */
  readonly budgetRatio: number
  /** Retries allowed per second whatever the calls (default 1). */
  readonly budgetMinPerSecond: number
  /** How far back the budget counts (YAML `budgetWindowSeconds`, default 10). */
  readonly budgetWindow: Duration.Duration
  /** The first delay of the jittered exponential schedule (YAML `baseDelaySeconds`, default 0.1). */
  readonly baseDelay: Duration.Duration
}

/**
 * A circuit's hedged reads (`Hedge.make`), from the YAML's
 * `hedge: { delaySeconds | percentile, minDelaySeconds, samples }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface HedgeSettings {
  /** A fixed delay (YAML `delaySeconds`); without it the delay is the learnt `percentile`. */
  readonly delay?: Duration.Duration | undefined
  /** The latency percentile after which a hedge is sent, from 0.5 to 0.999 (default 0.95). */
  readonly percentile: number
  /** The delay never goes below this (YAML `minDelaySeconds`, default 0.005). */
  readonly minDelay: Duration.Duration
  /** Recent latencies the percentile is taken from, at least 20 (default 200). */
  readonly samples: number
}

/**
 * A circuit's policy section in the YAML: a mapping of its own keys, e.g.
 * `retry: { maxRetries: 2 }`, overridden by `CIRCUIT_BREAKER_<CIRCUIT>_RETRY_MAX_RETRIES`.
 *
 * @since 0.1.0
 * @category models
 */
export type PolicySection = "bulkhead" | "adaptiveLimit" | "retry" | "hedge"

/**
 * A key of the YAML every circuit has, whatever its policy; a policy adds
 * its own (its `TripPolicy.Schema`'s keys, e.g. `failMax`).
 *
 * @since 0.1.0
 * @category models
 */
export type Key =
  | "enabled"
  | "policy"
  | "recoveryTimeoutSeconds"
  | "maxOpenSeconds"
  | "halfOpenPermits"
  | "successThreshold"
  | "callTimeoutSeconds"
  | "slowCallSeconds"
  | "failureMode"

/**
 * The settings of every circuit, by the name it has in the file (or format).
 *
 * @since 0.1.0
 * @category models
 */
export type Settings = Readonly<Record<string, CircuitSettings>>

/**
 * The defaults of every circuit, read from the breaker's own table (so `failMax`
 * 5, 30 s, 60 s are written once); a configured circuit also gets a 10 s call
 * timeout, which a breaker made in code does not have.
 *
 * @since 0.1.0
 * @category models
 */
export const defaults: CircuitSettings = {
  enabled: true,
  policy: TripPolicy.consecutive(breakerDefaults.failMax),
  recoveryTimeout: Duration.millis(breakerDefaults.recoveryTimeoutMillis),
  maxOpenDuration: Duration.millis(breakerDefaults.maxOpenDurationMillis),
  halfOpenPermits: breakerDefaults.permits,
  // Follows halfOpenPermits unless given.
  successThreshold: breakerDefaults.permits,
  callTimeout: Duration.seconds(10),
  // Off.
  slowCallThreshold: Duration.zero,
  failureMode: "fail-fast"
}

/**
 * How an application's YAML is laid out, mapped onto circuits by name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Format {
  /** The key holding the circuits (default `circuitBreaker`), a path of keys, or `[]` for the document's root. */
  readonly section?: string | ReadonlyArray<string> | undefined
  /** Circuits known beforehand, each with its own defaults over `defaults`; they exist even when the file omits them. */
  readonly circuits?: Readonly<Record<string, Partial<CircuitSettings>>> | undefined
  /** Only the circuits of `circuits` are allowed (any other is an unknown-key problem). */
  readonly closed?: boolean | undefined
  /**
   * A key's name in this format (e.g. `{ maxOpenSeconds: "timeoutSeconds" }`), or `null` when it is not
   * offered; a policy's keys (`failMax`, `threshold`, ...) are renamed the same way.
   */
  readonly names?: Partial<Record<Key, string | null>> & Readonly<Record<string, string | null | undefined>> | undefined
  /** Prefix of the override variables (default `CIRCUIT_BREAKER_`); `null` turns overrides off. */
  readonly envPrefix?: string | null | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ParseOptions extends Format {
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Names the input in errors (a path, `YAML`). */
  readonly source?: string | undefined
  /** The largest input accepted (default 1 MiB). */
  readonly maxBytes?: number | undefined
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * One bad value: where it came from (`circuitBreaker.kafka.failMax` or
 * `CIRCUIT_BREAKER_KAFKA_FAIL_MAX`), what it was, and what is allowed.
 *
 * @since 0.1.0
 * @category errors
 */
export interface Problem {
  readonly key: string
  readonly value: unknown
  readonly expected: string
}

/**
 * Every problem found in the file and the environment, at once.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResilienceConfigError extends Data.TaggedError("ResilienceConfigError")<{
  readonly source: string
  readonly problems: ReadonlyArray<Problem>
}> {
  /**
   * The first `maxShownProblems` problems, one a line, each value cut short, and how many more there
   * are: a file full of mistakes gives a message of a few kilobytes, not one line per mistake.
   */
  override get message(): string {
    const shown = this.problems.slice(0, maxShownProblems)
    const more = this.problems.length - shown.length
    return `invalid circuit breaker configuration (${clip(this.source)}):\n` +
      shown.map((p) => `  - ${clip(p.key)}: got ${show(p.value)}, expected ${clip(p.expected, 200)}`).join("\n") +
      (more > 0 ? `\n  ... and ${more} more problem${more === 1 ? "" : "s"}` : "")
  }
}

/**
 * The problems a `ResilienceConfigError` message shows; the rest are counted.
 *
 * @since 0.1.0
 * @category errors
 */
export const maxShownProblems = 20

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

const isAbsent = (u: unknown) => u === undefined || u === null

/** `payments-api` -> `PAYMENTS_API`, `failMax` -> `FAIL_MAX`. */
const envPart = (name: string) =>
  name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^A-Za-z0-9]+/g, "_").toUpperCase()

const squash = (name: string) => name.replace(/_/g, "")

/**
 * Validates a parsed document (the YAML's root) and the environment into
 * settings by circuit, or every problem found.
 *
 * @since 0.1.0
 * @category parsing
 */
export const decode = (
  document: unknown,
  env: Readonly<Record<string, string | undefined>> = {},
  options: Format = {}
): Settings | ReadonlyArray<Problem> => {
  const problems: Array<Problem> = []
  const sectionPath = options.section === undefined
    ? ["circuitBreaker"]
    : typeof options.section === "string"
    ? [options.section]
    : options.section
  const known = options.circuits ?? {}
  const keys = keyNames(options.names)
  const prefix = sectionPath.length === 0 ? "" : `${sectionPath.join(".")}.`
  const fromFile = circuitsInFile(document, sectionPath, options, problems)
  const names = [...new Set([...Object.keys(known), ...fromFile.keys()])]
  const envPrefix = options.envPrefix === undefined ? "CIRCUIT_BREAKER_" : options.envPrefix
  const overrides = envPrefix === null ? new Map() : envOverrides(env, envPrefix, names, keys, problems)
  const settings = names.map((circuit) =>
    [
      circuit,
      circuitOf(
        `${prefix}${circuit}`,
        Object.hasOwn(known, circuit) ? known[circuit]! : undefined,
        fromFile.get(circuit),
        overrides.get(circuit) ?? [],
        keys,
        problems
      )
    ] as const
  )
  // fromEntries defines own properties, so a circuit named like a prototype member stays data.
  return problems.length > 0 ? problems : Object.fromEntries(settings)
}

/** The circuits of the file's section, by name: walks down to the section and checks each circuit's name. */
const circuitsInFile = (
  document: unknown,
  sectionPath: ReadonlyArray<string>,
  options: Format,
  problems: Array<Problem>
): ReadonlyMap<string, unknown> => {
  const known = options.circuits ?? {}
  const knownNames = Object.keys(known)
  const closed = options.closed === true
  // Walk down to the section; every other key of a larger file (a Helm values file) is not ours.
  let section: unknown = document
  for (let i = 0; i < sectionPath.length && !isAbsent(section); i++) {
    const entries = entriesOf(section)
    const where = i === 0 ? "(root)" : sectionPath.slice(0, i).join(".")
    if (entries === undefined) {
      problems.push({ key: where, value: section, expected: `a mapping with a ${sectionPath[i]} key` })
      section = undefined
      break
    }
    section = entries.find(([k]) => k === sectionPath[i])?.[1]
  }
  const prefix = sectionPath.length === 0 ? "" : `${sectionPath.join(".")}.`
  const circuitsOf = isAbsent(section) ? [] : entriesOf(section)
  const fromFile = new Map<string, unknown>()
  if (circuitsOf === undefined) {
    problems.push({
      key: sectionPath.length === 0 ? "(root)" : sectionPath.join("."),
      value: section,
      expected: closed ? `a mapping of ${knownNames.join(", ")}` : "a mapping of circuit names to their settings"
    })
    return fromFile
  }
  for (const [name, value] of circuitsOf) {
    if (closed && !Object.hasOwn(known, name)) {
      problems.push({ key: `${prefix}${name}`, value, expected: `one of ${knownNames.join(", ")}` })
    } else if (!closed && (!NAME.test(name) || name in Object.prototype)) {
      problems.push({
        key: `${prefix}${name}`,
        value: name,
        expected: "a circuit name of 1-64 letters, digits, _ . : - starting with a letter or _ (and not an " +
          "Object.prototype member such as constructor)"
      })
    } else {
      fromFile.set(name, value)
    }
  }
  return fromFile
}

/** An override read from the environment: the generic key, the variable's name, its text. */
type Override = readonly [string, string, string]

/** The override variables by circuit; any other variable with the prefix is a problem (a misspelling, named). */
const envOverrides = (
  env: Readonly<Record<string, string | undefined>>,
  envPrefix: string,
  names: ReadonlyArray<string>,
  keys: KeyNames,
  problems: Array<Problem>
): ReadonlyMap<string, ReadonlyArray<Override>> => {
  // Every override variable this configuration has, so any other one with the prefix is a misspelling.
  const variables = new Map<string, { readonly circuit: string; readonly key: string }>()
  for (const circuit of names) {
    for (const [key, name] of keys.inputName) {
      variables.set(`${envPrefix}${envPart(circuit)}_${envPart(name)}`, { circuit, key })
    }
  }
  const overrides = new Map<string, Array<Override>>()
  for (const variable of Object.keys(env).toSorted()) {
    const text = env[variable]
    if (!variable.startsWith(envPrefix) || text === undefined) continue
    const target = variables.get(variable)
    if (target !== undefined) {
      const list = overrides.get(target.circuit) ?? []
      list.push([target.key, variable, text])
      overrides.set(target.circuit, list)
      continue
    }
    const close = [...variables.keys()].find((v) => squash(v) === squash(variable))
    problems.push({
      key: variable,
      value: text,
      expected: close !== undefined
        ? `a known variable: did you mean ${close}?`
        : `a known variable ${envPrefix}<CIRCUIT>_<KEY>, with a circuit of ${
          names.map(envPart).join(", ") || "(none declared)"
        } and a key of ${keysOf(keys, false).join(", ")}${
          keysOf(keys, true).length === 0
            ? ""
            : `, or <SECTION>_<KEY> with a section of ${keysOf(keys, true).join(", ")}`
        }`
    })
  }
  return overrides
}

/** The variable parts of the plain keys, or of the policy sections. */
const keysOf = (keys: KeyNames, sections: boolean) =>
  [...keys.inputName].filter(([key]) => !key.includes(".") && isSection(key) === sections).map(([, name]) =>
    envPart(name)
  )

/** One circuit's settings (see `internal/configCircuit.ts`), once its value is a mapping. */
const circuitOf = (
  path: string,
  own: Partial<CircuitSettings> | undefined,
  raw: unknown,
  overrides: ReadonlyArray<Override>,
  keys: KeyNames,
  problems: Array<Problem>
): CircuitSettings => {
  const entries = isAbsent(raw) ? [] : entriesOf(raw)
  if (entries === undefined) {
    problems.push({ key: path, value: raw, expected: `a mapping of ${offeredByDefault(own, keys)}` })
  }
  return circuitSettings(path, defaults, own, entries ?? [], overrides, keys, problems)
}

/**
 * Parses YAML text (the `circuitBreaker` key of it, by default), applies
 * environment overrides and validates the result.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (text: string, options: ParseOptions = {}): Effect.Effect<Settings, ResilienceConfigError> =>
  Effect.suspend(() => {
    const source = options.source ?? "YAML"
    const parsed = Yaml.parse(text, options.maxBytes ?? Yaml.defaultMaxBytes)
    const result = "problems" in parsed ? parsed.problems : decode(parsed.document, options.env, options)
    return Array.isArray(result)
      ? Effect.fail(new ResilienceConfigError({ source, problems: result }))
      : Effect.succeed(result as Settings)
  })

/**
 * Reads and validates a YAML file (see `parse`). Only a regular file of at
 * most `maxBytes` (default 1 MiB) is read: a missing file, a directory, a FIFO
 * or a larger file is a problem naming the path.
 *
 * **Example**
 *
 * ```ts
 * import { CircuitBreaker, ResilienceConfig } from "@neural-hive/resilience"
 * import { Effect } from "effect"
 *
 * // values.yaml: a Helm values file with `circuitBreaker: { payments_api: { failMax: 3 } }` among its keys
 * const program = Effect.gen(function*() {
 *   const settings = yield* ResilienceConfig.load("values.yaml", { env: process.env })
 *   const payments = settings.payments_api ?? ResilienceConfig.defaults
 *   return yield* CircuitBreaker.make(ResilienceConfig.toBreakerOptions("payments_api", payments))
 * })
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const load = (path: string, options: ParseOptions = {}): Effect.Effect<Settings, ResilienceConfigError> =>
  Yaml.readFile(path, options.maxBytes ?? Yaml.defaultMaxBytes).pipe(
    Effect.mapError((problem) => new ResilienceConfigError({ source: path, problems: [problem] })),
    Effect.flatMap((text) => parse(text, { ...options, source: options.source ?? path }))
  )

/**
 * The breaker options of one circuit.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toBreakerOptions = (name: string, settings: CircuitSettings): CircuitBreaker.Options => ({
  name,
  enabled: settings.enabled,
  policy: settings.policy,
  recoveryTimeout: settings.recoveryTimeout,
  maxOpenDuration: settings.maxOpenDuration,
  halfOpen: { permits: settings.halfOpenPermits, successThreshold: settings.successThreshold },
  callTimeout: settings.callTimeout,
  ...(Duration.isZero(settings.slowCallThreshold) ? {} : { slowCallThreshold: settings.slowCallThreshold }),
  failureMode: settings.failureMode
})

/**
 * The policies a circuit's settings configure, made and ready to compose:
 * `bulkhead` (fixed or adaptive), `retryBudget` and `retry` (the options of
 * `RetryBudget.withRetry`, budget included: add the circuit's `breaker` and
 * `isRetryable`), and `hedge` (taking its hedges from the retry budget; a
 * circuit with `hedge` and no `retry` gets a `retryBudget` of the defaults for
 * them). A policy the settings do not configure is absent.
 *
 * **Example**
 *
 * ```ts
 * import { RetryBudget, ResilienceConfig } from "@neural-hive/resilience"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const settings = yield* ResilienceConfig.parse("circuitBreaker: { redis: { retry: { maxRetries: 2 } } }")
 *   const { retry } = yield* ResilienceConfig.policiesOf("redis_client", settings.redis!)
 *   const get = Effect.succeed("value")
 *   return yield* retry === undefined ? get : get.pipe(RetryBudget.withRetry(retry))
 * })
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const policiesOf: (
  name: string,
  settings: CircuitSettings
) => Effect.Effect<Policies, CircuitBreakerOptionsError> = makePolicies

/**
 * The policies of one circuit, as `policiesOf` makes them from its settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Policies {
  /** Its bulkhead, fixed (`bulkhead`) or adaptive (`adaptiveLimit`). */
  readonly bulkhead?: Bulkhead.Bulkhead | undefined
  /** Its retry budget (`retry`, or the defaults for a `hedge` alone). */
  readonly retryBudget?: RetryBudget.RetryBudget | undefined
  /** The options of `RetryBudget.withRetry` (`retry`): the budget, `maxRetries` and the jittered schedule. */
  readonly retry?: {
    readonly budget: RetryBudget.RetryBudget
    readonly maxRetries: number
    readonly schedule: Schedule.Schedule<unknown, unknown>
  } | undefined
  /** Its hedge (`hedge`), bounded by `retryBudget` (the circuit's, or one of the defaults with no `retry`). */
  readonly hedge?: Hedge.Hedge | undefined
}
