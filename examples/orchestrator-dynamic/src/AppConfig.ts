/**
 * The service's settings, read from the environment through Effect's Config
 * (the breakers' settings come from the seed's YAML file, see
 * `ResilienceConfig`). A dependency with no endpoint runs embedded, in memory.
 *
 * | variable | default | what |
 * |---|---|---|
 * | `RESILIENCE_CONFIG` | `config/resilience.yaml` of this example | the seed's breaker file |
 * | `SERVICE_NAME` | `orchestrator-dynamic` | the `service` label of metrics, logs and /health |
 * | `HTTP_HOST` / `HTTP_PORT` | `0.0.0.0` / `8000` | where /plans, /health, /live, /metrics listen |
 * | `ADMIN_TOKEN` | none (admin routes off) | bearer token of the manual-control routes |
 * | `KAFKA_BROKERS` | embedded | `host:port,host:port` |
 * | `TEMPORAL_ADDRESS` / `TEMPORAL_NAMESPACE` | embedded / `default` | `host:port` |
 * | `REDIS_URL` | embedded | `redis://[:password@]host:port` (secret) |
 * | `MONGODB_URL` | embedded | `mongodb://[user:password@]host:port/db` (secret) |
 * | `EMBEDDED_FAULTS` | none | start embedded dependencies faulty: `kafka=down,redis=slow` |
 * | `FLEET_REDIS_URL` | none (fleet off) | Redis through which the replicas' breakers act as one (secret) |
 * | `FLEET_GROUP` / `POD_NAME` | `SERVICE_NAME` / the host name | the replicas that act as one / this replica |
 * | `FLEET_SHARE_COUNTS` | `false` | trip on the replicas' consecutive failures added up (see docs/fleet.md) |
 */
import { Config, ConfigProvider, Effect, Option, type Redacted } from "effect"
import { hostname } from "node:os"
import { fileURLToPath } from "node:url"
import type { FaultMode } from "./Embedded.ts"

export interface AppConfig {
  readonly resilienceConfig: string
  readonly service: string
  readonly host: string
  readonly port: number
  readonly adminToken: Redacted.Redacted<string> | undefined
  readonly kafkaBrokers: ReadonlyArray<string> | undefined
  readonly temporalAddress: string | undefined
  readonly temporalNamespace: string
  readonly redisUrl: Redacted.Redacted<string> | undefined
  readonly mongodbUrl: Redacted.Redacted<string> | undefined
  readonly faults: Partial<Record<"kafka" | "temporal" | "redis" | "mongodb", FaultMode>>
  readonly fleet?:
    | {
      readonly redisUrl: Redacted.Redacted<string>
      readonly group: string
      readonly pod: string
      readonly shareCounts: boolean
    }
    | undefined
}

const defaultConfigFile = fileURLToPath(new URL("../config/resilience.yaml", import.meta.url))

const FAULT = /^(kafka|temporal|redis|mongodb)=(up|down|slow)$/

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

/** `kafka=down,redis=slow`; an entry that does not parse is a config error naming it. */
const faults = Config.withDefault(Config.String("EMBEDDED_FAULTS"), "").pipe(
  Config.mapEffect((text) => {
    const result: Partial<Record<"kafka" | "temporal" | "redis" | "mongodb", FaultMode>> = {}
    for (const entry of text.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
      const match = FAULT.exec(entry)
      if (match === null) {
        return Effect.fail(
          new Config.ConfigError(
            new ConfigProvider.SourceError({
              message: `EMBEDDED_FAULTS: got ${
                JSON.stringify(entry)
              }, expected dependency=mode with a dependency of kafka, temporal, redis, mongodb and a mode of up, down, slow`
            })
          )
        )
      }
      result[match[1] as "kafka"] = match[2] as FaultMode
    }
    return Effect.succeed(result)
  })
)

/** Opt-in: the fleet is on when `FLEET_REDIS_URL` is set. */
const fleet = Config.all({
  redisUrl: optional(Config.Redacted("FLEET_REDIS_URL")),
  group: optional(Config.String("FLEET_GROUP")),
  service: Config.withDefault(Config.String("SERVICE_NAME"), "orchestrator-dynamic"),
  pod: Config.withDefault(Config.String("POD_NAME"), hostname()),
  shareCounts: Config.withDefault(Config.Boolean("FLEET_SHARE_COUNTS"), false)
}).pipe(
  Config.map(({ group, pod, redisUrl, service, shareCounts }) =>
    redisUrl === undefined ? undefined : { redisUrl, group: group ?? service, pod, shareCounts }
  )
)

export const config: Config.Config<AppConfig> = Config.all({
  resilienceConfig: Config.withDefault(Config.String("RESILIENCE_CONFIG"), defaultConfigFile),
  service: Config.withDefault(Config.String("SERVICE_NAME"), "orchestrator-dynamic"),
  host: Config.withDefault(Config.String("HTTP_HOST"), "0.0.0.0"),
  port: Config.withDefault(Config.Port("HTTP_PORT"), 8000),
  adminToken: optional(Config.Redacted("ADMIN_TOKEN")),
  kafkaBrokers: optional(
    Config.map(Config.String("KAFKA_BROKERS"), (s) => s.split(",").map((b) => b.trim()).filter((b) => b !== ""))
  ),
  temporalAddress: optional(Config.String("TEMPORAL_ADDRESS")),
  temporalNamespace: Config.withDefault(Config.String("TEMPORAL_NAMESPACE"), "default"),
  redisUrl: optional(Config.Redacted("REDIS_URL")),
  mongodbUrl: optional(Config.Redacted("MONGODB_URL")),
  faults,
  fleet
})
