/**
 * A Prometheus histogram recorded without prom-client on the call path.
 *
 * prom-client's `Histogram.observe` hashes the label set on every call (even
 * through `labels(...)`), which cost more than the breaker itself. Here each
 * series is a plain array of bucket counts that `observe` bumps; prom-client
 * reads it when Prometheus scrapes, through the metric interface its
 * `Registry` accepts (`name`, `help`, `type`, `get()`).
 */

/** One labelled series: per-bucket (non-cumulative) counts, then sum and count. */
export class Series {
  readonly labels: Readonly<Record<string, string>>
  readonly bounds: ReadonlyArray<number>
  readonly counts: Float64Array
  /** The label sets of its lines, made once: prom-client formats a label set once per object (`sharedLabels`). */
  readonly lineLabels: ReadonlyArray<Readonly<Record<string, string | number>>>
  sum = 0
  count = 0
  constructor(labels: Readonly<Record<string, string>>, bounds: ReadonlyArray<number>) {
    this.labels = labels
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length)
    this.lineLabels = [...bounds.map((le) => ({ ...labels, le })), { ...labels, le: "+Inf" }, labels]
  }
  observe(value: number): void {
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++
        break
      }
    }
    this.sum += value
    this.count++
  }
}

interface Sample {
  readonly metricName: string
  readonly labels: Record<string, string | number>
  readonly sharedLabels: Readonly<Record<string, string | number>>
  readonly value: number
}

// With every label in `sharedLabels`, prom-client's Registry reuses its text for that object (a WeakMap) on each
// scrape instead of escaping and joining 14 label sets per series: the histogram was most of a scrape's time.
const noLabels: Record<string, string | number> = {}

export class Histogram {
  readonly name: string
  readonly help: string
  readonly type = "histogram"
  readonly aggregator = "sum"
  readonly bounds: ReadonlyArray<number>
  readonly series = new Set<Series>()
  constructor(options: { readonly name: string; readonly help: string; readonly buckets: ReadonlyArray<number> }) {
    this.name = options.name
    this.help = options.help
    this.bounds = [...options.buckets].sort((a, b) => a - b)
  }
  add(labels: Readonly<Record<string, string>>): Series {
    const series = new Series(labels, this.bounds)
    this.series.add(series)
    return series
  }
  remove(series: Series): void {
    this.series.delete(series)
  }
  /** What prom-client's `Registry` reads at scrape time. */
  get() {
    const values: Array<Sample> = []
    const bucket = `${this.name}_bucket`
    const sum = `${this.name}_sum`
    const count = `${this.name}_count`
    for (const s of this.series) {
      // A series appears at its first observation, as prom-client's own labelled histograms do: otherwise every
      // idle breaker publishes 4 results x 14 zero lines, most of a scrape's size.
      if (s.count === 0) continue
      const lineLabels = s.lineLabels
      let cumulative = 0
      for (let i = 0; i < s.bounds.length; i++) {
        cumulative += s.counts[i]!
        values.push({ metricName: bucket, labels: noLabels, sharedLabels: lineLabels[i]!, value: cumulative })
      }
      const n = s.bounds.length
      values.push({ metricName: bucket, labels: noLabels, sharedLabels: lineLabels[n]!, value: s.count })
      values.push({ metricName: sum, labels: noLabels, sharedLabels: lineLabels[n + 1]!, value: s.sum })
      values.push({ metricName: count, labels: noLabels, sharedLabels: lineLabels[n + 1]!, value: s.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
  reset(): void {
    for (const s of this.series) {
      s.counts.fill(0)
      s.sum = 0
      s.count = 0
    }
  }
}
