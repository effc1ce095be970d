// Runs the dprint binary of @dprint/linux-x64-glibc. The `dprint` npm package is not used: its
// optional per-platform binaries are not all served by the registry this project installs from,
// which leaves a lockfile that `npm ci` refuses. On another platform: `npx dprint@0.57.4 <args>`.
import { spawnSync } from "node:child_process"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"

const require = createRequire(import.meta.url)
const binary = join(dirname(require.resolve("@dprint/linux-x64-glibc/package.json")), "dprint")
const result = spawnSync(binary, process.argv.slice(2), { stdio: "inherit" })
process.exit(result.status ?? 1)
