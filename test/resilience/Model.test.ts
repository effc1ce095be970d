/**
 * Model-based property test: random sequences of calls and clock advances run
 * against the real breaker (under TestClock) and against a small reference
 * model written here, independently of the machine (internal/machine.ts). After every step the
 * observable state, the rejection and the open duration must agree.
 */
import { describe, expect, it } from "@effect/vitest"
import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
import { Deferred, Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"

type Command =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Failure" }
  | { readonly _tag: "Ignored" }
  | { readonly _tag: "Interrupt" }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "Hold" }
  | { readonly _tag: "Release"; readonly outcome: "success" | "failure" | "ignored" | "interrupt" }

const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.constant({ _tag: "Success" } as const), weight: 3 },
  { arbitrary: fc.constant({ _tag: "Failure" } as const), weight: 4 },
  { arbitrary: fc.constant({ _tag: "Ignored" } as const), weight: 1 },
  { arbitrary: fc.constant({ _tag: "Interrupt" } as const), weight: 1 },
  { arbitrary: fc.integer({ min: 1, max: 5000 }).map((millis) => ({ _tag: "Advance", millis }) as const), weight: 3 },
  { arbitrary: fc.constant({ _tag: "Hold" } as const), weight: 2 },
  {
    arbitrary: fc.constantFrom("success", "failure", "ignored", "interrupt").map((outcome) =>
      ({ _tag: "Release", outcome }) as const
    ),
    weight: 2
  }
)

interface Config {
  readonly failMax: number
  readonly recovery: number
  readonly maxOpen: number
  readonly permits: number
  readonly successThreshold: number
}

const config: fc.Arbitrary<Config> = fc
  .record({
    failMax: fc.integer({ min: 1, max: 4 }),
    recovery: fc.integer({ min: 1, max: 4 }).map((s) => s * 1000),
    growth: fc.integer({ min: 0, max: 3 }),
    permits: fc.integer({ min: 1, max: 3 }),
    threshold: fc.integer({ min: 1, max: 3 })
  })
  .map(({ failMax, growth, permits, recovery, threshold }) => ({
    failMax,
    recovery,
    maxOpen: recovery * 2 ** growth,
    permits,
    successThreshold: Math.min(threshold, permits)
  }))

/** The reference: the semantics of docs/circuit-breaker.md, as plainly as possible. */
class Model {
  state: "Closed" | "Open" | "HalfOpen" = "Closed"
  epoch = 0
  consecutive = 0
  openings = 0
  openUntil = 0
  probes = 0
  probeSuccesses = 0
  now = 0
  readonly c: Config
  constructor(c: Config) {
    this.c = c
  }

  private enter(state: Model["state"]) {
    this.state = state
    this.epoch++
    this.probes = 0
    this.probeSuccesses = 0
  }
  private open() {
    this.openings++
    this.openUntil = this.now + Math.min(this.c.recovery * 2 ** (this.openings - 1), this.c.maxOpen)
    this.enter("Open")
  }
  advance(millis: number) {
    this.now += millis
    if (this.state === "Open" && this.now >= this.openUntil) this.enter("HalfOpen")
  }
  /** An admission ticket (the epoch), or undefined when rejected. */
  admit(): number | undefined {
    if (this.state === "Open") return undefined
    if (this.state === "HalfOpen") {
      if (this.probes >= this.c.permits) return undefined
      this.probes++
    }
    return this.epoch
  }
  settle(ticket: number, outcome: "success" | "failure" | "ignored") {
    if (ticket !== this.epoch) return
    if (this.state === "Closed") {
      if (outcome === "success") this.consecutive = 0
      if (outcome === "failure" && ++this.consecutive >= this.c.failMax) this.open()
      return
    }
    if (outcome === "ignored") this.probes--
    else if (outcome === "failure") this.open()
    else if (++this.probeSuccesses >= this.c.successThreshold) {
      this.consecutive = 0
      this.openings = 0
      this.enter("Closed")
    }
  }
}

class Counted {
  readonly _tag = "Counted"
}
class NotCounted {
  readonly _tag = "NotCounted"
}

const run = (c: Config, commands: ReadonlyArray<Command>) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      name: "model",
      failMax: c.failMax,
      recoveryTimeout: c.recovery,
      maxOpenDuration: c.maxOpen,
      halfOpen: { permits: c.permits, successThreshold: c.successThreshold },
      isFailure: (e) => e instanceof Counted
    })
    const model = new Model(c)
    const held: Array<{ fiber: Fiber.Fiber<unknown, unknown>; gate: Deferred.Deferred<void, Counted | NotCounted> }> =
      []
    const heldTickets: Array<number> = []

    const call = (effect: Effect.Effect<unknown, Counted | NotCounted>, outcome: "success" | "failure" | "ignored") =>
      Effect.gen(function*() {
        const ticket = model.admit()
        const exit = yield* Effect.exit(effect.pipe(withBreaker(breaker)))
        if (ticket === undefined) {
          expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/CircuitBreakerError/)
        } else {
          model.settle(ticket, outcome)
        }
      })

    for (const cmd of commands) {
      switch (cmd._tag) {
        case "Success":
          yield* call(Effect.void, "success")
          break
        case "Failure":
          yield* call(Effect.fail(new Counted()), "failure")
          break
        case "Ignored":
          yield* call(Effect.fail(new NotCounted()), "ignored")
          break
        case "Interrupt": {
          const ticket = model.admit()
          const fiber = yield* Effect.forkChild(Effect.never.pipe(withBreaker(breaker)), { startImmediately: true })
          yield* Fiber.interrupt(fiber)
          if (ticket !== undefined) model.settle(ticket, "ignored")
          break
        }
        case "Advance":
          yield* TestClock.adjust(cmd.millis)
          model.advance(cmd.millis)
          break
        case "Hold": {
          const ticket = model.admit()
          if (ticket === undefined) {
            const exit = yield* Effect.exit(Effect.void.pipe(withBreaker(breaker)))
            expect(Exit.isFailure(exit)).toBe(true)
            break
          }
          const gate = yield* Deferred.make<void, Counted | NotCounted>()
          const fiber = yield* Effect.forkChild(Deferred.await(gate).pipe(withBreaker(breaker)), {
            startImmediately: true
          })
          held.push({ fiber, gate })
          heldTickets.push(ticket)
          break
        }
        case "Release": {
          const next = held.shift()
          const ticket = heldTickets.shift()
          if (next === undefined || ticket === undefined) break
          if (cmd.outcome === "interrupt") {
            yield* Fiber.interrupt(next.fiber)
            model.settle(ticket, "ignored")
            break
          }
          yield* Deferred.done(
            next.gate,
            cmd.outcome === "success"
              ? Exit.void
              : Exit.fail(cmd.outcome === "failure" ? new Counted() : new NotCounted())
          )
          yield* Fiber.await(next.fiber)
          model.settle(ticket, cmd.outcome)
          break
        }
      }
      const snapshot = yield* breaker.snapshot
      expect({ cmd: cmd._tag, state: snapshot.state }).toEqual({ cmd: cmd._tag, state: model.state })
      if (model.state === "Open") expect(snapshot.retryAfterMillis).toBe(model.openUntil - model.now)
      if (model.state === "Closed") expect(snapshot.failures).toBe(model.consecutive)
    }
    for (const h of held) yield* Fiber.interrupt(h.fiber)
  }).pipe(Effect.scoped, Effect.provide(Layer.fresh(TestClock.layer())))

describe("CircuitBreaker: model-based", () => {
  it("agrees with the reference model on random command sequences", async () => {
    await fc.assert(
      fc.asyncProperty(
        config,
        fc.array(command, { minLength: 1, maxLength: 60 }),
        (c, commands) => Effect.runPromise(run(c, commands))
      ),
      { numRuns: 300 }
    )
  })
})
