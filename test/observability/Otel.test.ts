import { assert, describe, it } from "@effect/vitest"
import { Otel } from "@neural-hive/observability"
import { ConfigProvider, Effect, Layer, Option, Redacted } from "effect"

const settings = (env: Record<string, string>) => {
  const result = Otel.parse(env)
  assert.strictEqual(result._tag, "Ok", result._tag === "Error" ? result.message : "")
  return result._tag === "Ok" ? result.settings : Option.none()
}

const error = (env: Record<string, string>) => {
  const result = Otel.parse(env)
  assert.strictEqual(result._tag, "Error")
  return result._tag === "Error" ? result.message : ""
}

const build = (env: Record<string, string>) =>
  Layer.build(Otel.layerConfig).pipe(
    Effect.scoped,
    Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
  )

describe("Otel", () => {
  it("is off without an endpoint, or when disabled", () => {
    assert.isTrue(Option.isNone(settings({})))
    assert.isTrue(Option.isNone(settings({ OTEL_SERVICE_NAME: "x" })))
    assert.isTrue(
      Option.isNone(settings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }))
    )
    assert.isTrue(
      Option.isNone(settings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" }))
    )
  })

  it("takes the standard variables: base endpoint + /v1/traces, http/protobuf by default, batching defaults", () => {
    const s = Option.getOrThrow(settings({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
      OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=abc%3D1, tenant = hive",
      OTEL_SERVICE_NAME: "orchestrator-dynamic",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod,service.version=1.2.3",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25"
    }))
    assert.strictEqual(s.url, "http://collector:4318/v1/traces")
    assert.strictEqual(s.protocol, "http/protobuf")
    assert.deepStrictEqual(Redacted.value(s.headers), { "x-api-key": "abc=1", tenant: "hive" })
    assert.strictEqual(s.serviceName, "orchestrator-dynamic")
    assert.deepStrictEqual(s.resourceAttributes, { "deployment.environment": "prod", "service.version": "1.2.3" })
    assert.strictEqual(s.sampler, "parentbased_traceidratio")
    assert.strictEqual(s.samplerRatio, 0.25)
    assert.deepStrictEqual([s.maxQueueSize, s.maxExportBatchSize, s.scheduledDelayMillis, s.exportTimeoutMillis], [
      2048,
      512,
      5000,
      30000
    ])
    assert.strictEqual(
      Otel.makeSampler(s).toString(),
      "ParentBased{root=TraceIdRatioBased{0.25}, remoteParentSampled=AlwaysOnSampler, remoteParentNotSampled=AlwaysOffSampler, localParentSampled=AlwaysOnSampler, localParentNotSampled=AlwaysOffSampler}"
    )
  })

  it("the traces endpoint is used as is and wins over the base; the traces protocol wins too", () => {
    const s = Option.getOrThrow(settings({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://b.example/otlp/traces",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
      OTEL_BSP_MAX_QUEUE_SIZE: "100",
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "10"
    }))
    assert.strictEqual(s.url, "https://b.example/otlp/traces")
    assert.strictEqual(s.protocol, "http/json")
    assert.strictEqual(s.maxQueueSize, 100)
  })

  it("a bad value names the variable and what is allowed; header values are never shown", () => {
    assert.include(error({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }), "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert.include(error({ OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://c" }), "expected http: or https:")
    const credentials = error({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://user:s3cr3t@c:4318" })
    assert.include(credentials, "OTEL_EXPORTER_OTLP_HEADERS")
    assert.notInclude(credentials, "s3cr3t")
    const grpc = error({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })
    assert.include(grpc, "OTEL_EXPORTER_OTLP_PROTOCOL")
    assert.include(grpc, "http/protobuf")
    const header = error({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_HEADERS: "a=1,s3cr3ttoken"
    })
    assert.include(header, "OTEL_EXPORTER_OTLP_HEADERS: entry 2")
    assert.notInclude(header, "s3cr3t")
    assert.include(
      error({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_SAMPLER: "sometimes" }),
      "always_on, always_off, traceidratio"
    )
    assert.include(
      error({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_SAMPLER_ARG: "2" }),
      "OTEL_TRACES_SAMPLER_ARG"
    )
    assert.include(
      error({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "4096" }),
      "over OTEL_BSP_MAX_QUEUE_SIZE"
    )
    assert.include(
      error({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_BSP_SCHEDULE_DELAY: "-1" }),
      "OTEL_BSP_SCHEDULE_DELAY"
    )
  })

  it.effect("layerConfig reads the ConfigProvider: nothing without an endpoint, a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      yield* build({})
      const failure = yield* Effect.flip(build({ OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" }))
      assert.include(String(failure), "OTEL_EXPORTER_OTLP_ENDPOINT")
      // A valid endpoint builds the exporter without connecting (spans are sent in the background).
      yield* build({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", OTEL_BSP_EXPORT_TIMEOUT: "200" })
    }))
})
