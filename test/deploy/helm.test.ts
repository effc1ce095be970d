/**
 * The Helm chart (deploy/helm/orchestrator-dynamic), checked with the real tools: helm v3.22 (built by
 * .ci/provision.sh from the Go module proxy) lints and renders it with the default and the fleet values;
 * promtool checks the PrometheusRule taken from the rendered chart; the rendered ConfigMap's circuitBreaker
 * block loads through the service's own config loader (OrchestratorConfig: the Orchestrator Dynamic format
 * over the generic ResilienceConfig).
 */
import * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Yaml from "yaml"
import { promtool } from "../observability/promtool.ts"
import { chart, helm, root } from "./tools.ts"

interface Manifest {
  readonly kind: string
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string> }
  readonly spec?: any
  readonly data?: Record<string, string>
}

const render = (...values: ReadonlyArray<string>): ReadonlyArray<Manifest> => {
  const run = helm("template", "od", chart, ...values.flatMap((file) => ["-f", path.join(chart, file)]))
  expect(run.status, run.output).toBe(0)
  return Yaml.parseAllDocuments(run.stdout).map((doc) => doc.toJS() as Manifest).filter((m) => m !== null)
}

const one = (manifests: ReadonlyArray<Manifest>, kind: string) => {
  const found = manifests.filter((m) => m.kind === kind)
  expect(found.map((m) => m.kind), kind).toHaveLength(1)
  return found[0]!
}

const container = (manifests: ReadonlyArray<Manifest>) => one(manifests, "Deployment").spec.template.spec.containers[0]

const env = (manifests: ReadonlyArray<Manifest>) =>
  new Map<string, any>(container(manifests).env.map((e: any) => [e.name, e]))

/** The `groups` of an alert rules file of the repository. */
const groups = (file: string) =>
  Yaml.parse(fs.readFileSync(path.join(root, file), "utf8")).groups as ReadonlyArray<unknown>

describe("Helm chart", () => {
  it("carries the packages' alert rules and the dashboard byte for byte (node deploy/sync-chart-files.mjs)", () => {
    for (
      const [source, copy] of [
        ["packages/observability/alerts/circuit-breakers.rules.yml", "files/circuit-breakers.rules.yml"],
        ["packages/observability/alerts/policies.rules.yml", "files/policies.rules.yml"],
        ["packages/outbox/alerts/outbox.rules.yml", "files/outbox.rules.yml"],
        ["packages/fleet/alerts/fleet.rules.yml", "files/fleet.rules.yml"],
        ["packages/observability/dashboards/circuit-breakers.json", "files/circuit-breakers.json"]
      ]
    ) {
      expect(fs.readFileSync(path.join(chart, copy!), "utf8"), `${copy} is stale: run node deploy/sync-chart-files.mjs`)
        .toBe(fs.readFileSync(path.join(root, source!), "utf8"))
    }
  })

  it("helm lint passes with the default values and with the fleet values", () => {
    for (const values of [[], ["-f", path.join(chart, "values-fleet.yaml")]]) {
      const run = helm("lint", "--strict", chart, ...values)
      expect(run.status, run.output).toBe(0)
      expect(run.output).toContain("0 chart(s) failed")
    }
  })

  it("renders a hardened Deployment: replicas, probes on /live and /ready, resources, non-root, read-only root", () => {
    const manifests = render()
    expect(manifests.map((m) => m.kind).toSorted()).toEqual([
      "ConfigMap",
      "ConfigMap",
      "Deployment",
      "PodDisruptionBudget",
      "PrometheusRule",
      "Service",
      "ServiceMonitor"
    ])
    const deployment = one(manifests, "Deployment")
    expect(deployment.spec.replicas).toBe(3)
    const pod = deployment.spec.template.spec
    expect(pod.securityContext.runAsNonRoot).toBe(true)
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0)
    const c = container(manifests)
    expect(c.livenessProbe.httpGet.path).toBe("/live")
    expect(c.readinessProbe.httpGet.path).toBe("/ready")
    expect(c.startupProbe.httpGet.path).toBe("/live")
    expect(c.startupProbe.failureThreshold * c.startupProbe.periodSeconds).toBeGreaterThanOrEqual(60)
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true)
    expect(c.securityContext.allowPrivilegeEscalation).toBe(false)
    expect(c.securityContext.capabilities.drop).toEqual(["ALL"])
    expect(c.resources.requests.cpu).toBeDefined()
    expect(c.resources.limits.memory).toBeDefined()
    expect(c.volumeMounts.map((m: any) => m.mountPath)).toContain("/tmp")
    // Secrets come from a Secret, never inline.
    const vars = env(manifests)
    for (const name of ["REDIS_URL", "MONGODB_URL", "ADMIN_TOKEN"]) {
      expect(vars.get(name)?.valueFrom?.secretKeyRef?.name, name).toBe("orchestrator-dynamic-secrets")
      expect(vars.get(name)?.value, name).toBeUndefined()
    }
    expect(vars.get("HTTP_HOST")?.value).toBe("0.0.0.0")
    // In-cluster admin calls use the Service's name: it must pass the Host check of the browser routes.
    const allowed = vars.get("HTTP_ALLOWED_HOSTS")?.value?.split(",") ?? []
    expect(allowed).toContain(one(manifests, "Service").metadata.name)
    expect(allowed).toContain(`${one(manifests, "Service").metadata.name}.default.svc.cluster.local`)
    expect(vars.has("FLEET_REDIS_URL")).toBe(false)
    expect(vars.has("OTEL_EXPORTER_OTLP_ENDPOINT")).toBe(false)
    expect(one(manifests, "PodDisruptionBudget").spec.maxUnavailable).toBe(1)
    // Shutdown: preStop sleep, then the service drains for readiness period x failureThreshold (5 x 2 s),
    // all inside the grace period.
    expect(c.lifecycle.preStop.sleep.seconds).toBe(2)
    expect(vars.get("DRAIN_SECONDS")?.value).toBe("10")
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(2 + 10 + 15)
    expect(one(manifests, "ServiceMonitor").spec.endpoints[0]).toMatchObject({ port: "http", path: "/metrics" })
    const service = one(manifests, "Service")
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels)
  })

  it("fleet values: FLEET_REDIS_URL from the Secret, FLEET_GROUP, POD_NAME from the downward API, traces on", () => {
    const manifests = render("values-fleet.yaml")
    expect(one(manifests, "Deployment").spec.replicas).toBe(4)
    const vars = env(manifests)
    expect(vars.get("FLEET_REDIS_URL").valueFrom.secretKeyRef).toMatchObject({ key: "FLEET_REDIS_URL" })
    expect(vars.get("FLEET_GROUP").value).toBe("orchestrator-dynamic-prod")
    expect(vars.get("POD_NAME").valueFrom.fieldRef.fieldPath).toBe("metadata.name")
    expect(vars.get("OTEL_EXPORTER_OTLP_ENDPOINT").value).toBe("http://otel-collector.observability:4318")
    expect(vars.get("OTEL_EXPORTER_OTLP_PROTOCOL").value).toBe("http/protobuf")
  })

  it("the rendered PrometheusRule holds the breakers', the policies' and the outbox's alert groups (and the fleet's when on), and promtool accepts it", () => {
    const breakers = [
      ...groups("packages/observability/alerts/circuit-breakers.rules.yml"),
      ...groups("packages/observability/alerts/policies.rules.yml")
    ]
    const outbox = groups("packages/outbox/alerts/outbox.rules.yml")
    const fleet = groups("packages/fleet/alerts/fleet.rules.yml")
    for (
      const [values, expected] of [
        [[], [...breakers, ...outbox]],
        [["values-fleet.yaml"], [...breakers, ...outbox, ...fleet]]
      ] as const
    ) {
      const rule = one(render(...values), "PrometheusRule")
      expect(rule.spec).toEqual({ groups: expected })
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nh-rule-"))
      const file = path.join(dir, "rules.yml")
      fs.writeFileSync(file, Yaml.stringify(rule.spec))
      const run = promtool(["check", "rules", file])
      fs.rmSync(dir, { recursive: true, force: true })
      expect(run.status, run.output).toBe(0)
      expect(run.output).toMatch(/SUCCESS: \d+ rules found/)
    }
  })

  it("the rendered ConfigMap's circuitBreaker block loads through the config loader, as the example's file does", async () => {
    const manifests = render()
    const config = manifests.find((m) => m.kind === "ConfigMap" && m.data?.["resilience.yaml"] !== undefined)!
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nh-config-"))
    const file = path.join(dir, "resilience.yaml")
    fs.writeFileSync(file, config.data!["resilience.yaml"]!)
    const rendered = await Effect.runPromise(OrchestratorConfig.load(file, { env: {} }))
    const example = await Effect.runPromise(
      OrchestratorConfig.load(path.join(root, "examples/orchestrator-dynamic/config/resilience.yaml"), { env: {} })
    )
    fs.rmSync(dir, { recursive: true, force: true })
    expect(rendered).toEqual(example)
    // The values file holds the seed's block verbatim.
    const values = Yaml.parse(fs.readFileSync(path.join(chart, "values.yaml"), "utf8"))
    expect(values.circuitBreaker.kafka).toEqual({
      enabled: true,
      failMax: 5,
      timeoutSeconds: 60,
      recoveryTimeoutSeconds: 30
    })
    expect(values.circuitBreaker.redis.recoveryTimeoutSeconds).toBe(60)
  })

  it("ships the Grafana dashboard as a ConfigMap for the sidecar", () => {
    const dashboard = render().find((m) => m.kind === "ConfigMap" && m.data?.["circuit-breakers.json"] !== undefined)!
    expect(dashboard.metadata.labels?.["grafana_dashboard"]).toBe("1")
    expect(JSON.parse(dashboard.data!["circuit-breakers.json"]!).uid).toBe("neural-hive-circuit-breakers")
  })
})

const set = (...pairs: ReadonlyArray<string>) => helm("template", "od", chart, ...pairs.flatMap((p) => ["--set", p]))

describe("Helm chart: shutdown", () => {
  it("an explicit drain is used as given; a grace period shorter than preStop + drain + 15 s is refused", () => {
    const given = set("shutdown.drainSeconds=20", "terminationGracePeriodSeconds=40")
    expect(given.status, given.output).toBe(0)
    expect(given.stdout).toMatch(/name: DRAIN_SECONDS\n\s+value: "20"/)
    const short = set("shutdown.drainSeconds=20", "terminationGracePeriodSeconds=30")
    expect(short.status).not.toBe(0)
    expect(short.output).toContain("terminationGracePeriodSeconds 30 is shorter than preStop + drain + 15 s = 37")
  })
})

describe("Helm chart: credentials", () => {
  it("secrets come from the Secret (secretKeyRef), CA files from a Secret volume, nothing secret in a ConfigMap", () => {
    const run = set(
      "kafka.sasl.mechanism=scram-sha-512",
      "kafka.sasl.username=orchestrator",
      "kafka.ssl=true",
      "temporal.tlsServerName=temporal.internal",
      "tls.caSecret=od-ca",
      "tls.kafkaCaKey=kafka-ca.pem",
      "tls.redisCaKey=redis-ca.pem",
      "tls.mongodbCaKey=mongodb-ca.pem",
      "tls.temporalCaKey=temporal-ca.pem"
    )
    expect(run.status, run.output).toBe(0)
    const manifests = Yaml.parseAllDocuments(run.stdout).map((doc) => doc.toJS() as Manifest).filter((m) => m !== null)
    const vars = env(manifests)
    for (const name of ["KAFKA_SASL_PASSWORD", "TEMPORAL_API_KEY"]) {
      expect(vars.get(name)?.valueFrom?.secretKeyRef, name).toEqual({
        name: "orchestrator-dynamic-secrets",
        key: name,
        optional: true
      })
      expect(vars.get(name)?.value, name).toBeUndefined()
    }
    expect(vars.get("KAFKA_SASL_MECHANISM")?.value).toBe("scram-sha-512")
    expect(vars.get("KAFKA_SASL_USERNAME")?.value).toBe("orchestrator")
    expect(vars.get("KAFKA_SSL")?.value).toBe("true")
    expect(vars.get("TEMPORAL_TLS_SERVER_NAME")?.value).toBe("temporal.internal")
    expect(vars.get("KAFKA_SSL_CA_FILE")?.value).toBe("/etc/orchestrator-dynamic-ca/kafka-ca.pem")
    expect(vars.get("REDIS_TLS_CA_FILE")?.value).toBe("/etc/orchestrator-dynamic-ca/redis-ca.pem")
    expect(vars.get("MONGODB_TLS_CA_FILE")?.value).toBe("/etc/orchestrator-dynamic-ca/mongodb-ca.pem")
    expect(vars.get("TEMPORAL_TLS_CA_FILE")?.value).toBe("/etc/orchestrator-dynamic-ca/temporal-ca.pem")
    const pod = one(manifests, "Deployment").spec.template.spec
    expect(pod.volumes.find((v: any) => v.name === "ca")?.secret?.secretName).toBe("od-ca")
    expect(container(manifests).volumeMounts.find((m: any) => m.name === "ca")).toMatchObject({
      mountPath: "/etc/orchestrator-dynamic-ca",
      readOnly: true
    })
    // No credential setting reaches a ConfigMap.
    for (const map of manifests.filter((m) => m.kind === "ConfigMap")) {
      expect(JSON.stringify(map.data ?? {})).not.toMatch(/SASL|API_KEY|orchestrator-dynamic-ca/)
    }
  })

  it("off by default: no SASL, TLS or CA variable and no CA volume; a CA key without tls.caSecret is refused", () => {
    const vars = env(render())
    for (
      const name of ["KAFKA_SASL_MECHANISM", "KAFKA_SASL_PASSWORD", "KAFKA_SSL", "KAFKA_SSL_CA_FILE", "TEMPORAL_TLS"]
    ) {
      expect(vars.has(name), name).toBe(false)
    }
    expect(container(render()).volumeMounts.map((m: any) => m.name)).not.toContain("ca")
    const orphan = set("tls.redisCaKey=redis-ca.pem")
    expect(orphan.status).not.toBe(0)
    expect(orphan.output).toContain("REDIS_TLS_CA_FILE: tls.caSecret names no Secret")
    const noUser = set("kafka.sasl.mechanism=plain")
    expect(noUser.status).not.toBe(0)
    expect(noUser.output).toContain("kafka.sasl.username is required")
  })
})

describe("Dockerfile", () => {
  it("is multi-stage on Node 24 slim, installs production dependencies only, and runs as a non-root user", () => {
    const text = fs.readFileSync(path.join(root, "Dockerfile"), "utf8")
    expect(text).toMatch(/^ARG NODE_IMAGE=node:24-slim$/m)
    expect(text.match(/^FROM \$\{NODE_IMAGE\}/gm)).toHaveLength(2)
    expect(text).toMatch(/^HEALTHCHECK /m)
    expect(text).toContain("--omit=dev")
    expect(text).toMatch(/^USER 10001:10001$/m)
    // The image has no build: @neural-hive/* load from their sources, as with npm start (test/examples/launch.test.ts).
    expect(text).toMatch(
      /^CMD \["node", "--conditions=@neural-hive\/source", "examples\/orchestrator-dynamic\/src\/main\.ts"\]$/m
    )
  })
})
