/**
 * What ResilienceConfig's YAML reading accepts and refuses, and the problem it gives: the size limit to the
 * byte (and how it is written), syntax errors with their real line, which keys are duplicates, alias bombs,
 * mappings shown as mappings, and the file reader's limits (a socket, a file that grows while read, an
 * unreadable path, no descriptor left open). Written for behaviour a mutation run showed unpinned
 * (docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { ResilienceConfig, TripPolicy } from "@neural-hive/resilience"
import { Effect } from "effect"
import { mkdtempSync, readdirSync, readlinkSync, realpathSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** The problems of a document `parse` refuses. */
const problemsOf = (text: string, options: ResilienceConfig.ParseOptions = {}) =>
  Effect.map(Effect.flip(ResilienceConfig.parse(text, options)), (error) => error.problems)

/** The problems of a file `load` refuses. */
const fileProblemsOf = (path: string, options: ResilienceConfig.ParseOptions = {}) =>
  Effect.map(Effect.flip(ResilienceConfig.load(path, options)), (error) => error.problems)

const tempDir = () => mkdtempSync(join(tmpdir(), "nh-yaml-"))

/** The descriptors this process holds open on `path` (read at once: a leaked handle is closed only by the GC). */
const descriptorsOn = (path: string) =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === realpathSync(path)
    } catch {
      return false
    }
  }).length

/** The consecutive policy's failMax of a circuit. */
const failMax = (settings: ResilienceConfig.CircuitSettings | undefined) =>
  (settings?.policy as TripPolicy.Consecutive | undefined)?.failMax

describe("YAML: the size limit", () => {
  it.effect("a document of exactly maxBytes is read; one byte more is refused, counting UTF-8 bytes", () =>
    Effect.gen(function*() {
      const text = "circuitBreaker: { k: { failMax: 12 } }"
      assert.strictEqual(failMax((yield* ResilienceConfig.parse(text, { maxBytes: text.length })).k), 12)
      assert.deepStrictEqual(yield* problemsOf(text, { maxBytes: text.length - 1 }), [
        { key: "(document)", value: "38 bytes", expected: "at most 37 bytes (37 B)" }
      ])
      // "é" is one character and two bytes.
      const accented = "# é\ncircuitBreaker: {}\n"
      assert.deepStrictEqual(yield* problemsOf(accented, { maxBytes: accented.length }), [
        {
          key: "(document)",
          value: `${accented.length + 1} bytes`,
          expected: `at most ${accented.length} bytes (${accented.length} B)`
        }
      ])
    }))

  it.effect("the limit is shown in MiB from 1 MiB up, in bytes below", () =>
    Effect.gen(function*() {
      const text = `# ${"x".repeat(2 * 1024 * 1024)}\n`
      const [twoMiB] = yield* problemsOf(text, { maxBytes: 2 * 1024 * 1024 })
      assert.strictEqual(twoMiB?.expected, "at most 2097152 bytes (2 MiB)")
      const [under] = yield* problemsOf(text, { maxBytes: 1024 * 1024 - 1 })
      assert.strictEqual(under?.expected, "at most 1048575 bytes (1048575 B)")
    }))
})

describe("YAML: syntax and structure", () => {
  it.effect("a syntax error is one problem: its line, the parser's code and its one-line message", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* problemsOf("circuitBreaker:\n  a: { failMax: 5 }\n  b: { failMax: 5\n"), [
        {
          key: "line 4",
          value: "BAD_INDENT",
          expected: "valid YAML (Flow map in block collection must be sufficiently indented and end with a })"
        }
      ])
      assert.deepStrictEqual(yield* problemsOf("circuitBreaker: {}\nname: b: c\n"), [
        {
          key: "line 2",
          value: "BLOCK_AS_IMPLICIT_KEY",
          expected: "valid YAML (Nested mappings are not allowed in compact mappings)"
        }
      ])
    }))

  it.effect("keys are duplicates only when equal: 1 and \"1\" differ, as do two different mappings as keys", () =>
    Effect.gen(function*() {
      const settings = yield* ResilienceConfig.parse(
        "1: a\n\"1\": b\n? { x: 1 }\n: c\n? { x: 2 }\n: d\ncircuitBreaker: { k: { failMax: 4 } }\n"
      )
      assert.strictEqual(failMax(settings.k), 4)
      assert.deepStrictEqual(yield* problemsOf("? { x: 1 }\n: c\n? { x: 1 }\n: d\ncircuitBreaker: {}\n"), [
        { key: "line 3", value: `{"x":1}`, expected: "each key once per mapping (this key is repeated)" }
      ])
    }))

  it.effect("every duplicate of every mapping is reported at its line, outer mappings first", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(
        "circuitBreaker:\n  k:\n    failMax: 2\n    failMax: 3\n  j: {}\n  k: {}\nother: 1\nother: 2\n"
      )
      assert.deepStrictEqual(problems.map((p) => [p.key, p.value]), [["line 8", "other"], ["line 6", "k"], [
        "line 4",
        "failMax"
      ]])
    }))

  it.effect("an alias bomb or an alias with no anchor is refused as invalid YAML, not expanded", () =>
    Effect.gen(function*() {
      const bomb = [
        "a: &a [x, x, x, x, x, x, x, x, x]",
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
        "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
        "circuitBreaker: {}"
      ].join("\n")
      assert.deepStrictEqual(yield* problemsOf(bomb), [
        {
          key: "(document)",
          value: "ReferenceError: Excessive alias count indicates a resource exhaustion attack",
          expected: "valid YAML"
        }
      ])
      const [unresolved] = yield* problemsOf("x: *nowhere\ncircuitBreaker: {}\n")
      assert.deepStrictEqual([unresolved?.key, unresolved?.expected], ["(document)", "valid YAML"])
      assert.include(String(unresolved?.value), "Unresolved alias")
    }))

  it.effect("a mapping where a number belongs is shown as a mapping, cut at depth 5", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ResilienceConfig.parse("circuitBreaker: { k: { failMax: { a: { b: { c: { d: { e: { f: 1 } } } } } } } }")
      )
      assert.include(error.message, `circuitBreaker.k.failMax: got {"a":{"b":{"c":{"d":{"e":"..."}}}}}, expected`)
    }))
})

describe("YAML: reading a file", () => {
  it.effect("a file of exactly maxBytes is read whole; one byte more is refused, saying its size", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const text = "circuitBreaker: { k: { failMax: 12 } }"
      const path = join(dir, "values.yaml")
      writeFileSync(path, text)
      assert.strictEqual(failMax((yield* ResilienceConfig.load(path, { maxBytes: text.length })).k), 12)
      assert.deepStrictEqual(yield* fileProblemsOf(path, { maxBytes: text.length - 1 }), [
        { key: "(file)", value: path, expected: "a file of at most 37 bytes (37 B), got 38" }
      ])
    }))

  it.effect("a file that grows past the limit while read is refused (a /proc file claims size 0)", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* fileProblemsOf("/proc/self/status", { maxBytes: 100 }), [
        {
          key: "(file)",
          value: "/proc/self/status",
          expected: "a file of at most 100 bytes (100 B), it grew past the limit"
        }
      ])
    }))

  it.effect("a socket is refused as not a regular file, before anything opens it", () =>
    Effect.gen(function*() {
      const path = join(tempDir(), "values.sock")
      const server = createServer()
      yield* Effect.acquireRelease(
        Effect.callback<void>((resume) => void server.listen(path, () => resume(Effect.void))),
        () => Effect.sync(() => void server.close())
      )
      assert.deepStrictEqual(yield* fileProblemsOf(path), [
        { key: "(file)", value: path, expected: "a regular file (not a directory, FIFO, socket or device)" }
      ])
    }).pipe(Effect.scoped))

  it.effect("a path that cannot be read gives the system's reason", () =>
    Effect.gen(function*() {
      const path = join(tempDir(), "nope.yaml")
      assert.deepStrictEqual(yield* fileProblemsOf(path), [
        { key: "(file)", value: path, expected: `a readable file (ENOENT: no such file or directory, stat '${path}')` }
      ])
    }))

  it.effect("every read closes its file, whether the file was accepted or refused", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const good = join(dir, "good.yaml")
      const bad = join(dir, "bad.yaml")
      writeFileSync(good, "circuitBreaker: { k: { failMax: 3 } }\n")
      writeFileSync(bad, "circuitBreaker: { k: { failMax: 0 } }\n")
      const status = `/proc/${process.pid}/status`
      yield* ResilienceConfig.load(good)
      assert.strictEqual(descriptorsOn(good), 0)
      yield* Effect.flip(ResilienceConfig.load(bad))
      assert.strictEqual(descriptorsOn(bad), 0)
      yield* Effect.flip(ResilienceConfig.load(status, { maxBytes: 100 }))
      assert.strictEqual(descriptorsOn(status), 0)
    }))
})
