// Copies the alert rules (observability's breakers and policies, outbox, fleet) and the Grafana dashboard into the Helm chart,
// which can only read files inside itself (.Files.Get). One source of truth: test/deploy/helm.test.ts
// fails when the copies differ. Usage: node deploy/sync-chart-files.mjs
import { copyFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
for (
  const [from, to] of [
    ["packages/observability/alerts/circuit-breakers.rules.yml", "circuit-breakers.rules.yml"],
    ["packages/observability/alerts/policies.rules.yml", "policies.rules.yml"],
    ["packages/outbox/alerts/outbox.rules.yml", "outbox.rules.yml"],
    ["packages/fleet/alerts/fleet.rules.yml", "fleet.rules.yml"],
    ["packages/observability/dashboards/circuit-breakers.json", "circuit-breakers.json"]
  ]
) {
  copyFileSync(`${root}${from}`, `${root}deploy/helm/orchestrator-dynamic/files/${to}`)
  console.log(`${from} -> deploy/helm/orchestrator-dynamic/files/${to}`)
}
