/**
 * The gate of the breaker's fast path (packages/resilience/src/internal/fastPath.ts): it runs only on the exact
 * Effect versions listed there, `NH_BREAKER_PATH=public` turns it off, and no other file of packages/ touches
 * Effect's private runtime fields. `npm run test:public-path` runs this suite with the switch set; the tests below
 * check that the switch really reached the module, so that run cannot test the fast path a second time.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, withBreaker } from "@neural-hive/resilience"
import { Effect } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type * as FastPathModule from "../../packages/resilience/src/internal/fastPath.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
// The module instance the package itself loaded (same file). Imported by path at run time and typed from the built
// declarations (`.js`): tsc refuses a `.ts` import across its projects (TS2878).
const FastPath: typeof FastPathModule = await import(path.join(root, "packages/resilience/src/internal/fastPath.ts"))
const installed = (JSON.parse(
  readFileSync(createRequire(import.meta.url).resolve("effect/package.json"), "utf8")
) as { readonly version: string }).version
const env = process.env["NH_BREAKER_PATH"]
const tested = FastPath.testedEffectVersions[0]!
const shapeOk = () => true

describe("the fast path's gate: decide", () => {
  it("engages on every tested version when the switch is fast, empty or unset and the runtime has the fields", () => {
    for (const version of FastPath.testedEffectVersions) {
      for (const value of [undefined, "", "fast"]) {
        assert.strictEqual(FastPath.decide({ version, env: value, shapeOk }), "engaged")
      }
    }
  })

  it("stays off on an Effect version not on the list, and on one it cannot read, without looking at the runtime", () => {
    let looked = false
    const shape = () => (looked = true)
    assert.strictEqual(
      FastPath.decide({ version: "4.2.0", env: undefined, shapeOk: shape }),
      "untested-effect-version:4.2.0"
    )
    assert.strictEqual(
      FastPath.decide({ version: "4.1.5-beta.1", env: "fast", shapeOk: shape }),
      "untested-effect-version:4.1.5-beta.1"
    )
    assert.strictEqual(
      FastPath.decide({ version: undefined, env: undefined, shapeOk: shape }),
      "untested-effect-version:unknown"
    )
    assert.isFalse(looked)
  })

  it("stays off on a tested version whose runtime lacks the fields", () => {
    assert.strictEqual(FastPath.decide({ version: tested, env: undefined, shapeOk: () => false }), "runtime-shape")
  })

  it("NH_BREAKER_PATH=public forces the public path on any version", () => {
    assert.strictEqual(FastPath.decide({ version: tested, env: "public", shapeOk }), "forced-public")
    assert.strictEqual(FastPath.decide({ version: "9.9.9", env: "public", shapeOk }), "forced-public")
  })

  it("any other value of NH_BREAKER_PATH is an error naming the variable and the allowed values", () => {
    for (const value of ["Public", "fast ", "off", "1"]) {
      assert.throws(
        () => FastPath.decide({ version: tested, env: value, shapeOk }),
        `NH_BREAKER_PATH must be "fast", "public", empty or unset, not ${JSON.stringify(value)} ` +
          "(@neural-hive/resilience: which call path the circuit breaker uses)"
      )
    }
  })
})

const evaluate = `${Effect.TypeId}/evaluate`
const node = { [evaluate]: () => undefined }
const fiber = () => ({ _stack: [], interruptible: true, _interruptedCause: undefined, succeedWith: () => undefined })

describe("the fast path's gate: the runtime's shape", () => {
  it("an effect node that evaluates through the protocol key and a fiber with every field used", () => {
    assert.isTrue(FastPath.hasShape(node, fiber()))
    assert.isTrue(FastPath.hasShape(Object.create(node), { ...fiber(), interruptible: false }))
  })

  it("anything missing or of another type fails the check", () => {
    assert.isFalse(FastPath.hasShape(null, fiber()))
    assert.isFalse(FastPath.hasShape({}, fiber()))
    assert.isFalse(FastPath.hasShape({ [evaluate]: "not a function" }, fiber()))
    const { _interruptedCause: _, ...withoutCause } = fiber()
    const broken: ReadonlyArray<object> = [
      { ...fiber(), _stack: {} },
      { ...fiber(), interruptible: "yes" },
      withoutCause,
      { ...fiber(), succeedWith: undefined }
    ]
    for (const shape of broken) assert.isFalse(FastPath.hasShape(node, shape))
  })

  it("the installed Effect's own effect node and fiber pass", () =>
    Effect.runSync(
      Effect.withFiber((running) =>
        Effect.sync(() =>
          assert.isTrue(FastPath.hasShape(Object.getPrototypeOf(Effect.suspend(() => Effect.void)), running))
        )
      )
    ))
})

describe("the fast path's gate: this process", () => {
  it("the decision taken at load matches the installed effect and NH_BREAKER_PATH", () => {
    assert.strictEqual(FastPath.reason, FastPath.decide({ version: installed, env, shapeOk }))
    assert.strictEqual(FastPath.engaged, FastPath.reason === "engaged")
  })

  it.effect("withBreaker builds the fast path's node exactly when the fast path is engaged", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "kafka_producer" })
      const guarded = Effect.succeed(1).pipe(withBreaker(breaker))
      assert.strictEqual(guarded instanceof FastPath.GuardCall, FastPath.engaged)
      assert.strictEqual(yield* guarded, 1)
    }))

  it.runIf(env === "public")(
    "with NH_BREAKER_PATH=public (npm run test:public-path) the public path is engaged",
    () => {
      assert.strictEqual(FastPath.reason, "forced-public")
      assert.isFalse(FastPath.engaged)
    }
  )

  it.runIf(env !== "public" && FastPath.testedEffectVersions.includes(installed))(
    "without the switch, on a tested effect version, the fast path is engaged",
    () => {
      assert.strictEqual(FastPath.reason, "engaged")
    }
  )
})

const privateFields = [
  "_stack",
  "_interruptedCause",
  "succeedWith",
  "/evaluate",
  "/ensureCont",
  "/successCont",
  "/failureCont"
]
const sourceFile = /\.(?:[cm]?[jt]s|tsx)$/

const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "node_modules" || entry.name === "dist" ? [] : sources(full)
    return sourceFile.test(entry.name) ? [full] : []
  })

describe("Effect's private fields", () => {
  it("appear in no source file of packages/ but internal/fastPath.ts", () => {
    const allowed = path.join(root, "packages/resilience/src/internal/fastPath.ts")
    const files = sources(path.join(root, "packages"))
    assert.include(files, allowed)
    const found = files.filter((file) => file !== allowed).flatMap((file) => {
      const text = readFileSync(file, "utf8")
      return privateFields.filter((field) => text.includes(field)).map((field) =>
        `${path.relative(root, file)}: ${field}`
      )
    })
    assert.deepStrictEqual(found, [])
  })
})
