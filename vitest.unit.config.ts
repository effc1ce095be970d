import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const root = fileURLToPath(new URL(".", import.meta.url))

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
    include: [
      "test/resilience/**/*.test.ts",
      "test/kafka/**/*.test.ts",
      "test/redis/**/*.test.ts",
      "test/mongodb/**/*.test.ts",
      "test/temporal/**/*.test.ts"
    ],
    isolate: false,
    testTimeout: 30_000
  }
})
