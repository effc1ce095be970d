import { defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"
import { unitTests } from "./vitest.unit.config.ts"

// Tests run on the packages' sources: the "@neural-hive/source" export condition (docs/packaging.md).
// Vitest hands these conditions to its workers' Node too; "module" stays out, as in vitest's own
// default, or Node would load bundler-only builds (e.g. @opentelemetry/api's build/esm).
const conditions = ["@neural-hive/source", ...defaultServerConditions.filter((c) => c !== "module")]

/**
 * `NH_NO_SERVERS=1` runs only the tests that need no server (the unit suites and the in-process HTTP,
 * tracing and example tests) and starts none: what `npm run check:latest` runs on the newest versions.
 */
const noServers = process.env["NH_NO_SERVERS"] === "1"
const serverFree = [
  ...unitTests,
  "test/observability/{Dashboard,Http,HttpMetrics,Logging,Metrics,Observability,Otel,Tracing,TransitionLog}.test.ts",
  "test/fleet/{App,Remote}.test.ts",
  "test/examples/{AppConfig,Embedded,OrchestratorConfig,hardening,secrets}.test.ts",
  // Its dependencies are dead ports it makes itself.
  "test/integration/exit.test.ts"
]

/**
 * `NH_IOREDIS=5` runs the tests on ioredis 5 (the devDependency `ioredis-5`) instead of the lockfile's
 * ioredis 6: both majors are in the peer range, so `.ci/run` runs the Redis and fleet tests on each.
 */
const ioredis5 = process.env["NH_IOREDIS"] === "5"

export default defineConfig({
  ssr: { resolve: { conditions } },
  resolve: { alias: ioredis5 ? [{ find: /^ioredis(\/.*)?$/, replacement: "ioredis-5$1" }] : [] },
  test: {
    include: noServers ? serverFree : ["test/**/*.test.ts"],
    // Starts the shared real servers (or uses REDIS_URL, KAFKA_BROKERS, ... when given); see docs/testing.md.
    globalSetup: noServers ? [] : ["tools/rig/globalSetup.ts"],
    // kafkajs's idle-queue fix for the tests' own kafkajs clients too (no TimeoutNegativeWarning).
    setupFiles: ["tools/rig/kafkajsQueue.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000
  }
})
