/**
 * One circuit of the configuration: its keys (the common ones, `policy` and
 * the chosen policy's, by the policy's `Schema`), read from the file and the
 * environment, checked, and converted once into settings (seconds into
 * `Duration`s, the policy's keys into the policy).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type { CircuitSettings, Key, PolicySection, Problem } from "../ResilienceConfig.ts"
import type * as TripPolicy from "../TripPolicy.ts"
import { registry } from "../TripPolicy.ts"
import { accepts, closest, expectedOf, fromText, type Kind, MAX_COUNT, MAX_SECONDS, toSetting } from "./configKeys.ts"
import { isSection, type SectionGiven, sectionNames, sections, sectionSettings } from "./configPolicies.ts"

/** The keys every circuit has, whatever its policy: the setting each fills and its kind. */
const common: ReadonlyArray<readonly [Key, keyof CircuitSettings, Kind]> = [
  ["enabled", "enabled", { _tag: "Boolean" }],
  ["recoveryTimeoutSeconds", "recoveryTimeout", { _tag: "Seconds", zero: false }],
  ["maxOpenSeconds", "maxOpenDuration", { _tag: "Seconds", zero: false }],
  ["halfOpenPermits", "halfOpenPermits", { _tag: "Integer", max: MAX_COUNT }],
  ["successThreshold", "successThreshold", { _tag: "Integer", max: MAX_COUNT }],
  ["callTimeoutSeconds", "callTimeout", { _tag: "Seconds", zero: false }],
  ["slowCallSeconds", "slowCallThreshold", { _tag: "Seconds", zero: true }],
  ["failureMode", "failureMode", { _tag: "Choice", choices: ["fail-fast", "fail-open"] }]
]
const commonByKey = new Map(common.map(([key, setting, kind]) => [key as string, { setting, kind }]))

const policyKind: Kind = { _tag: "Choice", choices: registry.map((schema) => schema.name) }

/** Every policy key of the registry, once, in the registry's order. */
const policyKeys = [...new Set(registry.flatMap((schema) => Object.keys(schema.keys)))]

const kindOf = (key: TripPolicy.ConfigKey): Kind =>
  key._tag === "Integer"
    ? { _tag: "Integer", max: key.max }
    : key._tag === "Ratio"
    ? key
    : { _tag: "Seconds", zero: false }

/** The input key of each generic key in a format (`null`: not offered), and back. */
export interface KeyNames {
  readonly inputName: ReadonlyMap<string, string>
  readonly genericOf: ReadonlyMap<string, string>
}

/**
 * The key names of a format: every common key, `policy`, every policy key and every section (`retry`, ...),
 * renamed or left out by `names`; a section's own keys follow it as `<section>.<key>` (the environment's
 * `RETRY_MAX_RETRIES`), never renamed.
 */
export const keyNames = (names: Readonly<Record<string, string | null | undefined>> | undefined): KeyNames => {
  const inputName = new Map<string, string>()
  const genericOf = new Map<string, string>()
  // The documented order: enabled, the policies' keys (failMax first), the other common keys, policy, the sections.
  for (const key of [common[0]![0], ...policyKeys, ...common.slice(1).map(([key]) => key), "policy", ...sectionNames]) {
    const name = names !== undefined && Object.hasOwn(names, key) && names[key] !== undefined ? names[key] : key
    if (name === null) continue
    inputName.set(key, name)
    genericOf.set(name, key)
    if (!isSection(key)) continue
    for (const sub of Object.keys(sections[key].keys)) {
      inputName.set(`${key}.${sub}`, `${name}.${sub}`)
      genericOf.set(`${name}.${sub}`, `${key}.${sub}`)
    }
  }
  return { inputName, genericOf }
}

/** A value for a generic key: where it was written (a key path or a variable) and what was written. */
interface Given {
  readonly key: string
  readonly where: string
  readonly value: unknown
  readonly fromEnv: boolean
}

/** The keys offered to a circuit whose policy is `schema`, in the format's names, in the documented order. */
const offered = (schema: TripPolicy.Schema | undefined, keys: KeyNames): ReadonlyArray<string> =>
  [common[0]![0], ...Object.keys(schema?.keys ?? {}), ...common.slice(1).map(([key]) => key), "policy", ...sectionNames]
    .flatMap((key) => keys.inputName.has(key) ? [keys.inputName.get(key)!] : [])

const schemaOf = (policy: TripPolicy.TripPolicy): TripPolicy.Schema | undefined =>
  registry.find((schema) => schema.tag === policy._tag)

/** The keys offered to a circuit before its `policy` is read: its default policy's. */
export const offeredByDefault = (own: Partial<CircuitSettings> | undefined, keys: KeyNames): string =>
  offered(own?.policy === undefined ? registry[0] : schemaOf(own.policy), keys).join(", ")

/**
 * One circuit's settings: defaults, then the known circuit's own, then the
 * file's (`entries`), then the environment's (`overrides`); then cross-checks.
 * Every problem is added to `problems`.
 */
export const circuitSettings = (
  path: string,
  defaults: CircuitSettings,
  own: Partial<CircuitSettings> | undefined,
  entries: ReadonlyArray<readonly [string, unknown]>,
  overrides: ReadonlyArray<readonly [string, string, string]>,
  keys: KeyNames,
  problems: Array<Problem>
): CircuitSettings => {
  const given: Array<Given> = []
  const unknown: Array<readonly [string, unknown]> = []
  // The policy sections (`retry: {...}`) and their environment keys (`retry.maxRetries`), read apart.
  const sectionRaw = new Map<PolicySection, readonly [string, unknown]>()
  const sectionGiven = new Map<PolicySection, Array<SectionGiven>>()
  for (const [name, value] of entries) {
    const key = keys.genericOf.get(name)
    if (key === undefined || key.includes(".")) unknown.push([name, value])
    else if (isSection(key)) sectionRaw.set(key, [name, value])
    else given.push({ key, where: `${path}.${name}`, value, fromEnv: false })
  }
  for (const [key, variable, text] of overrides) {
    const dot = key.indexOf(".")
    const section = key.slice(0, dot)
    if (dot > 0 && isSection(section)) {
      const list = sectionGiven.get(section) ?? []
      list.push({ key: key.slice(dot + 1), where: variable, value: text, fromEnv: true })
      sectionGiven.set(section, list)
    } else {
      given.push({ key, where: variable, value: text, fromEnv: true })
    }
  }
  // The environment overrides the file: the last value of a key wins.
  const last = new Map(given.map((g) => [g.key, g]))
  const read = (g: Given, kind: Kind): { readonly ok: unknown } | undefined => {
    const value = g.fromEnv ? fromText(kind, g.value as string) : g.value
    if (value !== undefined && accepts(kind, value)) return { ok: toSetting(kind, value) }
    problems.push({ key: g.where, value: g.value, expected: expectedOf(kind, g.fromEnv) })
    return undefined
  }
  const base: CircuitSettings = { ...defaults, ...own }
  const values: Record<string, unknown> = { ...base }
  const policy = policyOf(path, base, last, keys, read, problems)
  for (const g of given) {
    if (last.get(g.key) !== g || g.key === "policy") continue
    const entry = commonByKey.get(g.key)
    if (entry === undefined) {
      policy.key(g)
      continue
    }
    const value = read(g, entry.kind)
    if (value !== undefined) values[entry.setting] = value.ok
  }
  const made = policy.make()
  if (made !== undefined) values.policy = made
  for (const section of sectionNames) delete values[section]
  Object.assign(values, sectionSettings(path, own, sectionRaw, sectionGiven, problems))
  const schema = policy.schema
  for (const [name, value] of unknown) {
    const names = offered(schema, keys)
    const close = closest(name, names)
    problems.push({
      key: `${path}.${name}`,
      value,
      expected: `one of ${names.join(", ")}${close === undefined ? "" : `: did you mean ${close}?`}`
    })
  }
  // Follows halfOpenPermits unless given (by the file, the environment or the known circuit).
  if (!last.has("successThreshold") && own?.successThreshold === undefined) {
    values.successThreshold = values.halfOpenPermits
  }
  return crossChecked(path, values as unknown as CircuitSettings, keys, problems)
}

/** The circuit's policy being read: the schema `policy` chose, each of its keys, then the policy made. */
interface PolicyReader {
  readonly schema: TripPolicy.Schema | undefined
  readonly key: (g: Given) => void
  /** The policy the keys make, or `undefined` when none was configured or a key was bad (a problem says which). */
  readonly make: () => TripPolicy.TripPolicy | undefined
}

/** `policy` (or the known circuit's own policy) chooses the schema; its keys, checked by their kinds, make the policy. */
const policyOf = (
  path: string,
  base: CircuitSettings,
  last: ReadonlyMap<string, Given>,
  keys: KeyNames,
  read: (g: Given, kind: Kind) => { readonly ok: unknown } | undefined,
  problems: Array<Problem>
): PolicyReader => {
  const named = last.get("policy")
  const chosen = named === undefined ? undefined : read(named, policyKind)
  const schema = chosen === undefined ? schemaOf(base.policy) : registry.find((s) => s.name === chosen.ok)
  const policyName = keys.inputName.get("policy") ?? "policy"
  const options: Record<string, TripPolicy.ConfigValue> = {}
  for (const [key, spec] of Object.entries(schema?.keys ?? {})) {
    if (spec.default !== undefined) options[key] = spec.default
  }
  // A bad `policy` was reported: its keys are not checked against a schema that was not chosen.
  let configured = named !== undefined
  let bad = named !== undefined && chosen === undefined
  const key = (g: Given) => {
    configured = true
    if (named !== undefined && chosen === undefined) return
    const spec = schema !== undefined && Object.hasOwn(schema.keys, g.key) ? schema.keys[g.key] : undefined
    if (spec === undefined) {
      bad = true
      const owners = registry.filter((s) => Object.hasOwn(s.keys, g.key)).map((s) => s.name)
      problems.push({
        key: g.where,
        value: g.value,
        expected: schema === undefined
          ? `no policy key: this circuit's policy is set in code (set ${policyName} to one of ${
            policyKind.choices.join(", ")
          } to configure one)`
          : `a key of policy ${schema.name} (${Object.keys(schema.keys).join(", ")}): ${g.key} is a key of ${
            owners.join(", ")
          }, chosen with ${policyName}`
      })
      return
    }
    const value = read(g, kindOf(spec))
    if (value === undefined) bad = true
    else options[g.key] = value.ok as TripPolicy.ConfigValue
  }
  const make = () => {
    if (!configured || bad || schema === undefined) return undefined
    const policy = schema.make(options)
    const problem = policy.check?.()
    if (problem === undefined) return policy
    const name = Object.keys(schema.keys).find((k) => schema.keys[k]!.option === problem.option)
    const g = name === undefined ? named : last.get(name)
    problems.push({
      key: g?.where ?? `${path}.${name === undefined ? policyName : keys.inputName.get(name) ?? name}`,
      value: g?.value ?? problem.value,
      expected: problem.expected
    })
    return undefined
  }
  return { schema, key, make }
}

/** The checks between keys: the cap of the open period, and the probes that close. */
const crossChecked = (path: string, s: CircuitSettings, keys: KeyNames, problems: Array<Problem>) => {
  const name = (key: string) => keys.inputName.get(key) ?? key
  const recovery = Duration.toSeconds(s.recoveryTimeout)
  const maxOpen = Duration.toSeconds(s.maxOpenDuration)
  if (maxOpen < recovery) {
    problems.push({
      key: `${path}.${name("maxOpenSeconds")}`,
      value: maxOpen,
      expected: `a number of seconds >= ${
        name("recoveryTimeoutSeconds")
      } (${recovery}) and at most ${MAX_SECONDS} (7 days): it caps the open period`
    })
  }
  if (s.successThreshold > s.halfOpenPermits) {
    problems.push({
      key: `${path}.${name("successThreshold")}`,
      value: s.successThreshold,
      expected: `an integer between 1 and ${name("halfOpenPermits")} (${s.halfOpenPermits})`
    })
  }
  return s
}
