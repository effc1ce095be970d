// Mutation testing of the integrations' classifiers: what decides whether a client error counts against a breaker.
// KafkaError.ts is classification throughout; in the three service modules only the classification code is mutated
// (the rest needs a real server and is covered by test/integration). See docs/testing.md.
import { readFileSync } from "node:fs"
import base from "../stryker.config.mjs"

/** The top-level declarations that classify errors, by module; missing names are skipped. */
const CLASSIFIERS = {
  "packages/redis/src/RedisCache.ts": [
    "UNAVAILABLE_REPLIES",
    "AUTHENTICATION_REPLIES",
    "AUTHENTICATION",
    "CALLER_REPLIES",
    "NO_CONNECTION",
    "SYSCALL_CODE",
    "reasonOf",
    "toRedisError",
    "isFailure",
    "isServerFailure"
  ],
  "packages/mongodb/src/MongoStore.ts": [
    "SERVER_FAILURES",
    "CALLER_ERRORS",
    "isFailure",
    "isServerFailure",
    "DUPLICATE_KEY",
    "BAD_QUERY",
    "NOT_PRIMARY",
    "NETWORK",
    "TIMEOUT",
    "AUTHENTICATION",
    "CALLER_REPLY",
    "NOT_PRIMARY_MESSAGE",
    "SYSCALL_CODE",
    "serverReason",
    "reasonOf",
    "toMongoStoreError"
  ],
  "packages/temporal/src/TemporalClient.ts": [
    "SERVER_FAILURES",
    "CALLER_ERRORS",
    "isFailure",
    "isServerFailure",
    "NO_CONNECTION",
    "SYSCALL_CODE",
    "grpcReason",
    "reasonOf",
    "messageOf",
    "toTemporalError"
  ]
}

/** Lines [first, last] (1-based) of a top-level `const name`, up to the line before the next top-level statement. */
const span = (lines, name) => {
  const start = lines.findIndex((line) => new RegExp(`^(export )?const ${name}\\b`).test(line))
  if (start < 0) return undefined
  let end = start + 1
  while (end < lines.length && !/^[A-Za-z/@]/.test(lines[end])) end++
  while (end - 1 > start && lines[end - 1].trim() === "") end--
  return [start + 1, end]
}

/** One `file:first-last` range covering every classifier declaration found in `file`. */
const region = (file, names) => {
  const lines = readFileSync(new URL(`../${file}`, import.meta.url), "utf8").split("\n")
  const spans = names.map((name) => span(lines, name)).filter((found) => found !== undefined)
  if (spans.length === 0) throw new Error(`stryker/classifiers.config.mjs: no classifier found in ${file}`)
  return `${file}:${Math.min(...spans.map(([first]) => first))}-${Math.max(...spans.map(([, last]) => last))}`
}

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  ...base,
  testFiles: ["test/kafka/**/*.test.ts", "test/redis/**/*.test.ts", "test/mongodb/**/*.test.ts", "test/temporal/**/*.test.ts"],
  mutate: [
    "packages/kafka/src/KafkaError.ts",
    ...Object.entries(CLASSIFIERS).map(([file, names]) => region(file, names))
  ],
  htmlReporter: { fileName: "reports/mutation/classifiers/index.html" },
  jsonReporter: { fileName: "reports/mutation/classifiers/mutation.json" },
  incrementalFile: "reports/mutation/classifiers/incremental.json"
}
