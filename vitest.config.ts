import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Starts the shared real servers (or uses REDIS_URL, KAFKA_BROKERS, ... when given); see docs/testing.md.
    globalSetup: ["test/services/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000
  }
})
