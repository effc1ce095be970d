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
 *
 * Ctrl-C closes every client and the server cleanly.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { redactCause } from "@neural-hive/resilience"
import { Effect, Layer, Logger } from "effect"
import * as App from "./App.ts"

const program = Effect.gen(function*() {
  const { config, layer } = yield* App.fromEnvironment
  yield* Effect.logInfo("orchestrator_starting").pipe(
    Effect.annotateLogs({
      service: config.service,
      host: config.host,
      port: config.port,
      fault_switch: config.faultSwitch === true ? "on" : "off",
      kafka: config.kafkaBrokers === undefined ? "embedded" : "real",
      temporal: config.temporalAddress === undefined ? "embedded" : "real",
      redis: config.redisUrl === undefined ? "embedded" : "real",
      mongodb: config.mongodbUrl === undefined ? "embedded" : "real"
    })
  )
  return yield* Layer.launch(layer).pipe(Effect.ensuring(Effect.logInfo("orchestrator_stopped")))
})

NodeRuntime.runMain(program.pipe(
  // The runtime prints why the program stopped, cause chain included: no password may reach it.
  Effect.catchCause((cause) => Effect.failCause(redactCause(cause))),
  Effect.provide(Logger.layer([Logger.consoleJson]))
))
