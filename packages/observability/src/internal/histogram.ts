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
  sum = 0
  count = 0
  constructor(labels: Readonly<Record<string, string>>, bounds: ReadonlyArray<number>) {
    this.labels = labels
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length)
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
  readonly value: number
}

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
    for (const s of this.series) {
      let cumulative = 0
      for (let i = 0; i < s.bounds.length; i++) {
        cumulative += s.counts[i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: s.bounds[i]! }, value: cumulative })
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: s.count })
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum })
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count })
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
