/**
 * How every harness starts the Orchestrator Dynamic example as a process: the tests
 * (test/observability/service.ts, test/examples), `npm run fleet` (tools/fleet/run.ts) and the chaos run
 * (tools/chaos/process.ts). One place, so none of them forgets the flag:
 *
 *   node --conditions=@neural-hive/source examples/orchestrator-dynamic/src/main.ts
 *
 * Without `--conditions=@neural-hive/source` every `@neural-hive/*` import resolves to the package's
 * `dist/index.js`, which exists only after `npm run build`: a fresh clone would fail with
 * ERR_MODULE_NOT_FOUND. The same command as `npm start` and the Dockerfile's CMD (docs/packaging.md).
 */
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

/** The example's entry point, absolute, so the child's working directory does not matter. */
export const EXAMPLE_MAIN = fileURLToPath(new URL("../../examples/orchestrator-dynamic/src/main.ts", import.meta.url))

/** Resolves `@neural-hive/*` to the packages' sources (the `exports` of each package.json). */
export const SOURCE_CONDITION = "--conditions=@neural-hive/source"

const pinned = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url))

/**
 * The Node binary: the repository's pinned Node 24 (the `node` devDependency) when installed, so the
 * example runs on the Node it is tested on even if the caller was started by another one.
 */
export const EXAMPLE_NODE = existsSync(pinned) ? pinned : process.execPath

/** The arguments after the Node binary: the source condition, then main.ts. */
export const EXAMPLE_ARGS: ReadonlyArray<string> = [SOURCE_CONDITION, EXAMPLE_MAIN]
