import { defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"

// Tests run on the packages' sources: the "@neural-hive/source" export condition (docs/packaging.md).
// Vitest hands these conditions to its workers' Node too; "module" stays out, as in vitest's own
// default, or Node would load bundler-only builds (e.g. @opentelemetry/api's build/esm).
const conditions = ["@neural-hive/source", ...defaultServerConditions.filter((c) => c !== "module")]

export default defineConfig({
  ssr: { resolve: { conditions } },
  test: {
    include: ["test/**/*.test.ts"],
    // Starts the shared real servers (or uses REDIS_URL, KAFKA_BROKERS, ... when given); see docs/testing.md.
    globalSetup: ["test/services/globalSetup.ts"],
    // kafkajs's idle-queue fix for the tests' own kafkajs clients too (no TimeoutNegativeWarning).
    setupFiles: ["test/support/kafkajsQueue.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000
  }
})
