/**
 * The series of the breaker metrics and their exposition writer.
 *
 * One `Circuit` per breaker name holds what the breaker does not: the counts
 * carried over from breakers of that name that left, the transitions counted,
 * and the rows of its duration histogram (in the shared `Durations` array).
 * It is also the breaker's listener, so wiring a breaker makes no closure.
 * Everything else is read from the breaker when Prometheus scrapes.
 *
 * A scrape writes the six metrics in one pass over the circuits. The label
 * text of every line is prepared once (per metric, result and bucket); what a
 * scrape adds per line is the breaker's name, the value and the joins.
 *
 * @internal
 */
import type { CircuitBreaker } from "@neural-hive/resilience"
import * as Text from "./exposition.ts"
import type { Durations } from "./histogram.ts"
import { type StateLabel, stateLabel, stateValue } from "./labels.ts"

/** @internal */
export type Result = CircuitBreaker.CallOutcome

/** Every call ends as exactly one of these, in this order in the exposition. @internal */
export const results: ReadonlyArray<Result> = ["success", "failure", "slow", "ignored", "rejected"]

/** The results that ran, so have a duration, in the order of the histogram's series. */
const timedResults = ["success", "failure", "slow", "ignored"] as const

/** The metrics written here; the keys of `Metrics.names`. @internal */
export type Key = "state" | "failures" | "trips" | "calls" | "transitions" | "duration"

/** @internal */
export const names = {
  state: "circuit_breaker_state",
  failures: "circuit_breaker_failures_total",
  trips: "circuit_breaker_trips_total",
  calls: "circuit_breaker_calls_total",
  transitions: "circuit_breaker_transitions_total",
  duration: "circuit_breaker_call_duration_seconds"
} as const satisfies Record<Key, string>

const states: ReadonlyArray<CircuitBreaker.State> = ["Closed", "Open", "HalfOpen"]
const stateIndex: Record<CircuitBreaker.State, number> = { Closed: 0, Open: 1, HalfOpen: 2 }
/** The cells of `Circuit.transitions`: from × to, each over CLOSED, OPEN, HALF_OPEN. */
const cells: ReadonlyArray<{ readonly from: StateLabel; readonly to: StateLabel }> = states.flatMap((from) =>
  states.map((to) => ({ from: stateLabel[from], to: stateLabel[to] }))
)

/** The counters of a circuit, in the order of `Circuit.offsets`: failures, trips, then calls by `results`. */
const COUNTERS = 2 + results.length

const zeros = (length: number): Array<number> => Array.from({ length }, () => 0)

/**
 * A breaker name's series: its counts, transitions and duration rows, and the listener of the breaker that has
 * the name now.
 *
 * @internal
 */
export class Circuit implements CircuitBreaker.Listener {
  readonly name: string
  /** The `circuit` label's value as written (escaped; a breaker name needs none, so it is the name itself). */
  readonly label: string
  readonly durations: Durations | undefined
  /** The breaker of this name wired now; `undefined` once it left. */
  breaker: CircuitBreaker.CircuitBreaker | undefined = undefined
  /** Added to the breaker's totals (`COUNTERS`): those of breakers of this name that left, less any reset. */
  offsets: Array<number> | undefined = undefined
  /** Transitions counted by `cells`; `undefined` before the first. */
  transitions: Array<number> | undefined = undefined
  /** The duration rows by result; -1 until the result's first observation. */
  success = -1
  failure = -1
  slow = -1
  ignored = -1

  constructor(name: string, durations: Durations | undefined) {
    this.name = name
    this.label = Text.escapeLabelValue(name)
    this.durations = durations
  }

  onTransition(transition: CircuitBreaker.Transition): void {
    const counts = this.transitions ??= zeros(cells.length)
    counts[stateIndex[transition.from] * states.length + stateIndex[transition.to]]!++
  }

  /** The duration row of `result`, made at its first observation. */
  row(result: (typeof timedResults)[number]): number {
    const row = this[result]
    return row >= 0 ? row : (this[result] = this.durations!.allocate())
  }

  /** Its rows go back to the shared array: the series leave the exposition. */
  releaseRows(): void {
    for (const result of timedResults) {
      if (this[result] >= 0) this.durations!.release(this[result])
      this[result] = -1
    }
  }
}

/** A `Circuit` that also times every call, for the duration histogram. @internal */
export class TimedCircuit extends Circuit {
  onCall(outcome: CircuitBreaker.CallOutcome, durationMillis: number): void {
    // A rejection ran nothing; a call admitted before this listener was not timed (NaN).
    if (outcome === "rejected" || Number.isNaN(durationMillis)) return
    // The row by a field read per result (on the call path: no lookup by a computed key).
    const row = outcome === "success"
      ? this.success
      : outcome === "failure"
      ? this.failure
      : outcome === "slow"
      ? this.slow
      : this.ignored
    this.durations!.observe(row >= 0 ? row : this.row(outcome), durationMillis / 1000)
  }
}

/** The breaker's state value (-1: no breaker has the name now), and its counters in `values`. */
const read = (circuit: Circuit, values: Array<number>): number => {
  const breaker = circuit.breaker
  const offsets = circuit.offsets
  // The state first: reading it ends an elapsed open period, and that transition is counted before it is written.
  const state = breaker === undefined ? -1 : stateValue[breaker.view.state()]
  const t = breaker?.view.totals()
  values[0] = t === undefined ? 0 : t.failures
  values[1] = t === undefined ? 0 : t.trips
  values[2] = t === undefined ? 0 : t.successes
  values[3] = t === undefined ? 0 : t.failures - t.slow
  values[4] = t === undefined ? 0 : t.slow
  values[5] = t === undefined ? 0 : t.ignored
  values[6] = t === undefined ? 0 : t.rejected
  if (offsets !== undefined) { for (let i = 0; i < COUNTERS; i++) values[i]! += offsets[i]! }
  return state
}

/** The label text around a breaker's name in each line, for one set of default labels. */
interface Prepared {
  readonly defaults: Text.DefaultLabels | undefined
  /** Per metric: a new line, the name and the labels up to the `circuit` value's opening quote. */
  readonly heads: Record<Key | "bucket" | "sum" | "count", string>
  /** After the `circuit` value of a state, failures or trips line, up to the value. */
  readonly tail: string
  readonly calls: ReadonlyArray<string>
  readonly transitions: ReadonlyArray<string>
  /** By timed result, then bucket (`+Inf` last). */
  readonly buckets: ReadonlyArray<ReadonlyArray<string>>
  /** By timed result: after the `circuit` value of a `_sum` or `_count` line. */
  readonly totals: ReadonlyArray<string>
}

const prepare = (service: string, bounds: ReadonlyArray<number>, defaults: Text.DefaultLabels | undefined) => {
  const head = (name: string) => `\n${name}{service="${service}",circuit="`
  const extra = (...labels: ReadonlyArray<string>) =>
    Text.defaultLabelsText(defaults, ["service", "circuit", ...labels])
  const withResult = extra("result")
  const withBucket = extra("result", "le")
  const withTransition = extra("from", "to")
  const prepared: Prepared = {
    defaults,
    heads: {
      state: head(names.state),
      failures: head(names.failures),
      trips: head(names.trips),
      calls: head(names.calls),
      transitions: head(names.transitions),
      duration: head(names.duration),
      bucket: head(`${names.duration}_bucket`),
      sum: head(`${names.duration}_sum`),
      count: head(`${names.duration}_count`)
    },
    tail: `"${extra()}} `,
    calls: results.map((result) => `",result="${result}"${withResult}} `),
    transitions: cells.map(({ from, to }) => `",from="${from}",to="${to}"${withTransition}} `),
    buckets: timedResults.map((result) =>
      [...bounds.map(Text.formatValue), "+Inf"].map((le) => `",result="${result}",le="${le}"${withBucket}} `)
    ),
    totals: timedResults.map((result) => `",result="${result}"${withResult}} `)
  }
  return prepared
}

const helps: Record<Key, string> = {
  state: "Circuit breaker state: 0 CLOSED, 1 OPEN, 2 HALF_OPEN",
  failures: "Calls the circuit breaker counted as failures (slow calls included)",
  trips: "Times the circuit breaker opened",
  calls: "Calls through the circuit breaker by result: success, failure, slow, ignored, rejected",
  transitions: "Circuit breaker state transitions by from and to state (closed, open, half_open)",
  duration: "Duration of the calls the circuit breaker let through, in seconds, by result"
}

const types: Record<Key, "gauge" | "counter" | "histogram"> = {
  state: "gauge",
  failures: "counter",
  trips: "counter",
  calls: "counter",
  transitions: "counter",
  duration: "histogram"
}

/**
 * One breaker metric as prom-client's `Registry` holds it: `get()` for `getMetricsAsJSON` (and any registry
 * that does not ask for `renderText`), `renderText` for the exposition, `reset()` for `resetMetrics`.
 *
 * @internal
 */
export class Family implements Text.Rendered {
  /** prom-client renames a counter without `_total` while writing OpenMetrics; its samples keep the suffix. */
  name: string
  readonly help: string
  readonly type: "gauge" | "counter" | "histogram"
  readonly aggregator = "sum"
  readonly key: Key
  readonly series: BreakerSeries

  constructor(key: Key, series: BreakerSeries) {
    this.key = key
    this.series = series
    this.name = names[key]
    this.help = helps[key]
    this.type = types[key]
  }

  /** A promise, as prom-client's own metrics give it. */
  get() {
    const values = this.series.collect()[this.key]
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values })
  }

  reset(): void {
    this.series.reset(this.key)
  }

  [Text.renderText](context: Text.RenderContext): string {
    return Text.header(this.name, this.help, this.type) + this.series.render(context.defaultLabels)[this.key]
  }
}

/** The sample lines of each metric, each line after a `\n` (the HELP and TYPE lines go before). @internal */
export type Lines = Record<Key, string>

/** A sample as prom-client's `get()` gives it. @internal */
export interface Sample {
  readonly metricName?: string
  readonly labels: Readonly<Record<string, string | number>>
  readonly value: number
}

/**
 * Every breaker name's series in one metrics layer, and their rendering, once per scrape.
 *
 * @internal
 */
export class BreakerSeries {
  readonly service: string
  readonly durations: Durations | undefined
  /** By breaker name, in the order they were first wired. */
  readonly circuits = new Map<string, Circuit>()
  private prepared: Prepared | undefined
  private lines: { readonly defaults: Text.DefaultLabels | undefined; readonly lines: Lines } | undefined
  private samples: Record<Key, Array<Sample>> | undefined

  constructor(service: string, durations: Durations | undefined) {
    this.service = service
    this.durations = durations
  }

  /** The series of `name`, made the first time a breaker of that name is wired. */
  circuit(name: string): Circuit {
    let circuit = this.circuits.get(name)
    if (circuit === undefined) {
      circuit = this.durations === undefined ? new Circuit(name, undefined) : new TimedCircuit(name, this.durations)
      this.circuits.set(name, circuit)
    }
    return circuit
  }

  /** The breaker of `circuit` left: its counts carry over to the next breaker of the name; its state and durations go. */
  leave(circuit: Circuit): void {
    const values = zeros(COUNTERS)
    read(circuit, values)
    circuit.offsets = values
    circuit.breaker = undefined
    circuit.releaseRows()
  }

  /** The counters of metric `key` back to zero from now (prom-client's `resetMetrics`); the state has nothing to reset. */
  reset(key: Key): void {
    this.lines = undefined
    this.samples = undefined
    if (key === "duration") return this.durations?.reset()
    for (const circuit of this.circuits.values()) {
      if (key === "transitions") {
        circuit.transitions = undefined
      } else if (key !== "state") {
        const values = zeros(COUNTERS)
        read(circuit, values)
        const offsets = circuit.offsets ?? zeros(COUNTERS)
        const [from, to] = key === "calls" ? [2, COUNTERS] : key === "failures" ? [0, 1] : [1, 2]
        for (let i = from; i < to; i++) offsets[i]! -= values[i]!
        circuit.offsets = offsets
      }
    }
  }

  /** The sample lines of every metric now; one rendering serves every metric of one scrape. */
  render(defaults: Text.DefaultLabels | undefined): Lines {
    if (this.lines !== undefined && this.lines.defaults === defaults) return this.lines.lines
    if (this.prepared === undefined || this.prepared.defaults !== defaults) {
      this.prepared = prepare(Text.escapeLabelValue(this.service), this.durations?.bounds ?? [], defaults)
    }
    const lines = writeLines(this, this.prepared)
    this.lines = { defaults, lines }
    // A scrape asks for every metric in one synchronous step; the next one reads the breakers again.
    queueMicrotask(() => {
      this.lines = undefined
    })
    return lines
  }

  /** The samples of every metric now, as prom-client's `get()` gives them; one reading per scrape. */
  collect(): Record<Key, Array<Sample>> {
    if (this.samples !== undefined) return this.samples
    const samples = collectSamples(this)
    this.samples = samples
    queueMicrotask(() => {
      this.samples = undefined
    })
    return samples
  }
}

const writeLines = (series: BreakerSeries, p: Prepared): Lines => {
  const values = zeros(COUNTERS)
  const heads = p.heads
  let state = ""
  let failures = ""
  let trips = ""
  let calls = ""
  let transitions = ""
  let duration = ""
  for (const circuit of series.circuits.values()) {
    const label = circuit.label
    const value = read(circuit, values)
    if (value >= 0) state += heads.state + label + p.tail + value
    failures += heads.failures + label + p.tail + values[0]
    trips += heads.trips + label + p.tail + values[1]
    // The start of a line, up to the circuit's name, joined once for the lines that share it.
    const callsHead = heads.calls + label
    for (let r = 0; r < results.length; r++) calls += callsHead + p.calls[r] + values[2 + r]
    const counts = circuit.transitions
    if (counts !== undefined) {
      const transitionsHead = heads.transitions + label
      for (let i = 0; i < counts.length; i++) {
        if (counts[i]! > 0) transitions += transitionsHead + p.transitions[i] + counts[i]
      }
    }
    if (series.durations !== undefined) duration += writeDurations(series.durations, circuit, p)
  }
  return { state, failures, trips, calls, transitions, duration }
}

/** A circuit's histogram lines: a series appears at its first observation, as prom-client's own histograms do. */
const writeDurations = (durations: Durations, circuit: Circuit, p: Prepared): string => {
  const data = durations.data
  const n = durations.bounds.length
  const label = circuit.label
  let text = ""
  for (let r = 0; r < timedResults.length; r++) {
    const row = circuit[timedResults[r]!]
    if (row < 0) continue
    const base = row * durations.stride
    const count = data[base + n + 1]!
    if (count === 0) continue
    const buckets = p.buckets[r]!
    const bucketHead = p.heads.bucket + label
    let cumulative = 0
    for (let i = 0; i < n; i++) {
      cumulative += data[base + i]!
      text += bucketHead + buckets[i] + cumulative
    }
    text += bucketHead + buckets[n] + count
    text += p.heads.sum + label + p.totals[r] + Text.formatValue(data[base + n]!)
    text += p.heads.count + label + p.totals[r] + count
  }
  return text
}

const collectSamples = (series: BreakerSeries): Record<Key, Array<Sample>> => {
  const out: Record<Key, Array<Sample>> = {
    state: [],
    failures: [],
    trips: [],
    calls: [],
    transitions: [],
    duration: []
  }
  const values = zeros(COUNTERS)
  const service = series.service
  for (const circuit of series.circuits.values()) {
    const labels = { service, circuit: circuit.name }
    const value = read(circuit, values)
    if (value >= 0) out.state.push({ labels, value })
    out.failures.push({ labels, value: values[0]! })
    out.trips.push({ labels, value: values[1]! })
    results.forEach((result, r) => out.calls.push({ labels: { ...labels, result }, value: values[2 + r]! }))
    circuit.transitions?.forEach((count, i) => {
      if (count > 0) out.transitions.push({ labels: { ...labels, ...cells[i]! }, value: count })
    })
    if (series.durations !== undefined) collectDurations(series.durations, circuit, labels, out.duration)
  }
  return out
}

const collectDurations = (
  durations: Durations,
  circuit: Circuit,
  labels: { readonly service: string; readonly circuit: string },
  out: Array<Sample>
): void => {
  const data = durations.data
  const n = durations.bounds.length
  const name = names.duration
  timedResults.forEach((result, r) => {
    const row = circuit[timedResults[r]!]
    const base = row * durations.stride
    if (row < 0 || data[base + n + 1] === 0) return
    const series = { ...labels, result }
    let cumulative = 0
    durations.bounds.forEach((le, i) => {
      cumulative += data[base + i]!
      out.push({ metricName: `${name}_bucket`, labels: { ...series, le }, value: cumulative })
    })
    out.push({ metricName: `${name}_bucket`, labels: { ...series, le: "+Inf" }, value: data[base + n + 1]! })
    out.push({ metricName: `${name}_sum`, labels: series, value: data[base + n]! })
    out.push({ metricName: `${name}_count`, labels: series, value: data[base + n + 1]! })
  })
}
