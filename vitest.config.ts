import { defaultClientConditions, defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"

// Tests run on the packages' sources: the "@neural-hive/source" export condition (docs/packaging.md).
const source = "@neural-hive/source"

export default defineConfig({
  resolve: { conditions: [source, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [source, ...defaultServerConditions] } },
  test: {
    include: ["test/**/*.test.ts"],
    // Starts the shared real servers (or uses REDIS_URL, KAFKA_BROKERS, ... when given); see docs/testing.md.
    globalSetup: ["test/services/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000
  }
})
