/**
 * The chaos harness: `runChaos(options)` boots the Orchestrator Dynamic service
 * against private real servers behind fault proxies, drives it at a steady rate
 * while a fault schedule runs, and checks the invariants from the servers
 * themselves. Used by `chaos/run.ts` (`npm run chaos`) and by
 * `test/chaos/chaos.test.ts` (the short version in `npm test`).
 *
 * The code lives in `test/chaos/harness.ts`, next to the rig it drives
 * (`test/services/`), so that the test project's `tsc -b` checks it.
 */
export {
  type ChaosOptions,
  type ChaosReport,
  latencyBound,
  runChaos,
  SETTINGS_YAML,
  summary
} from "../test/chaos/harness.ts"
