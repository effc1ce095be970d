import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const root = fileURLToPath(new URL(".", import.meta.url))

/** The unit tests: no server, no process of their own. vitest.config.ts runs them too (`NH_NO_SERVERS=1`). */
export const unitTests: ReadonlyArray<string> = [
  "test/resilience/**/*.test.ts",
  "test/kafka/**/*.test.ts",
  "test/redis/**/*.test.ts",
  "test/mongodb/**/*.test.ts",
  "test/temporal/**/*.test.ts"
]

export default defineConfig({
  resolve: {
    // The workspace packages from this folder's sources, not through node_modules' links: Stryker runs these tests in
    // a sandbox copy whose node_modules still links to the original, unmutated packages.
    alias: readdirSync(`${root}packages`).map((name) => ({
      find: new RegExp(`^@neural-hive/${name}$`),
      replacement: `${root}packages/${name}/src/index.ts`
    }))
  },
  test: {
    // The unit tests only: no globalSetup, so no server starts (`npm run mutate` runs these; see docs/testing.md).
    include: [...unitTests],
    isolate: false,
    testTimeout: 30_000
  }
})
