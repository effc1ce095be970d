/**
 * Prometheus text written by a metric itself instead of by prom-client's
 * `Registry`.
 *
 * prom-client formats every sample line on every scrape: it escapes and joins
 * the label set, allocates the pieces and the line. With a breaker's two dozen
 * lines, that was most of a `/metrics` scrape of many breakers. A metric
 * offering `renderText` writes its whole block (HELP, TYPE, samples) from text
 * it prepared once, and the registry's `getMetricsAsString` hands that block to
 * `registry.metrics()`, which joins the blocks as before. The registry is
 * otherwise untouched: its other metrics, `getMetricsAsJSON` (through the
 * metric's `get()`), both exposition formats and its default labels work as
 * they did.
 *
 * @internal
 */
import * as Prometheus from "prom-client"

/** A prom-client registry of either exposition format. @internal */
export type PromRegistry = Prometheus.Registry<Prometheus.RegistryContentType>

/** The registry's labels for every line (`setDefaultLabels`). @internal */
export type DefaultLabels = Readonly<Record<string, string | number>>

/** What a rendering needs to know of the registry asking. @internal */
export interface RenderContext {
  readonly openMetrics: boolean
  /** The registry's default labels, `undefined` when it has none. */
  readonly defaultLabels: DefaultLabels | undefined
}

/** The method of a metric that writes its own text: HELP, TYPE and samples, lines joined by `\n`, none after. @internal */
export const renderText: unique symbol = Symbol.for("@neural-hive/observability/renderText")

/** @internal */
export interface Rendered {
  readonly [renderText]: (context: RenderContext) => string
}

const isRendered = (metric: unknown): metric is Rendered =>
  typeof metric === "object" && metric !== null && typeof (metric as Partial<Rendered>)[renderText] === "function"

/** prom-client's escaping of metric names and HELP text. @internal */
export const escapeString = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** prom-client's escaping of a label value; the same string when nothing needs escaping (a breaker name never does). @internal */
export const escapeLabelValue = (value: string | number): string =>
  typeof value !== "string"
    ? `${value}`
    : /[\\\n"]/.test(value)
    ? escapeString(value).replace(/"/g, "\\\"")
    : value

/** A sample value as prom-client writes it (`getValueAsString`). @internal */
export const formatValue = (value: number): string =>
  Number.isNaN(value) ? "Nan" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : `${value}`

/** The HELP and TYPE lines of a metric, as prom-client writes them. @internal */
export const header = (name: string, help: string, type: string): string => {
  const escaped = escapeString(name)
  return `# HELP ${escaped} ${escapeString(help)}\n# TYPE ${escaped} ${type}`
}

/**
 * The default labels a line with the labels `names` also carries, as text to write after its own labels
 * (`,pod="a"`): prom-client adds each default label the line does not set itself.
 *
 * @internal
 */
export const defaultLabelsText = (defaults: DefaultLabels | undefined, names: ReadonlyArray<string>): string => {
  if (defaults === undefined) return ""
  let text = ""
  for (const [name, value] of Object.entries(defaults)) {
    if (!names.includes(name)) text += `,${name}="${escapeLabelValue(value)}"`
  }
  return text
}

/**
 * The method of prom-client's Registry (untyped in its declarations) that `metrics()` and
 * `getSingleMetricAsString` call for each metric. Were a version to stop calling it, the metrics would still be
 * written, by prom-client from their `get()`.
 */
type GetMetricsAsString = (this: PromRegistry, metric: unknown) => Promise<string>

interface Writable {
  getMetricsAsString?: GetMetricsAsString
}

interface Patched {
  /** How many `attach` calls are not yet undone. */
  users: number
  /** The registry's own `getMetricsAsString` property before the patch (`undefined`: it was the prototype's). */
  readonly own: GetMetricsAsString | undefined
}

const patched = new WeakMap<PromRegistry, Patched>()

/** The fields of prom-client's Registry read here; `_defaultLabels` is where `setDefaultLabels` keeps them. */
interface RegistryFields {
  readonly _defaultLabels?: DefaultLabels | undefined
}

const contextOf = (registry: PromRegistry): RenderContext => {
  const defaults = (registry as unknown as RegistryFields)._defaultLabels
  return {
    openMetrics: registry.contentType === Prometheus.Registry.OPENMETRICS_CONTENT_TYPE,
    defaultLabels: defaults === undefined || Object.keys(defaults).length === 0 ? undefined : defaults
  }
}

/**
 * Lets the metrics of `registry` that offer `renderText` write their own text in `registry.metrics()` and
 * `getSingleMetricAsString`. Returns what undoes it; the registry is back to its own method once every `attach`
 * on it is undone.
 *
 * @internal
 */
export const attach = (registry: PromRegistry): () => void => {
  const writable = registry as Writable
  const existing = patched.get(registry)
  const original = writable.getMetricsAsString
  if (existing !== undefined) {
    existing.users++
  } else if (typeof original === "function") {
    patched.set(registry, { users: 1, own: Object.hasOwn(registry, "getMetricsAsString") ? original : undefined })
    writable.getMetricsAsString = function(this: PromRegistry, metric: unknown) {
      if (!isRendered(metric)) return original.call(this, metric)
      try {
        return Promise.resolve(metric[renderText](contextOf(this)))
      } catch (error) {
        return Promise.reject(error)
      }
    }
  }
  let attached = true
  return () => {
    const state = patched.get(registry)
    if (!attached || state === undefined) return
    attached = false
    if (--state.users > 0) return
    patched.delete(registry)
    if (state.own === undefined) {
      delete writable.getMetricsAsString
    } else {
      writable.getMetricsAsString = state.own
    }
  }
}
