/**
 * The example starts from a fresh clone, where no package has a `dist/` (issue 23): every harness spawns
 * it through tools/rig/example.ts, whose command resolves `@neural-hive/*` to the sources. A preloaded
 * resolve hook refuses any module under packages/<name>/dist/, so these tests hold whether or not
 * `npm run build` ran. The last test finds spawns that bypass the helper, and the Dockerfile's CMD.
 */
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { assert, describe, it } from "vitest"
import { EXAMPLE_ARGS, EXAMPLE_MAIN, EXAMPLE_NODE, SOURCE_CONDITION } from "../../tools/rig/example.ts"
import { ADMIN_TOKEN, startService } from "../observability/service.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))
const main = path.relative(root, EXAMPLE_MAIN)

// A package's build, by its real path (packages/) or its workspace link (node_modules/@neural-hive/).
const DIST = /\/(packages|@neural-hive)\/[a-z-]+\/dist\//

// A built package would hide a missing condition: the hook makes loading one an error, dist or not.
const hook = `import { registerHooks } from "node:module"
const DIST = ${DIST}
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context)
    if (result.url.startsWith(${JSON.stringify(pathToFileURL(root).href)}) && DIST.test(result.url)) {
      throw new Error("loaded a build, not the sources: " + result.url)
    }
    return result
  }
})`
const NO_DIST = `--import=data:text/javascript,${encodeURIComponent(hook)}`

describe("starting the example", () => {
  it("without the source condition, main.ts does not load (the fault this guards against)", () => {
    const run = spawnSync(EXAMPLE_NODE, [EXAMPLE_MAIN], {
      env: { PATH: process.env["PATH"] ?? "", NODE_OPTIONS: NO_DIST, HTTP_HOST: "127.0.0.1", HTTP_PORT: "1" },
      encoding: "utf8",
      timeout: 30_000
    })
    assert.notStrictEqual(run.status, 0, run.stderr)
    // ERR_MODULE_NOT_FOUND for dist/index.js with no build, the hook's error with one.
    assert.match(run.stderr, DIST)
  })

  it("the helper's command loads the sources only and the service answers /live", async () => {
    assert.include(EXAMPLE_ARGS, SOURCE_CONDITION)
    const service = await startService({ NODE_OPTIONS: NO_DIST })
    try {
      const live = await fetch(`${service.url}/live`, { signal: AbortSignal.timeout(10_000) })
      assert.strictEqual(live.status, 200)
      const health = await fetch(`${service.url}/health`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(10_000)
      })
      assert.strictEqual(health.status, 200)
    } finally {
      // 130: the runtime's exit code after SIGTERM, once every layer closed.
      assert.include([0, 130], await service.stop())
    }
  }, 90_000)

  it("nothing else spawns main.ts by path; the Dockerfile and npm start pass the condition", () => {
    const sources = (dir: string): Array<string> =>
      readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
        .filter((entry) => entry.isFile() && /\.(ts|mts|js|mjs)$/.test(entry.name))
        .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))
        .filter((file) => !file.split(path.sep).includes("node_modules"))
    // A quoted path to main.ts is a spawn (or a URL for one); prose in comments is backquoted.
    const literal = /["'][^"'\n]*orchestrator-dynamic\/src\/main(\.ts)?["']/
    const offenders = ["test", "tools", "scripts", "examples"].flatMap(sources)
      .filter((file) => file !== path.join("tools", "rig", "example.ts"))
      .filter((file) => literal.test(readFileSync(path.join(root, file), "utf8")))
    assert.deepStrictEqual(
      offenders,
      [],
      "spawn the example with EXAMPLE_NODE and EXAMPLE_ARGS (tools/rig/example.ts)"
    )

    const cmd = readFileSync(path.join(root, "Dockerfile"), "utf8").split("\n").filter((l) => l.startsWith("CMD"))
    assert.deepStrictEqual(cmd, [
      `CMD ["node", "${SOURCE_CONDITION}", "${main}"]`
    ])
    const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
      scripts: Record<string, string>
    }
    assert.strictEqual(pkg.scripts["start"], `node ${SOURCE_CONDITION} ${main}`)
  })
})
