/**
 * The peer range admits ioredis 5 and 6: `.ci/run` runs the Redis and fleet tests once on each
 * (`NH_IOREDIS=5` swaps in the devDependency `ioredis-5`, see vitest.config.ts). This checks the swap
 * happened, so a broken alias cannot run the same major twice and call it both.
 */
import pkg from "ioredis/package.json" with { type: "json" }
import { assert, describe, it } from "vitest"

describe("the ioredis under test", () => {
  it("is the major NH_IOREDIS asks for (6 by default, the lockfile's)", () => {
    const expected = process.env["NH_IOREDIS"] === "5" ? "5" : "6"
    assert.strictEqual(pkg.version.split(".")[0], expected, `ioredis ${pkg.version}`)
  })
})
