/**
 * The layer graph of the service, for `main.ts` and the tests.
 */
import { Fleet } from "@neural-hive/fleet"
import { KafkaProducer } from "@neural-hive/kafka"
import { MongoStore } from "@neural-hive/mongodb"
import {
  type Http,
  HttpMetrics,
  Metrics,
  PolicyMetrics,
  ServiceName,
  Tracing,
  TransitionLog
} from "@neural-hive/observability"
import { Outbox, OutboxMetrics } from "@neural-hive/outbox"
import { RedisCache } from "@neural-hive/redis"
import { type CircuitBreakerOptionsError, Registry, type ResilienceConfig } from "@neural-hive/resilience"
import { TemporalClient } from "@neural-hive/temporal"
import { Effect, Layer } from "effect"
import * as AppConfig from "./AppConfig.ts"
import * as Embedded from "./Embedded.ts"
import * as HttpApp from "./HttpApp.ts"
import { defaultSettings, Orchestrator } from "./Orchestrator.ts"
import * as OrchestratorConfig from "./OrchestratorConfig.ts"
import * as Shutdown from "./Shutdown.ts"

/** The four dependencies: real clients where an endpoint is configured, in memory otherwise. */
export const dependencies = (config: AppConfig.AppConfig, settings: OrchestratorConfig.Settings) => {
  const breaker = (dependency: OrchestratorConfig.Dependency) =>
    OrchestratorConfig.toBreakerOptions(dependency, settings[dependency])
  // Each dependency's policies from its settings (an adaptive limit, retries, hedged reads), made with its layer.
  const withPolicies = <A, E, R>(
    dependency: OrchestratorConfig.Dependency,
    layer: (policies: ResilienceConfig.Policies) => Layer.Layer<A, E, R>
  ) => Layer.unwrap(Effect.map(OrchestratorConfig.policiesOf(dependency, settings[dependency]), layer))
  const credentials = config.credentials ?? {}
  const { kafkaBrokers, mongodbUrl, redisUrl, temporalAddress } = config
  const kafka = kafkaBrokers === undefined
    ? Embedded.kafka(settings)
    : withPolicies("kafka", (policies) =>
      KafkaProducer.layer({
        policies,
        brokers: kafkaBrokers,
        clientId: config.service,
        // The relay's producer: kafkajs's retry inside a send never writes a ticket twice.
        idempotent: true,
        breaker: breaker("kafka"),
        ...(credentials.kafkaSsl === undefined
          ? {}
          : { ssl: credentials.kafkaSsl.ca === undefined ? true : credentials.kafkaSsl }),
        ...(credentials.kafkaSasl === undefined ? {} : { sasl: credentials.kafkaSasl })
      }))
  const temporal = temporalAddress === undefined
    ? Embedded.temporal(settings)
    : withPolicies("temporal", (policies) =>
      TemporalClient.layer({
        policies,
        address: temporalAddress,
        namespace: config.temporalNamespace,
        breaker: breaker("temporal"),
        ...(credentials.temporalTls === undefined ? {} : {
          tls: {
            ...(credentials.temporalTls.ca === undefined
              ? {}
              : { serverRootCACertificate: Buffer.from(credentials.temporalTls.ca) }),
            ...(credentials.temporalTls.serverName === undefined
              ? {}
              : { serverNameOverride: credentials.temporalTls.serverName })
          }
        }),
        ...(credentials.temporalApiKey === undefined ? {} : { apiKey: credentials.temporalApiKey })
      }))
  const redis = redisUrl === undefined
    ? Embedded.redis(settings)
    : withPolicies("redis", (policies) =>
      RedisCache.layer({
        policies,
        url: redisUrl,
        breaker: breaker("redis"),
        ...(credentials.redisTlsCa === undefined ? {} : { tls: { ca: credentials.redisTlsCa } })
      }))
  const mongodb = mongodbUrl === undefined
    ? Embedded.mongodb(settings)
    : withPolicies("mongodb", (policies) =>
      MongoStore.layer({
        policies,
        url: mongodbUrl,
        breaker: breaker("mongodb"),
        ...(credentials.mongodbTlsCaFile === undefined
          ? {}
          : { clientOptions: { tls: true, tlsCAFile: credentials.mongodbTlsCaFile } })
      }))
  return Layer.mergeAll(kafka, temporal, redis, mongodb)
}

/** The dependencies that run in memory: those with no endpoint configured. */
export const embeddedDependencies = (config: AppConfig.AppConfig): ReadonlyArray<OrchestratorConfig.Dependency> => [
  ...(config.kafkaBrokers === undefined ? ["kafka" as const] : []),
  ...(config.temporalAddress === undefined ? ["temporal" as const] : []),
  ...(config.redisUrl === undefined ? ["redis" as const] : []),
  ...(config.mongodbUrl === undefined ? ["mongodb" as const] : [])
]

/** Opt-in (`FLEET_REDIS_URL`): the breakers act as one across the replicas of the group; off, nothing changes. */
export const fleet = (config: AppConfig.AppConfig): Layer.Layer<never, CircuitBreakerOptionsError, Registry.Registry> =>
  config.fleet === undefined
    ? Layer.empty
    : Fleet.layer({
      redis: config.fleet.redisUrl,
      group: config.fleet.group,
      pod: config.fleet.pod,
      shareCounts: config.fleet.shareCounts,
      circuits: config.fleet.circuits
    })

/** Everything: the HTTP server with its routes, the service, the dependencies and the observability. */
export const make = (config: AppConfig.AppConfig, settings: OrchestratorConfig.Settings) => {
  return HttpApp.layer({
    port: config.port,
    host: config.host,
    allowedHosts: config.allowedHosts,
    service: config.service,
    admin: config.adminToken,
    // Off unless asked for (FAULT_SWITCH=on), and then only for what runs embedded.
    faultSwitch: config.faultSwitch === true ? { embedded: embeddedDependencies(config) } : undefined,
    readiness: { breakers: config.readinessBreakers ?? [] } satisfies Http.Readiness,
    // SIGTERM drains (DRAIN_SECONDS); a Ctrl-C at a terminal does not wait.
    drain: { millis: config.drainMillis ?? 0, skip: () => Shutdown.stopSignal() === "SIGINT" }
  }).pipe(
    Layer.provide(Orchestrator.layer()),
    // The backlog in /metrics (outbox_pending, outbox_oldest_pending_seconds, ...).
    Layer.provideMerge(OutboxMetrics.layer.pipe(Layer.provide(ServiceName.layer(config.service)))),
    // Publishes the stored tickets to Kafka through kafka_producer: a Kafka outage queues, never refuses.
    Layer.provideMerge(
      Outbox.layer({
        collection: defaultSettings.ticketsCollection,
        topic: defaultSettings.ticketsTopic,
        // OUTBOX_DELIVERY=exactly-once: Kafka transactions, each ticket once to read_committed readers.
        ...(config.outbox?.delivery === "exactly-once"
          ? { delivery: "exactly-once", transactionalId: config.outbox.transactionalId }
          : {})
      })
    ),
    Layer.provideMerge(dependencies(config, settings)),
    Layer.provideMerge(Embedded.Faults.layer(config.faults)),
    Layer.provideMerge(TransitionLog.layer({ service: config.service })),
    // Every protected call annotates the current span (Orchestrator.submit's); add Tracing.layerOtel to export them.
    Layer.provideMerge(Tracing.layer),
    Layer.provideMerge(fleet(config)),
    // Request durations per route, and the process's CPU, memory, GC and event-loop metrics.
    Layer.provideMerge(
      Layer.mergeAll(
        HttpMetrics.layer({ service: config.service }),
        Metrics.layerDefaultMetrics({ service: config.service }),
        // Every circuit's policies (resilience_bulkhead_*, resilience_retry_*, resilience_hedge*), found in the Registry.
        PolicyMetrics.layerRegistry({ service: config.service })
      )
    ),
    Layer.provideMerge(Metrics.layer({ service: config.service })),
    Layer.provideMerge(Registry.layer),
    // The `service` of every signal a layer names by the ServiceName reference (the fleet's gauge, logs).
    Layer.provide(ServiceName.layer(config.service))
  )
}

/** Reads the environment and the seed's YAML file; a bad value stops here, before anything starts. */
export const fromEnvironment = Effect.gen(function*() {
  const config = yield* AppConfig.config
  const settings = yield* OrchestratorConfig.load(config.resilienceConfig, { env: process.env })
  return { config, settings, layer: make(config, settings) }
})
