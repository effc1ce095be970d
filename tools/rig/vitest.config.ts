/**
 * Runs only the rig's own smoke test, with the shared servers of globalSetup:
 *   npx vitest run --config tools/rig/vitest.config.ts
 * The root vitest.config.ts runs every suite and must name the same globalSetup.
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/rig/**/*.test.ts"],
    globalSetup: ["tools/rig/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000
  }
})
