/**
 * The call-duration histograms of every breaker, in one `Float64Array`.
 *
 * A row is one labelled series (a breaker and a result): the count of each
 * bucket (not cumulative: the calls at most that bound and above the one
 * before), then the sum, then the count. A row is handed out at the series'
 * first observation, so an idle breaker or an unseen result costs nothing,
 * and a released row is reused. Observing is a few writes into the array: no
 * label set is hashed and nothing is allocated per call.
 *
 * @internal
 */
export class Durations {
  /** The upper bounds of the buckets, ascending (`+Inf` is the count). */
  readonly bounds: ReadonlyArray<number>
  /** Numbers per row: one per bound, then the sum, then the count. */
  readonly stride: number
  /** Every row, `stride` numbers each; replaced by a larger copy as rows are added. */
  data: Float64Array
  /** Rows handed out or released so far: the next new row. */
  private rows = 0
  private readonly free: Array<number> = []

  constructor(buckets: ReadonlyArray<number>) {
    this.bounds = buckets.toSorted((a, b) => a - b)
    this.stride = this.bounds.length + 2
    this.data = new Float64Array(this.stride * 4)
  }

  /** A row at zero, reused if one was released. */
  allocate(): number {
    const reused = this.free.pop()
    if (reused !== undefined) {
      this.data.fill(0, reused * this.stride, (reused + 1) * this.stride)
      return reused
    }
    const row = this.rows++
    if (this.rows * this.stride > this.data.length) {
      // Half again as large: a slab about a third larger than its rows on average, copied rarely.
      const grown = new Float64Array(Math.ceil(this.rows * 1.5) * this.stride)
      grown.set(this.data)
      this.data = grown
    }
    return row
  }

  /** The row is no longer read or written; a later `allocate` may hand it out again. */
  release(row: number): void {
    this.free.push(row)
  }

  /** Records one duration, in seconds, in `row`. */
  observe(row: number, seconds: number): void {
    const bounds = this.bounds
    const data = this.data
    const base = row * this.stride
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]!) {
        data[base + i]!++
        break
      }
    }
    data[base + bounds.length]! += seconds
    data[base + bounds.length + 1]!++
  }

  /** Every row back to zero (prom-client's `resetMetrics`). */
  reset(): void {
    this.data.fill(0)
  }
}
