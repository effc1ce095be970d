/**
 * The layer graph of the service, for `main.ts` and the tests.
 */
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import { type Http, HttpMetrics, Metrics, Tracing, TransitionLog } from "@neural-hive/observability"
import { RedisCache } from "@neural-hive/redis"
import { Registry } from "@neural-hive/resilience"
import { TemporalClient } from "@neural-hive/temporal"
import { Effect, Layer } from "effect"
import * as AppConfig from "./AppConfig.ts"
import * as Embedded from "./Embedded.ts"
import * as HttpApp from "./HttpApp.ts"
import { Orchestrator } from "./Orchestrator.ts"
import * as OrchestratorConfig from "./OrchestratorConfig.ts"

/** The four dependencies: real clients where an endpoint is configured, in memory otherwise. */
export const dependencies = (config: AppConfig.AppConfig, settings: OrchestratorConfig.Settings) => {
  const breaker = (dependency: OrchestratorConfig.Dependency) =>
    OrchestratorConfig.toBreakerOptions(dependency, settings[dependency])
  const kafka = config.kafkaBrokers === undefined
    ? Embedded.kafka(settings)
    : KafkaProducer.layer({ brokers: config.kafkaBrokers, clientId: config.service, breaker: breaker("kafka") })
  const temporal = config.temporalAddress === undefined
    ? Embedded.temporal(settings)
    : TemporalClient.layer({
      address: config.temporalAddress,
      namespace: config.temporalNamespace,
      breaker: breaker("temporal")
    })
  const redis = config.redisUrl === undefined
    ? Embedded.redis(settings)
    : RedisCache.layer({ url: config.redisUrl, breaker: breaker("redis") })
  const mongodb = config.mongodbUrl === undefined
    ? Embedded.mongodb(settings)
    : MongoStore.layer({ url: config.mongodbUrl, breaker: breaker("mongodb") })
  return Layer.mergeAll(kafka, temporal, redis, mongodb)
}

/** The dependencies that run in memory: those with no endpoint configured. */
export const embeddedDependencies = (config: AppConfig.AppConfig): ReadonlyArray<OrchestratorConfig.Dependency> => [
  ...(config.kafkaBrokers === undefined ? ["kafka" as const] : []),
  ...(config.temporalAddress === undefined ? ["temporal" as const] : []),
  ...(config.redisUrl === undefined ? ["redis" as const] : []),
  ...(config.mongodbUrl === undefined ? ["mongodb" as const] : [])
]

/** Everything: the HTTP server with its routes, the service, the dependencies and the observability. */
export const make = (config: AppConfig.AppConfig, settings: OrchestratorConfig.Settings) => {
  return HttpApp.layer({
    port: config.port,
    host: config.host,
    service: config.service,
    admin: config.adminToken,
    // Off unless asked for (FAULT_SWITCH=on), and then only for what runs embedded.
    faultSwitch: config.faultSwitch === true ? { embedded: embeddedDependencies(config) } : undefined,
    readiness: { breakers: config.readinessBreakers ?? [] } satisfies Http.Readiness
  }).pipe(
    Layer.provide(Orchestrator.layer()),
    Layer.provideMerge(dependencies(config, settings)),
    Layer.provideMerge(Embedded.Faults.layer(config.faults)),
    Layer.provideMerge(TransitionLog.layer({ service: config.service })),
    // Every protected call annotates the current span (Orchestrator.submit's); add Tracing.layerOtel to export them.
    Layer.provideMerge(Tracing.layer),
    // Request durations per route, and the process's CPU, memory, GC and event-loop metrics.
    Layer.provideMerge(
      Layer.merge(
        HttpMetrics.layer({ service: config.service }),
        Metrics.layerDefaultMetrics({ service: config.service })
      )
    ),
    Layer.provideMerge(Metrics.layer({ service: config.service })),
    Layer.provideMerge(Registry.layer)
  )
}

/** Reads the environment and the seed's YAML file; a bad value stops here, before anything starts. */
export const fromEnvironment = Effect.gen(function*() {
  const config = yield* AppConfig.config
  const settings = yield* OrchestratorConfig.load(config.resilienceConfig, { env: process.env })
  return { config, settings, layer: make(config, settings) }
})
