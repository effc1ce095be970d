/**
 * The pure state machine, driven directly with explicit times (no Effect).
 */
import { describe, expect, it } from "@effect/vitest"
import { TripPolicy } from "@neural-hive/resilience"
import { Machine } from "../support/resilienceInternals.ts"

const settings = (overrides: Partial<Machine.Settings> = {}): Machine.Settings => ({
  policy: TripPolicy.consecutive(2),
  permits: 1,
  successThreshold: 1,
  recoveryMillis: 1_000,
  maxOpenMillis: 4_000,
  ...overrides
})

const recorder = () => {
  const transitions: Array<Machine.Transition> = []
  const opened: Array<[number, number]> = []
  const hooks: Machine.Hooks = {
    onTransition: (t) => transitions.push(t),
    onOpen: (generation, duration) => opened.push([generation, duration])
  }
  return { transitions, opened, hooks }
}

const tripped = (s = settings()) => {
  const r = recorder()
  const m = Machine.make(s, 0, "Normal", r.hooks)
  for (let i = 0; i < 2; i++) Machine.complete(m, Machine.admit(m, 0), "failure", 0)
  return { m, ...r }
}

describe("Machine", () => {
  it("starts CLOSED at generation 0 (or OPEN when forced); a given cell is used as it is, not initialised again", () => {
    expect(Machine.make(settings(), 5).phase.current).toEqual({
      _tag: "Closed",
      mode: "Normal",
      generation: 0,
      since: 5
    })
    const start = Machine.initialPhase(3)
    const cell = { current: start }
    const m = Machine.make(settings(), 5, "Normal", undefined, cell)
    expect(m.phase).toBe(cell)
    expect(cell.current).toBe(start)
    expect(Machine.state(Machine.make(settings(), 0, "ForcedOpen"))).toBe("Open")
    expect(Machine.retryAfter(Machine.make(settings(), 0, "ForcedOpen"), 0)).toBe(Infinity)
  })

  it("opens after the policy trips, reporting the transition and the open duration", () => {
    const { m, opened, transitions } = tripped()
    expect(m.phase.current).toMatchObject({ _tag: "Open", openings: 1, until: 1_000, generation: 1 })
    expect(transitions).toEqual([{
      from: "Closed",
      to: "Open",
      mode: "Normal",
      reason: "Tripped",
      at: 0,
      failures: 2,
      retryAfterMillis: 1_000
    }])
    expect(opened).toEqual([[1, 1_000]])
  })

  it("OPEN rejects until its period ends; the first caller after it takes the only permit", () => {
    const { m } = tripped()
    expect(Machine.admit(m, 999)).toBe(Machine.REJECTED)
    const generation = Machine.admit(m, 1_000)
    expect(generation).toBe(2)
    expect(m.phase.current).toMatchObject({ _tag: "HalfOpen", admitted: 1, successes: 0 })
    expect(Machine.admit(m, 1_000)).toBe(Machine.REJECTED)
  })

  it("expire moves OPEN to HALF_OPEN only for its own generation, once the period ended", () => {
    const { m } = tripped()
    Machine.expire(m, 1, 500)
    expect(Machine.state(m)).toBe("Open")
    Machine.expire(m, 0, 1_000)
    expect(Machine.state(m)).toBe("Open")
    Machine.expire(m, 1, 1_000)
    expect(Machine.state(m)).toBe("HalfOpen")
  })

  it("a failed probe reopens with the doubled period, capped; a successful one closes and resets growth", () => {
    const { m, opened } = tripped()
    for (const at of [1_000, 3_000, 7_000, 11_000]) {
      Machine.complete(m, Machine.admit(m, at), "failure", at)
    }
    expect(opened.map(([, d]) => d)).toEqual([1_000, 2_000, 4_000, 4_000, 4_000])
    expect(Machine.failures(m, 11_000)).toBe(6)
    Machine.complete(m, Machine.admit(m, 15_000), "success", 15_000)
    expect(m.phase.current).toMatchObject({ _tag: "Closed", mode: "Normal" })
    expect(Machine.failures(m, 15_000)).toBe(0)
    for (let i = 0; i < 2; i++) Machine.complete(m, Machine.admit(m, 16_000), "failure", 16_000)
    expect(m.phase.current).toMatchObject({ _tag: "Open", openings: 1, until: 17_000 })
  })

  it("an ignored probe gives its permit back; a late result of an older generation changes nothing", () => {
    const { m } = tripped()
    const probe = Machine.admit(m, 1_000)
    Machine.complete(m, probe, "ignored", 1_000)
    expect(m.phase.current).toMatchObject({ _tag: "HalfOpen", admitted: 0 })
    const again = Machine.admit(m, 1_000)
    expect(again).toBe(probe)
    Machine.complete(m, 0, "success", 1_000) // from the CLOSED generation
    expect(Machine.state(m)).toBe("HalfOpen")
    Machine.complete(m, again, "success", 1_000)
    expect(Machine.state(m)).toBe("Closed")
  })

  it("successThreshold counts successful probes among the permits", () => {
    const { m } = tripped(settings({ permits: 2, successThreshold: 2 }))
    const a = Machine.admit(m, 1_000)
    const b = Machine.admit(m, 1_000)
    expect(Machine.admit(m, 1_000)).toBe(Machine.REJECTED)
    Machine.complete(m, a, "success", 1_000)
    expect(m.phase.current).toMatchObject({ _tag: "HalfOpen", successes: 1 })
    Machine.complete(m, b, "slow", 1_000)
    expect(Machine.state(m)).toBe("Open")
  })

  it("manual controls change the state once and report nothing when repeated", () => {
    const r = recorder()
    const m = Machine.make(settings(), 0, "Normal", r.hooks)
    expect(Machine.forceOpen(m, 1)).toBe(true)
    expect(Machine.forceOpen(m, 2)).toBe(false)
    expect(Machine.admit(m, 1e12)).toBe(Machine.REJECTED)
    expect(Machine.disable(m, 3)).toBe(true)
    expect(Machine.disable(m, 4)).toBe(false)
    Machine.complete(m, Machine.admit(m, 5), "failure", 5)
    Machine.complete(m, Machine.admit(m, 5), "failure", 5)
    expect(Machine.state(m)).toBe("Closed") // disabled: outcomes never trip
    expect(Machine.reset(m, 6)).toBe(true)
    expect(Machine.reset(m, 7)).toBe(false)
    expect(r.transitions.map((t) => `${t.from}->${t.to}:${t.reason}`)).toEqual([
      "Closed->Open:ForcedOpen",
      "Open->Closed:Disabled",
      "Closed->Closed:Reset"
    ])
  })

  it("a schedule replaces the doubling", () => {
    const { opened } = tripped(settings({ schedule: (n) => n * 100 }))
    expect(opened).toEqual([[1, 100]])
  })

  it("retryAfter counts down to 0 and never below; it is 0 outside OPEN", () => {
    const { m } = tripped()
    expect(Machine.retryAfter(m, 400)).toBe(600)
    expect(Machine.retryAfter(m, 5_000)).toBe(0) // period over, not yet expired
    expect(Machine.retryAfter(Machine.make(settings(), 0), 0)).toBe(0)
  })

  it("mode and failures read the current phase and counter", () => {
    const m = Machine.make(settings(), 0, "Disabled")
    expect(Machine.mode(m)).toBe("Disabled")
    expect(Machine.state(m)).toBe("Closed")
    const { m: open } = tripped()
    expect(Machine.mode(open)).toBe("Normal")
    expect(Machine.failures(open, 0)).toBe(2)
  })

  it("forcing open keeps the count of openings in a row; from CLOSED it is 0", () => {
    const { m } = tripped()
    Machine.forceOpen(m, 10)
    expect(m.phase.current).toMatchObject({ _tag: "Open", mode: "ForcedOpen", openings: 1, until: Infinity, since: 10 })
    const closed = Machine.make(settings(), 0)
    Machine.forceOpen(closed, 0)
    expect(closed.phase.current).toMatchObject({ openings: 0 })
    expect(Machine.mode(closed)).toBe("ForcedOpen")
  })

  it("a forced-open breaker never expires and ignores results; reset closes it with counts forgotten", () => {
    const r = recorder()
    const m = Machine.make(settings(), 0, "Normal", r.hooks)
    Machine.complete(m, Machine.admit(m, 0), "failure", 0)
    Machine.forceOpen(m, 1)
    const generation = m.phase.current.generation
    Machine.expire(m, generation, Number.MAX_SAFE_INTEGER)
    Machine.complete(m, generation, "failure", 2)
    expect(Machine.state(m)).toBe("Open")
    expect(r.opened).toEqual([]) // forcing open starts no open period
    expect(Machine.failures(m, 2)).toBe(1)
    expect(Machine.reset(m, 3)).toBe(true)
    expect(Machine.failures(m, 3)).toBe(0)
    expect(m.phase.current).toEqual({ _tag: "Closed", mode: "Normal", generation: generation + 1, since: 3 })
  })

  it("disabling a breaker that is OPEN or HALF_OPEN closes it; reset of a closed one forgets the failures", () => {
    const { m } = tripped()
    expect(Machine.disable(m, 5)).toBe(true)
    expect(m.phase.current).toMatchObject({ _tag: "Closed", mode: "Disabled", since: 5 })
    expect(Machine.failures(m, 5)).toBe(0)
    const closed = Machine.make(settings(), 0)
    Machine.complete(closed, Machine.admit(closed, 0), "failure", 0)
    expect(Machine.reset(closed, 1)).toBe(false)
    expect(Machine.failures(closed, 1)).toBe(0)
    expect(closed.phase.current.generation).toBe(0) // no transition
  })

  it("HALF_OPEN counts successes below the threshold and admits no more than permits", () => {
    const { m } = tripped(settings({ permits: 3, successThreshold: 3 }))
    const probes = [Machine.admit(m, 1_000), Machine.admit(m, 1_000), Machine.admit(m, 1_000)]
    expect(Machine.admit(m, 1_000)).toBe(Machine.REJECTED)
    Machine.complete(m, probes[0]!, "success", 1_000)
    Machine.complete(m, probes[1]!, "success", 1_000)
    expect(m.phase.current).toMatchObject({ _tag: "HalfOpen", admitted: 3, successes: 2 })
    Machine.complete(m, probes[2]!, "success", 1_001)
    expect(m.phase.current).toMatchObject({ _tag: "Closed", since: 1_001 })
  })

  it("an ignored outcome while CLOSED leaves the count alone", () => {
    const m = Machine.make(settings(), 0)
    Machine.complete(m, Machine.admit(m, 0), "failure", 0)
    Machine.complete(m, Machine.admit(m, 0), "ignored", 0)
    expect(Machine.failures(m, 0)).toBe(1)
    Machine.complete(m, Machine.admit(m, 0), "slow", 0)
    expect(Machine.state(m)).toBe("Open") // a slow call counts as a failure
  })

  it("a result admitted before a forced open and a reset changes nothing after them", () => {
    const m = Machine.make(settings(), 0)
    const late = Machine.admit(m, 0)
    Machine.forceOpen(m, 1)
    Machine.reset(m, 2)
    Machine.complete(m, late, "failure", 3)
    expect(Machine.failures(m, 3)).toBe(0)
  })

  it("the initial phase is CLOSED and Normal unless told otherwise", () => {
    expect(Machine.initialPhase(7)).toEqual({ _tag: "Closed", mode: "Normal", generation: 0, since: 7 })
    expect(Machine.initialPhase(7, "Disabled")).toMatchObject({ _tag: "Closed", mode: "Disabled" })
  })

  it("each transition names its reason", () => {
    const { m, transitions } = tripped()
    Machine.complete(m, Machine.admit(m, 1_000), "failure", 1_000)
    Machine.expire(m, m.phase.current.generation, 3_000)
    Machine.complete(m, Machine.admit(m, 3_000), "success", 3_000)
    expect(transitions.map((t) => `${t.from}->${t.to}:${t.reason}`)).toEqual([
      "Closed->Open:Tripped",
      "Open->HalfOpen:OpenElapsed",
      "HalfOpen->Open:ProbeFailed",
      "Open->HalfOpen:OpenElapsed",
      "HalfOpen->Closed:ProbesSucceeded"
    ])
  })

  it("reset closes an OPEN or HALF_OPEN breaker and reports it", () => {
    const { m, transitions } = tripped()
    expect(Machine.reset(m, 10)).toBe(true)
    expect(m.phase.current).toMatchObject({ _tag: "Closed", mode: "Normal", since: 10 })
    const { m: probing } = tripped()
    Machine.expire(probing, 1, 1_000)
    expect(Machine.reset(probing, 1_000)).toBe(true)
    expect(Machine.state(probing)).toBe("Closed")
    expect(transitions.at(-1)).toMatchObject({ from: "Open", to: "Closed", reason: "Reset" })
  })
})
