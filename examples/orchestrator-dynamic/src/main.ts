/**
 * The Orchestrator Dynamic service, bootstrapped from layers:
 * config -> breaker registry -> observability (JSON logs, Prometheus metrics,
 * HTTP on :8000) -> KafkaProducer, TemporalClient, RedisCache, MongoStore ->
 * the service. With no endpoints configured every dependency runs in memory,
 * so `npm start` works on a fresh machine; it listens on 127.0.0.1 unless
 * HTTP_HOST says otherwise, and `FAULT_SWITCH=on npm start` adds a fault switch:
 *
 *   curl -X POST localhost:8000/plans -H 'content-type: application/json' -d '{"id":"p1","steps":["plan","execute"]}'
 *   curl -X POST localhost:8000/faults/kafka/down -H 'content-type: application/json'   # watch kafka_producer trip
 *   curl localhost:8000/health; curl localhost:8000/metrics | grep circuit_breaker_state
 *   open http://localhost:8000/                       # the live breaker board
 *
 * Logs are flat JSON lines in the Python service's schema (`Logging`); traces
 * go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`Otel`),
 * flushed on SIGTERM. Ctrl-C closes every client and the server cleanly.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Logging, Otel, ServiceName } from "@neural-hive/observability"
import { redactCause } from "@neural-hive/resilience"
import { Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import * as App from "./App.ts"
import type * as AppConfig from "./AppConfig.ts"
import * as Shutdown from "./Shutdown.ts"

/** One line once the port is bound: the URL is the one really listened on (port 0 included). */
const listening = Layer.effectDiscard(Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  yield* Effect.logInfo("service_listening").pipe(
    Effect.annotateLogs({ url: HttpServer.formatAddress(server.address) })
  )
}))

const program = Effect.gen(function*() {
  const { config, layer } = yield* App.fromEnvironment
  return yield* run(config, layer).pipe(
    // SERVICE_NAME names every signal: the logs' `logger`, the trace resource (unless OTEL_SERVICE_NAME
    // says otherwise) and every metric's `service` label, the fleet's included. Otel outermost: released
    // last, so the spans of the requests in flight at SIGTERM are flushed too.
    Effect.provide(Otel.layerConfig),
    Effect.provide(Logging.layer()),
    Effect.provide(ServiceName.layer(config.service))
  )
})

const run = (config: AppConfig.AppConfig, layer: Layer.Layer<HttpServer.HttpServer, unknown>) =>
  Effect.gen(function*() {
    yield* Effect.logInfo("orchestrator_starting").pipe(
      Effect.annotateLogs({
        service: config.service,
        host: config.host,
        port: config.port,
        fault_switch: config.faultSwitch === true ? "on" : "off",
        kafka: config.kafkaBrokers === undefined ? "embedded" : "real",
        temporal: config.temporalAddress === undefined ? "embedded" : "real",
        redis: config.redisUrl === undefined ? "embedded" : "real",
        mongodb: config.mongodbUrl === undefined ? "embedded" : "real",
        // What secures each connection, never the secrets themselves.
        kafka_sasl: config.credentials?.kafkaSasl?.mechanism ?? "none",
        kafka_ssl: config.credentials?.kafkaSsl !== undefined,
        temporal_tls: config.credentials?.temporalTls !== undefined,
        temporal_api_key: config.credentials?.temporalApiKey !== undefined
      })
    )
    return yield* Layer.launch(listening.pipe(Layer.provideMerge(layer))).pipe(
      Effect.ensuring(Effect.logInfo("service_stopped").pipe(Effect.annotateLogs({ service: config.service })))
    )
  })

// Before the runtime's own listeners: the drain must know whether SIGTERM or a Ctrl-C is stopping it.
Shutdown.watchSignals()
NodeRuntime.runMain(program.pipe(
  // The runtime prints why the program stopped, cause chain included: no password may reach it.
  Effect.catchCause((cause) => Effect.failCause(redactCause(cause))),
  // Before SERVICE_NAME is read (a bad config), lines are named by the default service name.
  Effect.provide(Logging.layer())
))
