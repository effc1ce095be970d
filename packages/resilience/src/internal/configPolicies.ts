/**
 * The policy sections of a circuit (`bulkhead`, `adaptiveLimit`, `retry`,
 * `hedge`): each a mapping of its own keys, read from the file and from the
 * environment (`CIRCUIT_BREAKER_<CIRCUIT>_<SECTION>_<KEY>`), checked by kind,
 * cross-checked, and converted once into settings (seconds into `Duration`s).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Bulkhead from "../Bulkhead.ts"
import type { CircuitBreakerOptionsError } from "../CircuitBreakerError.ts"
import * as Hedge from "../Hedge.ts"
import type {
  AdaptiveLimitSettings,
  BulkheadSettings,
  CircuitSettings,
  HedgeSettings,
  Policies,
  PolicySection,
  Problem,
  RetrySettings
} from "../ResilienceConfig.ts"
import * as RetryBudget from "../RetryBudget.ts"
import { accepts, closest, entriesOf, expectedOf, fromText, type Kind, MAX_COUNT, toSetting } from "./configKeys.ts"

/** One key of a section: the setting it fills and its kind. */
interface SectionKey {
  readonly setting: string
  readonly kind: Kind
}

interface SectionSchema {
  readonly keys: Readonly<Record<string, SectionKey>>
  /** The settings when nothing is given (a key missing here is required). */
  readonly defaults: Readonly<Record<string, unknown>>
}

const seconds = (zero: boolean): Kind => ({ _tag: "Seconds", zero })
const integer: Kind = { _tag: "Integer", max: MAX_COUNT }
const count: Kind = { _tag: "Count", max: MAX_COUNT }
const enabled: SectionKey = { setting: "enabled", kind: { _tag: "Boolean" } }

/** Every section, in the documented order, with its keys in the documented order. */
export const sections: Readonly<Record<PolicySection, SectionSchema>> = {
  bulkhead: {
    keys: {
      enabled,
      maxConcurrent: { setting: "maxConcurrent", kind: integer },
      maxQueued: { setting: "maxQueued", kind: count },
      queueTimeoutSeconds: { setting: "queueTimeout", kind: seconds(false) }
    },
    defaults: { enabled: true, maxQueued: 0, queueTimeout: Duration.seconds(1) }
  },
  adaptiveLimit: {
    keys: {
      enabled,
      initialLimit: { setting: "initialLimit", kind: integer },
      minLimit: { setting: "minLimit", kind: integer },
      maxLimit: { setting: "maxLimit", kind: integer },
      maxQueued: { setting: "maxQueued", kind: count },
      queueTimeoutSeconds: { setting: "queueTimeout", kind: seconds(false) }
    },
    // initialLimit: 20 brought within [minLimit, maxLimit] unless given.
    defaults: { enabled: true, minLimit: 1, maxLimit: 200, maxQueued: 0, queueTimeout: Duration.seconds(1) }
  },
  retry: {
    keys: {
      enabled,
      maxRetries: { setting: "maxRetries", kind: { _tag: "Integer", max: 100 } },
      budgetRatio: { setting: "budgetRatio", kind: { _tag: "Number", min: 0, max: 1 } },
      budgetMinPerSecond: { setting: "budgetMinPerSecond", kind: { _tag: "Number", min: 0, max: MAX_COUNT } },
      budgetWindowSeconds: { setting: "budgetWindow", kind: seconds(false) },
      baseDelaySeconds: { setting: "baseDelay", kind: seconds(false) }
    },
    defaults: {
      enabled: true,
      maxRetries: 2,
      budgetRatio: 0.1,
      budgetMinPerSecond: 1,
      budgetWindow: Duration.seconds(10),
      baseDelay: Duration.millis(100)
    }
  },
  hedge: {
    keys: {
      enabled,
      delaySeconds: { setting: "delay", kind: seconds(false) },
      percentile: { setting: "percentile", kind: { _tag: "Number", min: 0.5, max: 0.999 } },
      minDelaySeconds: { setting: "minDelay", kind: seconds(true) },
      samples: { setting: "samples", kind: integer }
    },
    defaults: { enabled: true, percentile: 0.95, minDelay: Duration.millis(5), samples: 200 }
  }
}

/** The section names, in the documented order. */
export const sectionNames = Object.keys(sections) as ReadonlyArray<PolicySection>

export const isSection = (key: string): key is PolicySection => Object.hasOwn(sections, key)

/** A value of a section's key: where it was written (a key path or a variable) and what was written. */
export interface SectionGiven {
  /** The key inside the section (`maxRetries`). */
  readonly key: string
  readonly where: string
  readonly value: unknown
  readonly fromEnv: boolean
}

/** What a circuit's sections hold once read: the settings of each section configured and enabled. */
export interface SectionSettings {
  readonly bulkhead?: BulkheadSettings
  readonly adaptiveLimit?: AdaptiveLimitSettings
  readonly retry?: RetrySettings
  readonly hedge?: HedgeSettings
}

/**
 * Reads one section: the known circuit's own settings, then the file's mapping (`raw`), then the
 * environment's keys; a key of no section is an unknown-key problem with a did-you-mean.
 */
const sectionOf = (
  section: PolicySection,
  path: string,
  own: object | undefined,
  raw: unknown,
  given: ReadonlyArray<SectionGiven>,
  problems: Array<Problem>
): Record<string, unknown> | undefined => {
  const schema = sections[section]
  const before = problems.length
  const values: Record<string, unknown> = { ...schema.defaults, ...own }
  const all: Array<SectionGiven> = []
  if (raw !== undefined && raw !== null) {
    const entries = entriesOf(raw)
    if (entries === undefined) {
      problems.push({ key: path, value: raw, expected: `a mapping of ${Object.keys(schema.keys).join(", ")}` })
    } else {
      for (const [key, value] of entries) all.push({ key, where: `${path}.${key}`, value, fromEnv: false })
    }
  }
  // The environment overrides the file: the last value of a key wins.
  all.push(...given)
  const last = new Map(all.map((g) => [g.key, g]))
  for (const g of all) {
    if (last.get(g.key) !== g) continue
    const spec = Object.hasOwn(schema.keys, g.key) ? schema.keys[g.key]! : undefined
    if (spec === undefined) {
      const names = Object.keys(schema.keys)
      const close = closest(g.key, names)
      problems.push({
        key: g.where,
        value: g.value,
        expected: `one of ${names.join(", ")}${close === undefined ? "" : `: did you mean ${close}?`}`
      })
      continue
    }
    const value = g.fromEnv ? fromText(spec.kind, g.value as string) : g.value
    if (value !== undefined && accepts(spec.kind, value)) values[spec.setting] = toSetting(spec.kind, value)
    else problems.push({ key: g.where, value: g.value, expected: expectedOf(spec.kind, g.fromEnv) })
  }
  if (problems.length > before || values.enabled === false) return undefined
  const where = (key: string) => last.get(key)?.where ?? `${path}.${key}`
  for (const [key, spec] of Object.entries(schema.keys)) {
    if (values[spec.setting] === undefined && key !== "delaySeconds" && key !== "initialLimit") {
      problems.push({ key: where(key), value: undefined, expected: `${expectedOf(spec.kind, false)} (required)` })
    }
  }
  return problems.length > before ? undefined : crossChecked(section, values, last, where, problems)
}

/** The checks between a section's keys, worded as the policy's constructor checks them. */
const crossChecked = (
  section: PolicySection,
  values: Record<string, unknown>,
  last: ReadonlyMap<string, SectionGiven>,
  where: (key: string) => string,
  problems: Array<Problem>
): Record<string, unknown> | undefined => {
  const problem = (key: string, value: unknown, expected: string) => {
    problems.push({ key: where(key), value: last.get(key)?.value ?? value, expected })
    return undefined
  }
  if (section === "adaptiveLimit") {
    const min = values.minLimit as number
    const max = values.maxLimit as number
    if (max < min) return problem("maxLimit", max, `an integer of at least minLimit (${min})`)
    const initial = values.initialLimit as number | undefined
    if (initial === undefined) values.initialLimit = Math.min(max, Math.max(min, 20))
    else if (initial < min || initial > max) {
      return problem("initialLimit", initial, `an integer from minLimit (${min}) to maxLimit (${max})`)
    }
  }
  if (section === "retry" && Duration.toMillis(values.budgetWindow as Duration.Duration) < 10) {
    return problem(
      "budgetWindowSeconds",
      values.budgetWindow,
      "a number of seconds of at least 0.01 (10 buckets of 1 ms)"
    )
  }
  if (section === "hedge") {
    if (values.samples as number < 20) return problem("samples", values.samples, `an integer of at least 20`)
    if (last.has("delaySeconds") && last.has("percentile")) {
      return problem(
        "percentile",
        values.percentile,
        "no percentile with delaySeconds: a hedge waits either a fixed delay or a learnt percentile"
      )
    }
  }
  const { enabled: _, ...settings } = values
  return settings
}

/**
 * The sections of one circuit: each the file gives (`raw`, by section name) or the environment touches
 * (`given`, by section), on top of the known circuit's own; bulkhead and adaptiveLimit exclude each other.
 */
export const sectionSettings = (
  path: string,
  own: object | undefined,
  raw: ReadonlyMap<PolicySection, readonly [string, unknown]>,
  given: ReadonlyMap<PolicySection, ReadonlyArray<SectionGiven>>,
  problems: Array<Problem>
): SectionSettings => {
  const out: Record<string, unknown> = {}
  for (const section of sectionNames) {
    const file = raw.get(section)
    const env = given.get(section) ?? []
    const mine = (own as Record<string, object | undefined> | undefined)?.[section]
    if (file === undefined && env.length === 0 && mine === undefined) continue
    const name = file?.[0] ?? section
    const settings = sectionOf(section, `${path}.${name}`, mine, file?.[1], env, problems)
    if (settings !== undefined) out[section] = settings
  }
  if (out.bulkhead !== undefined && out.adaptiveLimit !== undefined) {
    const name = raw.get("adaptiveLimit")?.[0] ?? "adaptiveLimit"
    problems.push({
      key: `${path}.${name}`,
      value: raw.get("adaptiveLimit")?.[1] ?? "(environment)",
      expected: `no adaptiveLimit beside bulkhead: a circuit has one concurrency limit, fixed (bulkhead) or adaptive`
    })
    delete out.adaptiveLimit
  }
  return out as SectionSettings
}

/** `ResilienceConfig.policiesOf`: the policies the settings configure, made. */
export const makePolicies = (
  name: string,
  settings: CircuitSettings
): Effect.Effect<Policies, CircuitBreakerOptionsError> =>
  Effect.gen(function*() {
    const bulkhead = settings.bulkhead !== undefined
      ? yield* Bulkhead.make({ name, ...settings.bulkhead })
      : settings.adaptiveLimit !== undefined
      ? yield* Bulkhead.adaptive({ name, ...settings.adaptiveLimit })
      : undefined
    const r = settings.retry
    const h = settings.hedge
    // Hedges are extra calls: they always take from a budget, the circuit's retry budget or, with no `retry`,
    // one of the defaults (hedges at most 10 % of the calls plus the reserve).
    const retryBudget = r !== undefined
      ? yield* RetryBudget.make({
        name,
        ratio: r.budgetRatio,
        minPerSecond: r.budgetMinPerSecond,
        window: r.budgetWindow
      })
      : h !== undefined
      ? yield* RetryBudget.make({ name })
      : undefined
    const hedge = h === undefined ? undefined : yield* Hedge.make({
      name,
      ...(h.delay === undefined ? { percentile: h.percentile } : { delay: h.delay }),
      minDelay: h.minDelay,
      samples: h.samples,
      budget: retryBudget
    })
    return {
      ...(bulkhead === undefined ? {} : { bulkhead }),
      ...(retryBudget === undefined ? {} : { retryBudget }),
      ...(retryBudget === undefined || r === undefined ? {} : {
        retry: {
          budget: retryBudget,
          maxRetries: r.maxRetries,
          schedule: Schedule.jittered(Schedule.exponential(r.baseDelay))
        }
      }),
      ...(hedge === undefined ? {} : { hedge })
    }
  })
