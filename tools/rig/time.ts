/**
 * Real-time waits for tests that drive real servers or processes (unit tests use TestClock).
 * Plain Promises, so the rig and the chaos run can use them without Effect.
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every `everyMs` until it holds or `ms` passed; says whether it held. */
export const until = async (check: () => boolean | Promise<boolean>, ms: number, everyMs = 200): Promise<boolean> => {
  const deadline = performance.now() + ms
  for (;;) {
    if (await check()) return true
    if (performance.now() >= deadline) return false
    await sleep(everyMs)
  }
}
