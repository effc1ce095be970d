/**
 * The breaker's fast path: the only module that uses Effect's private runtime
 * fields (the fiber's `_stack`, `interruptible`, `_interruptedCause` and
 * `succeedWith`, and the `${Effect.TypeId}/evaluate`-style protocol keys).
 * Any 4.x release may change their meaning without changing their shape, so
 * the fast path runs only on the exact Effect versions listed below, and only
 * when `NH_BREAKER_PATH` does not ask for the public path. Otherwise
 * `breaker.ts` runs every call through `Effect.suspend` and
 * `Effect.onExitPrimitive`, with the same results.
 *
 * The decision is taken once, when this module loads.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
// The installed copy's own package.json: effect exports it, and its `version` is immutable (unlike `effect/Version`).
import effectPackage from "effect/package.json" with { type: "json" }
import type { OnSettled } from "../CircuitBreaker.ts"
import type { CircuitBreakerError, CircuitBreakerTimeoutError } from "../CircuitBreakerError.ts"
import type { BreakerImpl, Classifier } from "./breaker.ts"

/**
 * The exact `effect` versions the fast path has been tested on. To add one:
 * install it, run the unit suite (`npx vitest run -c vitest.unit.config.ts`)
 * and `npm run test:public-path` on it, then add it here (ARCHITECTURE.md).
 */
export const testedEffectVersions: ReadonlyArray<string> = ["4.1.0", "4.1.5"]

/** The environment variable that forces the public path (a developer and CI switch). */
export const pathVariable = "NH_BREAKER_PATH"

/** Why the fast path is engaged or not. */
export type Reason = "engaged" | "forced-public" | `untested-effect-version:${string}` | "runtime-shape"

/**
 * The decision, pure: `env` is the raw value of `NH_BREAKER_PATH`, `shapeOk`
 * checks the runtime's fields (called only when everything else allows the
 * fast path). An unknown `env` value throws: a mistyped switch must not pass
 * for the default.
 */
export const decide = (input: {
  readonly version: string | undefined
  readonly env: string | undefined
  readonly shapeOk: () => boolean
}): Reason => {
  const { env, version } = input
  if (env !== undefined && env !== "" && env !== "fast" && env !== "public") {
    throw new Error(
      `${pathVariable} must be "fast", "public", empty or unset, not ${JSON.stringify(env)} ` +
        "(@neural-hive/resilience: which call path the circuit breaker uses)"
    )
  }
  if (env === "public") return "forced-public"
  if (!(testedEffectVersions as ReadonlyArray<string | undefined>).includes(version)) {
    return `untested-effect-version:${version ?? "unknown"}`
  }
  return input.shapeOk() ? "engaged" : "runtime-shape"
}

/** What a settle frame uses of Effect 4's running fiber. */
export interface RunningFiber {
  readonly _stack: Array<unknown>
  interruptible: boolean
  readonly _interruptedCause: Cause.Cause<never> | undefined
  readonly succeedWith: (value: unknown) => unknown
}

// The protocol keys are derived from the public `Effect.TypeId`.
const evaluateKey = `${Effect.TypeId}/evaluate`
const ensureContKey = `${Effect.TypeId}/ensureCont`
const successContKey = `${Effect.TypeId}/successCont`
const failureContKey = `${Effect.TypeId}/failureCont`

const suspendProto = (): object | null => Object.getPrototypeOf(Effect.suspend(() => Effect.void))

/** The second guard, on a tested version: an effect node evaluates through the key, a fiber has the fields. */
export const hasShape = (proto: object | null, fiber: object): boolean => {
  const running = fiber as Partial<RunningFiber>
  return typeof (proto as Record<string, unknown> | null)?.[evaluateKey] === "function" &&
    Array.isArray(running._stack) && typeof running.interruptible === "boolean" && "_interruptedCause" in running &&
    typeof running.succeedWith === "function"
}

const runtimeShape = (): boolean =>
  Effect.runSync(Effect.withFiber((fiber) => Effect.succeed(hasShape(suspendProto(), fiber))))

const installedVersion = (): string | undefined => {
  const version: unknown = (effectPackage as { readonly version?: unknown }).version
  return typeof version === "string" ? version : undefined
}

/** Why the fast path is engaged or not in this process. */
export const reason: Reason = decide({
  version: installedVersion(),
  env: globalThis.process?.env?.[pathVariable],
  shapeOk: runtimeShape
})

/** Whether `breaker.ts` uses `guard` and `pushSettleFrame`. */
export const engaged: boolean = reason === "engaged"

/**
 * One guarded call as a single effect node. Effect 4 runs an effect by calling
 * its `[evaluate](fiber)`, which returns the effect to run next; `Effect.suspend`
 * does that with a closure, and the closure, its context and the node cost more
 * than the breaker's whole logic on the per-call path (`eff.pipe(withBreaker(b))`
 * in a handler). This node holds the call's parts as fields instead.
 */
export class GuardCall<A, E, R> {
  readonly breaker: BreakerImpl
  readonly self: Effect.Effect<A, E, R>
  readonly classify: Classifier | undefined
  readonly onSettled: OnSettled | undefined
  constructor(
    breaker: BreakerImpl,
    self: Effect.Effect<A, E, R>,
    classify: Classifier | undefined,
    onSettled: OnSettled | undefined
  ) {
    this.breaker = breaker
    this.self = self
    this.classify = classify
    this.onSettled = onSettled
  }
}

/**
 * Settles one CLOSED call when it ends, as a frame on the fiber's stack: Effect
 * 4 pops it with the call's value (`successCont`) or cause (`failureCont`),
 * interruption included. `Effect.onExitPrimitive` does the same but also makes
 * room for a finalizer *effect* (an uninterruptible region and a frame to leave
 * it), which a synchronous settle does not need; that saves a third of the
 * closed path. Like it, the frame turns interruptibility off when popped
 * (`ensureCont`), so an interrupted fiber unwinding its stack stops here and
 * the call is settled (as ignored) instead of skipped.
 */
class SettleFrame {
  readonly breaker: BreakerImpl
  readonly generation: number
  readonly startedAt: number
  readonly classify: Classifier | undefined
  readonly onSettled: OnSettled | undefined
  restore = false
  constructor(
    breaker: BreakerImpl,
    generation: number,
    startedAt: number,
    classify: Classifier | undefined,
    onSettled: OnSettled | undefined
  ) {
    this.breaker = breaker
    this.generation = generation
    this.startedAt = startedAt
    this.classify = classify
    this.onSettled = onSettled
  }
  settle(exit: Exit.Exit<unknown, unknown>, fiber: RunningFiber): Exit.Exit<unknown, unknown> {
    const breaker = this.breaker
    const outcome = breaker.settleExit(this.generation, this.startedAt, exit, this.classify)
    this.onSettled?.(outcome, "Closed", breaker.tripped)
    if (!this.restore) return exit
    fiber.interruptible = true
    // Leaving the masked step with an interruption pending delivers it, as Effect's own frames do.
    return fiber._interruptedCause !== undefined && exit._tag === "Success"
      ? Exit.failCause(fiber._interruptedCause)
      : exit
  }
}

// Effect's protocol is installed only where it was tested: elsewhere these classes stay plain objects, never run.
if (engaged) {
  Object.setPrototypeOf(GuardCall.prototype, suspendProto())
  Object.defineProperty(GuardCall.prototype, evaluateKey, {
    value(this: GuardCall<unknown, unknown, unknown>, fiber: RunningFiber) {
      return this.breaker.run(this.self, this.classify, this.onSettled, fiber)
    }
  })
  Object.defineProperties(SettleFrame.prototype, {
    [ensureContKey]: {
      value(this: SettleFrame, fiber: RunningFiber): undefined {
        if (fiber.interruptible) {
          fiber.interruptible = false
          this.restore = true
        }
        return undefined
      }
    },
    [successContKey]: {
      value(this: SettleFrame, value: unknown, fiber: RunningFiber, exit?: Exit.Exit<unknown, unknown>) {
        const settled = this.settle(exit ?? Exit.succeed(value), fiber)
        // Hands the value straight to the next frame, as Effect's own `sync` does, instead of one more loop turn.
        return settled._tag === "Success" ? fiber.succeedWith(value) : settled
      }
    },
    [failureContKey]: {
      value(this: SettleFrame, cause: Cause.Cause<unknown>, fiber: RunningFiber, exit?: Exit.Exit<unknown, unknown>) {
        return this.settle(exit ?? Exit.failCause(cause), fiber)
      }
    }
  })
}

/** The guarded call as one effect node (only when `engaged`): its evaluation is `breaker.run` with the fiber. */
export const guard = <A, E, R>(
  breaker: BreakerImpl,
  self: Effect.Effect<A, E, R>,
  classify: Classifier | undefined,
  onSettled: OnSettled | undefined
): Effect.Effect<A, E | CircuitBreakerError | CircuitBreakerTimeoutError, R> =>
  new GuardCall(breaker, self, classify, onSettled) as unknown as Effect.Effect<
    A,
    E | CircuitBreakerError | CircuitBreakerTimeoutError,
    R
  >

/** Settles the CLOSED call about to run on `fiber` when it ends (only when `engaged`: `fiber` came from `guard`). */
export const pushSettleFrame = (
  fiber: RunningFiber,
  breaker: BreakerImpl,
  generation: number,
  startedAt: number,
  classify: Classifier | undefined,
  onSettled: OnSettled | undefined
): void => {
  fiber._stack.push(new SettleFrame(breaker, generation, startedAt, classify, onSettled))
}
