/**
 * The library guide tried from an empty folder (docs/packaging.md, "The getting-started guide"): the
 * consumer test writes the files docs/library-getting-started.md marks with a path
 * (`<!-- doc-check: file src/main.ts -->`) into a folder of the "tested" scratch project, as a reader
 * would after its `npm install` lines, then type-checks them with the guide's own tsconfig.json, runs
 * the service with plain `node` until `/metrics` shows both of its breakers open (nothing listens on
 * the ports it is given), and runs the guide's test file with vitest.
 */
import { spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { type Compiler, type Runner } from "./consumer.ts"
import { extractBlocks } from "./doc-blocks.ts"
import { capture, CommandError, root } from "./lib.ts"

export const GUIDE = path.join(root, "docs", "library-getting-started.md")

/** What the guide's service is called and which breakers its /metrics must show. */
const SERVICE = "rates-service"
const CIRCUITS = ["rates_api", "redis_client"]

/** A port nothing listens on: every call to the rates API and to Redis is refused at once. */
const CLOSED = "127.0.0.1:1"

interface GuideFile {
  readonly path: string
  readonly code: string
}

/** The guide's files: its blocks marked with a path, in order. */
export const guideFiles = (): ReadonlyArray<GuideFile> => {
  const files = extractBlocks(GUIDE).flatMap((block) =>
    block.annotation?.path === undefined ? [] : [{ path: block.annotation.path, code: block.code }]
  )
  for (const needed of ["tsconfig.json", "src/main.ts"]) {
    if (!files.some((f) => f.path === needed)) throw new CommandError(`${GUIDE} has no block marked ${needed}`)
  }
  return files
}

/** The packages the guide's `npm install` lines name, without their version (`@opentelemetry/resources@2`). */
const installed = (): ReadonlySet<string> => {
  const names = new Set<string>()
  for (const block of extractBlocks(GUIDE).filter((b) => b.lang === "sh")) {
    // a command continued with `\` is one line
    for (const line of block.code.replace(/\\\n/g, " ").split("\n")) {
      const command = /npm install\s+(.*)$/.exec(line.replace(/#.*$/, ""))?.[1]
      if (command === undefined) continue
      for (const word of command.split(/\s+/)) {
        if (word === "" || word.startsWith("-")) continue
        names.add(word.replace(/(.)@[^/]*$/, "$1"))
      }
    }
  }
  return names
}

/** The package a bare import specifier names: `effect/testing` is `effect`, `@effect/vitest` itself. */
const packageOf = (specifier: string) => {
  const parts = specifier.split("/")
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0] ?? specifier
}

/**
 * Every package the guide's code imports is one its `npm install` lines name, and every one they
 * name is one the scratch project installed (so the guide runs on what a reader installs).
 */
const checkInstalls = (files: ReadonlyArray<GuideFile>, available: ReadonlySet<string>): string => {
  const names = installed()
  const problems: Array<string> = []
  for (const file of files.filter((f) => f.path.endsWith(".ts"))) {
    for (const [, specifier = ""] of file.code.matchAll(/(?:from|import)\s+"([^".][^"]*)"/g)) {
      if (specifier.startsWith("node:")) continue
      if (!names.has(packageOf(specifier))) {
        problems.push(`${file.path} imports ${specifier}, which no npm install line of the guide installs`)
      }
    }
  }
  for (const name of names) {
    if (!available.has(name)) problems.push(`the guide installs ${name}, which the scratch project does not have`)
  }
  if (problems.length > 0) throw new CommandError(`docs/library-getting-started.md:\n  ${problems.join("\n  ")}`)
  return `the ${names.size} packages of its npm install lines cover every import`
}

/** Writes the reader's project: `npm init -y && npm pkg set type=module`, then the guide's files. */
export const writeGuide = (dir: string, available: ReadonlySet<string>): string => {
  const files = guideFiles()
  const said = checkInstalls(files, available)
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: SERVICE, version: "1.0.0", private: true, type: "module" }, null, 2) + "\n"
  )
  for (const file of files) {
    mkdirSync(path.dirname(path.join(dir, file.path)), { recursive: true })
    writeFileSync(path.join(dir, file.path), file.code)
  }
  return `${files.map((f) => f.path).join(", ")}; ${said}`
}

/** `npx tsc` as the guide says: its own tsconfig.json (type-checking only). */
export const typecheckGuide = (dir: string, compiler: Compiler): string => {
  const version = capture(compiler.tsc, ["--version"], { cwd: dir }).trim()
  capture(compiler.tsc, ["-p", dir, "--pretty", "false"], { cwd: dir })
  return `${version}: no error`
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * `node src/main.ts`, as the guide says, with PORT=0 and the rates API and Redis on a closed port: it
 * must print where /metrics is, and /metrics must show both breakers open within `timeoutMs`.
 * Returns the two lines of the last scrape.
 */
export const runGuide = async (dir: string, runner: Runner, timeoutMs = 30_000): Promise<string> => {
  const child = spawn(runner.binary, ["src/main.ts"], {
    cwd: dir,
    env: { ...process.env, PORT: "0", RATES_URL: `http://${CLOSED}`, REDIS_URL: `redis://${CLOSED}` },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "?"))
    child.on("error", (error) => {
      output += `${error.message}\n`
      resolve(error.message)
    })
  })
  const deadline = Date.now() + timeoutMs
  const expected = CIRCUITS.map((circuit) => `circuit_breaker_state{service="${SERVICE}",circuit="${circuit}"} 1`)
  let last = ""
  let states: string | undefined
  let url: string | undefined
  const ended = () => child.exitCode !== null || child.signalCode !== null || child.pid === undefined
  while (states === undefined && Date.now() < deadline && !ended()) {
    url ??= /metrics on (http:\/\/localhost:\d+\/metrics)/.exec(output)?.[1]
    if (url !== undefined) {
      last = await fetch(url).then((response) => response.text(), (error: unknown) => String(error))
      const lines = last.split("\n").filter((line) => line.startsWith("circuit_breaker_state{"))
      if (expected.every((line) => lines.includes(line))) states = lines.join("\n")
    }
    if (states === undefined) await sleep(250)
  }
  const running = !ended()
  // Ctrl-C, as a reader stops it: NodeRuntime.runMain interrupts the program and closes its layers.
  child.kill("SIGINT")
  const code = await Promise.race([exited, sleep(10_000).then(() => "still running")])
  if (code === "still running") {
    child.kill("SIGKILL")
    throw new CommandError(`${runner.label} src/main.ts did not stop within 10 s of SIGINT:\n${output}`)
  }
  if (states === undefined) {
    throw new CommandError(
      `${runner.label} src/main.ts: ${
        running ? `no /metrics with ${expected.join(" and ")} within ${timeoutMs / 1000} s` : `exited (${code})`
      }\nlast scrape:\n${last}\noutput:\n${output}`
    )
  }
  return states
}

/** `npx vitest run`, as the guide says, with the scratch project's vitest; every test must pass. */
export const testGuide = (dir: string, projectDir: string, runner: Runner): string => {
  const vitest = path.join(projectDir, "node_modules", "vitest", "vitest.mjs")
  const out = capture(runner.binary, [vitest, "run"], { cwd: dir, env: { ...process.env, NO_COLOR: "1", CI: "1" } })
  const tests = /Tests\s+(.*)$/m.exec(out)?.[1]?.trim()
  if (tests === undefined || !/^\d+ passed/.test(tests) || /failed|skipped/.test(tests)) {
    throw new CommandError(`vitest in ${dir} did not pass every test:\n${out}`)
  }
  return `vitest: ${tests}`
}
