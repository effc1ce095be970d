/**
 * The internal modules of `@neural-hive/resilience`, for the tests of what its
 * public entry hides: the pure machine, the facade's admission, a breaker's
 * phase. Imported by path at run time, so they are the very module instances
 * the package loaded (`instanceof` holds), and typed from the built
 * declarations (`.js`): tsc refuses a `.ts` import across its projects (TS2878).
 */
import type { CircuitBreaker } from "@neural-hive/resilience"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type * as AdmissionModule from "../../packages/resilience/src/internal/admission.js"
import type * as MachineModule from "../../packages/resilience/src/internal/machine.js"

const internal = fileURLToPath(new URL("../../packages/resilience/src/internal", import.meta.url))

/** `internal/machine.ts`: the pure state machine. */
export const Machine: typeof MachineModule = await import(path.join(internal, "machine.ts"))

/** The machine's types, under the same name. */
export declare namespace Machine {
  export type Settings = MachineModule.Settings
  export type Hooks = MachineModule.Hooks
  export type Transition = MachineModule.Transition
  export type Phase = MachineModule.Phase
  export type Outcome = MachineModule.Outcome
}

/** `internal/admission.ts`: the facade's synchronous admission. */
export const Admission: typeof AdmissionModule = await import(path.join(internal, "admission.ts"))

/** The machine's phase of `breaker` as it is (generation included), for assertions. */
export const phaseOf = (breaker: CircuitBreaker.CircuitBreaker): MachineModule.Phase =>
  Admission.of(breaker).phase.current

/** The validated settings of `breaker`'s machine. */
export const settingsOf = (breaker: CircuitBreaker.CircuitBreaker): MachineModule.Settings =>
  Admission.of(breaker).machine.settings
