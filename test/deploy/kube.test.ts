/**
 * The Helm chart against a real Kubernetes API server: kube-apiserver 1.34 over etcd 3.6 (both built by
 * .ci/provision.sh from the Go module proxy, started here on 127.0.0.1 with private directories), with the
 * prometheus-operator CRDs (ServiceMonitor, PrometheusRule) applied first. `helm template` with the default
 * and the fleet values is piped into `kubectl apply --dry-run=server --validate=strict`: the server decodes
 * every object strictly (an unknown or mistyped field is an error), runs admission and the CRDs' schemas,
 * and stores nothing. The negative cases prove that the check can fail, and name the field it fails on.
 */
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Yaml from "yaml"
import { type KubeApiserverHandle, startKubeApiserver } from "../../tools/rig/servers.ts"
import { chart, helm, type Run, run } from "./tools.ts"

const namespace = "neural-hive"

let kube: KubeApiserverHandle | undefined

const server = (): KubeApiserverHandle => {
  if (kube === undefined) throw new Error("kube-apiserver did not start (see beforeAll)")
  return kube
}

/** kubectl of the server's release, on its kubeconfig (the discovery cache goes to the private HOME). */
const kubectl = (args: ReadonlyArray<string>, input?: string): Run =>
  run(server().kubectl, ["--kubeconfig", server().kubeconfig, ...args], input === undefined ? {} : { input })

/** The chart rendered for the namespace, with the given values files of the chart and `--set` style flags. */
const render = (values: ReadonlyArray<string>, flags: ReadonlyArray<string> = []): string => {
  const rendered = helm(
    "template",
    "od",
    chart,
    "--namespace",
    namespace,
    ...values.flatMap((file) => ["-f", path.join(chart, file)]),
    ...flags
  )
  expect(rendered.status, rendered.output).toBe(0)
  return rendered.stdout
}

/** `kubectl apply --dry-run=server` of the manifests, strict unless told otherwise. */
const dryRun = (manifests: string, validate: "strict" | "false" = "strict"): Run =>
  kubectl(["apply", "--namespace", namespace, "--dry-run=server", `--validate=${validate}`, "-f", "-"], manifests)

/** `kind/name` of every object in a multi-document YAML stream, as kubectl names them (lower-case kind). */
const objects = (manifests: string): ReadonlyArray<string> =>
  Yaml.parseAllDocuments(manifests)
    .map((doc) => doc.toJS() as { kind: string; metadata: { name: string } } | null)
    .filter((m) => m !== null)
    .map((m) => `${m.kind.toLowerCase()}/${m.metadata.name}`)

beforeAll(async () => {
  kube = await startKubeApiserver()
  const crds = kubectl(["apply", "--server-side", ...server().crds.flatMap((file) => ["-f", file])])
  expect(crds.status, crds.output).toBe(0)
  const established = kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=30s",
    "crd/servicemonitors.monitoring.coreos.com",
    "crd/prometheusrules.monitoring.coreos.com"
  ])
  expect(established.status, established.output).toBe(0)
  const created = kubectl(["create", "namespace", namespace])
  expect(created.status, created.output).toBe(0)
}, 120_000)

afterAll(async () => {
  await kube?.stop()
})

describe("Helm chart on a real kube-apiserver (server-side strict dry run)", () => {
  it("the server is the pinned release, and the CRDs are there", () => {
    const version = kubectl(["version", "--output=json"])
    expect(version.status, version.output).toBe(0)
    const { serverVersion } = JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } }
    expect(serverVersion.gitVersion).toMatch(/^v1\.34\.\d+$/)
    const resources = kubectl(["api-resources", "--api-group=monitoring.coreos.com", "--output=name"])
    expect(resources.status, resources.output).toBe(0)
    expect(resources.stdout.split("\n")).toEqual(
      expect.arrayContaining(["prometheusrules.monitoring.coreos.com", "servicemonitors.monitoring.coreos.com"])
    )
  })

  for (const values of [[], ["values-fleet.yaml"]]) {
    it(`accepts every object rendered with ${values.length === 0 ? "the default values" : values.join(", ")}`, () => {
      const manifests = render(values)
      const names = objects(manifests)
      expect(names.toSorted()).toEqual([
        "configmap/od-orchestrator-dynamic-config",
        "configmap/od-orchestrator-dynamic-dashboard",
        "deployment/od-orchestrator-dynamic",
        "poddisruptionbudget/od-orchestrator-dynamic",
        "prometheusrule/od-orchestrator-dynamic",
        "service/od-orchestrator-dynamic",
        "servicemonitor/od-orchestrator-dynamic"
      ])
      const applied = dryRun(manifests)
      expect(applied.status, applied.output).toBe(0)
      // kubectl names each object kind.group/name: deployment.apps/od-orchestrator-dynamic created (server dry run)
      const accepted = [...applied.stdout.matchAll(/^([a-z]+)(?:\.[a-z.]+)?\/(\S+) created \(server dry run\)$/gm)]
        .map(([, kind, name]) => `${kind}/${name}`)
      expect(accepted.toSorted()).toEqual(names.toSorted())
      // A dry run stores nothing.
      const stored = kubectl(["get", "deployments,services,configmaps", "--namespace", namespace, "--output=name"])
      expect(stored.status, stored.output).toBe(0)
      expect(stored.stdout).not.toContain("od-orchestrator-dynamic")
    })
  }

  it("refuses an unknown field in the Deployment, naming it (and only the strict decoding catches it)", () => {
    // A typo in a value the template passes through (securityContext is copied as YAML).
    const manifests = render([], ["--set", "securityContext.runAsNonRot=true"])
    const strict = dryRun(manifests)
    expect(strict.status).not.toBe(0)
    expect(strict.output).toContain(
      `unknown field "spec.template.spec.containers[0].securityContext.runAsNonRot"`
    )
    expect(strict.output).not.toContain("deployment.apps/od-orchestrator-dynamic created")
    // Without field validation the server drops the field silently: the strict option is what finds it.
    const lax = dryRun(manifests, "false")
    expect(lax.status, lax.output).toBe(0)
    expect(lax.output).toContain("deployment.apps/od-orchestrator-dynamic created (server dry run)")
  })

  it("refuses a mistyped field in the Deployment, naming it", () => {
    const strict = dryRun(render([], ["--set-string", "probes.startup.periodSeconds=ten"]))
    expect(strict.status).not.toBe(0)
    expect(strict.output).toMatch(/cannot unmarshal string into .*startupProbe\.periodSeconds of type int32/)
    expect(strict.output).not.toContain("deployment.apps/od-orchestrator-dynamic created")
  })

  it("checks the ServiceMonitor against its CRD's schema, naming the field", () => {
    const strict = dryRun(render([], ["--set-string", "serviceMonitor.interval=15 seconds"]))
    expect(strict.status).not.toBe(0)
    expect(strict.output).toContain(
      `The ServiceMonitor "od-orchestrator-dynamic" is invalid: spec.endpoints[0].interval: Invalid value: "15 seconds"`
    )
  })
})
