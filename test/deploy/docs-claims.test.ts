/**
 * Claims the docs once made that the code does not keep (issue 25), checked against the code's own
 * facts so they cannot come back: the example's Kafka is fail-open behind the outbox (an open
 * kafka_producer never makes /health 503), and the chart has the fleet off by default and reads only
 * the keys its values file declares.
 */
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import * as Yaml from "yaml"

const root = fileURLToPath(new URL("../..", import.meta.url))
const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8")

describe("the docs agree with the code", () => {
  it("Kafka is fail-open in the example, and no doc says an open kafka_producer answers 503", () => {
    expect(OrchestratorConfig.defaults.kafka.failureMode).toBe("fail-open")
    expect(OrchestratorConfig.defaults.temporal.failureMode).toBe("fail-fast")
    for (const file of ["docs/runbook.md", "docs/configuration.md", "docs/observability.md"]) {
      const text = read(file)
      expect(text, file).not.toMatch(/503[^\n]*\(Kafka, Temporal,\s*MongoDB\)/)
      expect(text, file).not.toMatch(/fail-fast breaker \(Kafka, Temporal, MongoDB\)/)
    }
    expect(read("docs/configuration.md")).not.toMatch(/\| OPEN \(1\) \| 503 \|/)
  })

  it("docs/fleet.md: the chart's fleet is off by default, and every fleet key it shows is one the chart reads", () => {
    const values = Yaml.parse(read("deploy/helm/orchestrator-dynamic/values.yaml")) as {
      fleet: Record<string, unknown>
    }
    expect(values.fleet["enabled"]).toBe(false)
    const fleetDoc = read("docs/fleet.md")
    expect(fleetDoc).not.toMatch(/fleet on by default/)
    const shown = /```yaml\nreplicaCount: 3\nfleet:\n((?:  .*\n)+)/.exec(fleetDoc)?.[1] ?? ""
    const keys = [...shown.matchAll(/^ {2}(\w+):/gm)].map((m) => m[1]!)
    expect(keys.length).toBeGreaterThan(0)
    for (const key of keys) expect(Object.keys(values.fleet), key).toContain(key)
  })
})
