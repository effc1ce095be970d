// Mutation testing of @neural-hive/resilience with its unit tests (no server needed). See docs/testing.md.
/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.unit.config.ts", related: false },
  plugins: ["@stryker-mutator/vitest-runner", "./stryker/ignorers.mjs"],
  // Message text and identity strings are out of the score (why: stryker/ignorers.mjs, docs/testing.md).
  ignorers: ["MessageText", "ServiceKeys"],
  // A static mutant (module-load code: constant tables, schemas) reloads every test file and runs every test: on two
  // shared cores that is most of a run's time. They are reported as ignored, not counted.
  ignoreStatic: true,
  testFiles: ["test/resilience/**/*.test.ts"],
  mutate: ["packages/resilience/src/**/*.ts", "!packages/resilience/src/index.ts"],
  coverageAnalysis: "perTest",
  timeoutMS: 10_000,
  ignorePatterns: ["reports", "build", "tools", "docs", ".ci"],
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "reports/mutation/resilience/index.html" },
  jsonReporter: { fileName: "reports/mutation/resilience/mutation.json" },
  incrementalFile: "reports/mutation/resilience/incremental.json",
  tempDirName: ".stryker-tmp",
  thresholds: { high: 95, low: 90, break: 90 }
}
