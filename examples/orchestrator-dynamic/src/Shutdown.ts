/**
 * Which signal is stopping the process, for the drain (`HttpApp.layer`): SIGTERM is an orchestrator
 * taking the replica out (drain: `/ready` answers 503 while every route still serves, then the server
 * closes); SIGINT is a person at a terminal (Ctrl-C), who should not wait. The runtime
 * (`NodeRuntime.runMain`) interrupts the program on both; this only records which one came first.
 */
let received: "SIGTERM" | "SIGINT" | undefined

const record = (signal: "SIGTERM" | "SIGINT") => () => {
  received ??= signal
}

/** Installs the listeners once (before the runtime's own, so the signal is known when the finalizers run). */
export const watchSignals = (): void => {
  if (watching) return
  watching = true
  process.once("SIGTERM", record("SIGTERM"))
  process.once("SIGINT", record("SIGINT"))
}
let watching = false

/** The signal that is stopping the process, if any. */
export const stopSignal = (): "SIGTERM" | "SIGINT" | undefined => received
