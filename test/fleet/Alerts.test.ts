/**
 * The fleet's alert rules: promtool accepts them and their unit tests pass, and the metric they read
 * is the one the fleet exports.
 */
import { Fleet } from "@neural-hive/fleet"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "vitest"
import { promtool } from "../observability/promtool.ts"

const alertsDir = fileURLToPath(new URL("../../packages/fleet/alerts", import.meta.url))

describe("fleet alert rules", () => {
  it("are valid, pass their promtool unit tests, and read the metric the fleet exports", () => {
    const check = promtool(["check", "rules", "fleet.rules.yml"], { cwd: alertsDir })
    assert.strictEqual(check.status, 0, check.output)
    const tests = promtool(["test", "rules", "fleet.test.yml"], { cwd: alertsDir })
    assert.strictEqual(tests.status, 0, tests.output)
    assert.include(tests.output, "SUCCESS")
    const rules = fs.readFileSync(path.join(alertsDir, "fleet.rules.yml"), "utf8")
    assert.include(rules, `(${Fleet.names.connected})`)
  })
})
