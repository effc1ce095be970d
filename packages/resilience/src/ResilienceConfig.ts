/**
 * The seed's breaker configuration: a YAML file in the seed's format,
 * overridable by environment variables, validated in full before anything
 * starts.
 *
 * ```yaml
 * circuitBreaker:
 *   kafka:    { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
 *   temporal: { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
 *   redis:    { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 60 }
 *   mongodb:  { enabled: true, failMax: 5, timeoutSeconds: 60, recoveryTimeoutSeconds: 30 }
 * ```
 *
 * Every key is optional (the seed's defaults above apply). An environment
 * variable `CIRCUIT_BREAKER_<DEPENDENCY>_<KEY>` overrides a key, e.g.
 * `CIRCUIT_BREAKER_KAFKA_FAIL_MAX=10`. A bad value gives one problem per key,
 * naming the key path (or variable), the value and what is allowed.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { readFile } from "node:fs/promises"
import * as Yaml from "yaml"
import type * as CircuitBreaker from "./CircuitBreaker.ts"

/**
 * @since 0.1.0
 * @category models
 */
export type Dependency = "kafka" | "temporal" | "redis" | "mongodb"

/**
 * @since 0.1.0
 * @category models
 */
export const dependencies: ReadonlyArray<Dependency> = ["kafka", "temporal", "redis", "mongodb"]

/**
 * The `circuit` label of each dependency's breaker.
 *
 * @since 0.1.0
 * @category models
 */
export const circuitNames: Readonly<Record<Dependency, string>> = {
  kafka: "kafka_producer",
  temporal: "temporal_client",
  redis: "redis_client",
  mongodb: "mongodb_client"
}

/**
 * One dependency's breaker settings, in the seed's names plus our extras.
 *
 * @since 0.1.0
 * @category models
 */
export interface DependencySettings {
  readonly enabled: boolean
  /** Consecutive failures that open the breaker. */
  readonly failMax: number
  /** The cap of the doubling open period (our `maxOpenDuration`). */
  readonly timeoutSeconds: number
  /** The first open period (our `recoveryTimeout`). */
  readonly recoveryTimeoutSeconds: number
  /** Probes admitted in HALF_OPEN. */
  readonly halfOpenPermits: number
  /** Successful probes that close the breaker (at most `halfOpenPermits`; default `halfOpenPermits`). */
  readonly successThreshold: number
  /** Per-call timeout; a call running longer counts as a failure. */
  readonly callTimeoutSeconds: number
  /** A success slower than this counts as a failure; 0 turns it off. */
  readonly slowCallSeconds: number
}

/**
 * @since 0.1.0
 * @category models
 */
export type Settings = Readonly<Record<Dependency, DependencySettings>>

const base = {
  enabled: true,
  failMax: 5,
  timeoutSeconds: 60,
  recoveryTimeoutSeconds: 30,
  halfOpenPermits: 1,
  successThreshold: 1,
  callTimeoutSeconds: 10,
  slowCallSeconds: 0
} satisfies DependencySettings

/**
 * The seed's values (Redis recovers after 60 s: it is only a cache).
 *
 * @since 0.1.0
 * @category models
 */
export const defaults: Settings = {
  kafka: base,
  temporal: base,
  redis: { ...base, recoveryTimeoutSeconds: 60, callTimeoutSeconds: 2 },
  mongodb: base
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
  override get message(): string {
    return `invalid circuit breaker configuration (${this.source}):\n` +
      this.problems.map((p) => `  - ${p.key}: got ${show(p.value)}, expected ${p.expected}`).join("\n")
  }
}

const show = (value: unknown): string => {
  if (value === undefined) return "nothing"
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)
  try {
    const json = JSON.stringify(value)
    return json === undefined ? String(value) : json.length > 80 ? `${json.slice(0, 80)}...` : json
  } catch {
    return String(value)
  }
}

// -----------------------------------------------------------------------------
// parsing
// -----------------------------------------------------------------------------

type Kind = "boolean" | "integer>=1" | "seconds>0" | "seconds>=0"

const keys: Readonly<Record<keyof DependencySettings, Kind>> = {
  enabled: "boolean",
  failMax: "integer>=1",
  timeoutSeconds: "seconds>0",
  recoveryTimeoutSeconds: "seconds>0",
  halfOpenPermits: "integer>=1",
  successThreshold: "integer>=1",
  callTimeoutSeconds: "seconds>0",
  slowCallSeconds: "seconds>=0"
}

const expectedOf: Record<Kind, string> = {
  "boolean": "true or false",
  "integer>=1": "an integer >= 1",
  "seconds>0": "a number of seconds > 0",
  "seconds>=0": "a number of seconds >= 0"
}

const MAX_SECONDS = 7 * 24 * 3600

/** Accepts a YAML value, or an environment string when `fromText`. */
const check = (kind: Kind, raw: unknown, fromText: boolean): { ok: true; value: number | boolean } | { ok: false } => {
  let value = raw
  if (fromText && typeof raw === "string") {
    const text = raw.trim()
    if (kind === "boolean") value = text === "true" ? true : text === "false" ? false : raw
    else value = text === "" ? raw : Number(text)
  }
  switch (kind) {
    case "boolean":
      return typeof value === "boolean" ? { ok: true, value } : { ok: false }
    case "integer>=1":
      return typeof value === "number" && Number.isSafeInteger(value) && value >= 1 && value <= 1_000_000
        ? { ok: true, value }
        : { ok: false }
    case "seconds>0":
    case "seconds>=0":
      return typeof value === "number" && Number.isFinite(value) && value <= MAX_SECONDS &&
          (kind === "seconds>0" ? value > 0 : value >= 0)
        ? { ok: true, value }
        : { ok: false }
  }
}

const envName = (dependency: Dependency, key: string) =>
  `CIRCUIT_BREAKER_${dependency.toUpperCase()}_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Validates a parsed document (the YAML's root) and the environment into
 * settings, or every problem found.
 *
 * @since 0.1.0
 * @category parsing
 */
export const decode = (
  document: unknown,
  env: Readonly<Record<string, string | undefined>> = {}
): Settings | ReadonlyArray<Problem> => {
  const problems: Array<Problem> = []
  let section: Record<string, unknown> = {}
  if (document !== undefined && document !== null) {
    if (!isRecord(document)) {
      problems.push({ key: "(root)", value: document, expected: "a mapping with a circuitBreaker key" })
    } else {
      for (const key of Object.keys(document)) {
        if (key !== "circuitBreaker") {
          problems.push({ key, value: document[key], expected: "no other top-level key than circuitBreaker" })
        }
      }
      const raw = document.circuitBreaker
      if (raw !== undefined && raw !== null) {
        if (isRecord(raw)) section = raw
        else {problems.push({
            key: "circuitBreaker",
            value: raw,
            expected: "a mapping of kafka, temporal, redis, mongodb"
          })}
      }
    }
  }
  for (const key of Object.keys(section)) {
    if (!(dependencies as ReadonlyArray<string>).includes(key)) {
      problems.push({
        key: `circuitBreaker.${key}`,
        value: section[key],
        expected: `one of ${dependencies.join(", ")}`
      })
    }
  }

  const settings = {} as Record<Dependency, DependencySettings>
  for (const dependency of dependencies) {
    const values: Record<string, number | boolean> = { ...defaults[dependency] }
    const raw = section[dependency]
    const path = `circuitBreaker.${dependency}`
    if (raw !== undefined && raw !== null && !isRecord(raw)) {
      problems.push({ key: path, value: raw, expected: `a mapping of ${Object.keys(keys).join(", ")}` })
    } else if (raw !== undefined && raw !== null) {
      for (const key of Object.keys(raw)) {
        const kind = keys[key as keyof DependencySettings]
        if (kind === undefined) {
          problems.push({ key: `${path}.${key}`, value: raw[key], expected: `one of ${Object.keys(keys).join(", ")}` })
          continue
        }
        const result = check(kind, raw[key], false)
        if (result.ok) values[key] = result.value
        else problems.push({ key: `${path}.${key}`, value: raw[key], expected: expectedOf[kind] })
      }
    }
    for (const key of Object.keys(keys) as Array<keyof DependencySettings>) {
      const name = envName(dependency, key)
      const text = env[name]
      if (text === undefined) continue
      const result = check(keys[key], text, true)
      if (result.ok) values[key] = result.value
      else problems.push({ key: name, value: text, expected: expectedOf[keys[key]] })
    }
    const thresholdGiven = (isRecord(raw) && raw.successThreshold !== undefined) ||
      env[envName(dependency, "successThreshold")] !== undefined
    if (!thresholdGiven) values.successThreshold = values.halfOpenPermits!
    const s = values as unknown as DependencySettings
    if (s.timeoutSeconds < s.recoveryTimeoutSeconds) {
      problems.push({
        key: `${path}.timeoutSeconds`,
        value: s.timeoutSeconds,
        expected: `a number of seconds >= recoveryTimeoutSeconds (${s.recoveryTimeoutSeconds}): it caps the open period`
      })
    }
    if (s.successThreshold > s.halfOpenPermits) {
      problems.push({
        key: `${path}.successThreshold`,
        value: s.successThreshold,
        expected: `an integer between 1 and halfOpenPermits (${s.halfOpenPermits})`
      })
    }
    settings[dependency] = s
  }
  return problems.length > 0 ? problems : settings
}

/**
 * Parses YAML text in the seed's format, applies environment overrides and
 * validates the result.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (
  text: string,
  options?: { readonly env?: Readonly<Record<string, string | undefined>>; readonly source?: string }
): Effect.Effect<Settings, ResilienceConfigError> =>
  Effect.suspend(() => {
    const source = options?.source ?? "YAML"
    let document: unknown
    try {
      const parsed = Yaml.parseDocument(text, { prettyErrors: false, uniqueKeys: true })
      if (parsed.errors.length > 0) {
        return Effect.fail(
          new ResilienceConfigError({
            source,
            problems: parsed.errors.map((e) => ({
              key: `line ${e.linePos?.[0]?.line ?? "?"}`,
              value: e.code,
              expected: `valid YAML (${e.message.split("\n")[0]})`
            }))
          })
        )
      }
      document = parsed.toJS({ maxAliasCount: 100 })
    } catch (cause) {
      return Effect.fail(
        new ResilienceConfigError({
          source,
          problems: [{ key: "(document)", value: String(cause), expected: "valid YAML" }]
        })
      )
    }
    const result = decode(document, options?.env ?? {})
    return Array.isArray(result)
      ? Effect.fail(new ResilienceConfigError({ source, problems: result }))
      : Effect.succeed(result as Settings)
  })

/**
 * Reads and validates a YAML file (see `parse`); a missing or unreadable file
 * is a problem too.
 *
 * @since 0.1.0
 * @category parsing
 */
export const load = (
  path: string,
  options?: { readonly env?: Readonly<Record<string, string | undefined>> }
): Effect.Effect<Settings, ResilienceConfigError> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new ResilienceConfigError({
        source: path,
        problems: [{ key: "(file)", value: path, expected: `a readable file (${(cause as Error).message})` }]
      })
  }).pipe(Effect.flatMap((text) => parse(text, { ...options, source: path })))

/**
 * The breaker options of one dependency, under its seed circuit name.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toBreakerOptions = (
  dependency: Dependency,
  settings: DependencySettings
): CircuitBreaker.Options => ({
  name: circuitNames[dependency],
  enabled: settings.enabled,
  failMax: settings.failMax,
  recoveryTimeout: settings.recoveryTimeoutSeconds * 1000,
  maxOpenDuration: settings.timeoutSeconds * 1000,
  halfOpen: { permits: settings.halfOpenPermits, successThreshold: settings.successThreshold },
  callTimeout: settings.callTimeoutSeconds * 1000,
  ...(settings.slowCallSeconds > 0 ? { slowCallThreshold: settings.slowCallSeconds * 1000 } : {}),
  failureMode: dependency === "redis" ? "fail-open" : "fail-fast"
})
