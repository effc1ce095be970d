/**
 * The service's settings, read from the environment through Effect's Config
 * (the breakers' settings come from a YAML file in the Orchestrator Dynamic
 * format, see `OrchestratorConfig`). A dependency with no endpoint runs
 * embedded, in memory. A malformed endpoint stops the program with a message
 * naming the variable, its password masked.
 *
 * | variable | default | what |
 * |---|---|---|
 * | `RESILIENCE_CONFIG` | `config/resilience.yaml` of this example | the breaker file (its `circuitBreaker` key; a Helm values file loads as is) |
 * | `SERVICE_NAME` | `orchestrator-dynamic` | the `service` label of metrics, logs and /health |
 * | `HTTP_HOST` / `HTTP_PORT` | `127.0.0.1` / `8000` | where /plans, /health, /live, /ready, /metrics listen (`0.0.0.0`: every interface, e.g. in a container) |
 * | `HTTP_ALLOWED_HOSTS` | none | more names (comma-separated) the browser routes (`/`, `/events`, `/faults`, `/admin`) accept in `Host`, besides the loopback names and `HTTP_HOST` |
 * | `ADMIN_TOKEN` | none (admin routes off) | bearer token (16+ characters, 8+ different ones, not digits only) of the manual-control routes and the fault switch |
 * | `FAULT_SWITCH` | `off` | `on` serves `/faults` for the embedded dependencies; refused with an `HTTP_HOST` other than loopback unless `ADMIN_TOKEN` is set |
 * | `READINESS_BREAKERS` | none | breakers that must be CLOSED for `/ready` (only ones private to the replica); an unknown name stops the start |
 * | `DRAIN_SECONDS` | `5` | at SIGTERM, how long `/ready` answers 503 while every route still serves, before the server closes (0: none; Ctrl-C never waits) |
 * | `KAFKA_BROKERS` | embedded | `host:port,host:port` (no credentials: they are not read from here) |
 * | `KAFKA_SASL_MECHANISM` | none | `plain`, `scram-sha-256` or `scram-sha-512`; required with `KAFKA_SASL_USERNAME` |
 * | `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD` | none (no SASL) | the SASL user and its password (secret); both or neither |
 * | `KAFKA_SSL` | `false` | `true`: TLS to the brokers (a `SSL` or `SASL_SSL` listener) |
 * | `KAFKA_SSL_CA_FILE` | the system's CAs | PEM file of the CA the brokers' certificates end in (needs `KAFKA_SSL=true`) |
 * | `TEMPORAL_ADDRESS` / `TEMPORAL_NAMESPACE` | embedded / `default` | `host:port` (no scheme, no credentials) |
 * | `TEMPORAL_TLS` | `true` with `TEMPORAL_API_KEY`, else `false` | `true`: TLS to the frontend |
 * | `TEMPORAL_TLS_CA_FILE` / `TEMPORAL_TLS_SERVER_NAME` | the system's CAs / the address's host | the frontend's CA (PEM file) and the name its certificate holds (need TLS) |
 * | `TEMPORAL_API_KEY` | none | sent as `authorization: Bearer <key>` on every call (secret; refused without TLS) |
 * | `REDIS_URL` | embedded | `redis://[user:password@]host:port` (ACL user, or `:password@` for `requirepass`), `rediss://` for TLS (secret) |
 * | `REDIS_TLS_CA_FILE` | the system's CAs | PEM file of the CA of Redis's certificate (needs a `rediss://` URL) |
 * | `MONGODB_URL` | embedded | `mongodb://[user:password@]host:port/db` (secret); `?tls=true` and the driver's other URL options work too |
 * | `MONGODB_TLS_CA_FILE` | none (TLS as the URL says) | PEM file of the CA of MongoDB's certificate: turns TLS on |
 * | `EMBEDDED_FAULTS` | none | start embedded dependencies faulty: `kafka=down,redis=slow` |
 * | `FLEET_REDIS_URL` | none (fleet off) | Redis through which the replicas' breakers act as one (secret) |
 * | `FLEET_GROUP` / `POD_NAME` | `SERVICE_NAME` / the host name | the replicas that act as one / this replica |
 * | `FLEET_SHARE_COUNTS` | `false` | trip on the replicas' consecutive failures added up (see docs/fleet.md) |
 * | `FLEET_CIRCUITS` | all four breakers | the breakers the replicas share; one left out stays local to each pod |
 * | `OUTBOX_DELIVERY` | `at-least-once` | `exactly-once`: the outbox relay publishes in Kafka transactions, each ticket once to `read_committed` readers (needs `KAFKA_BROKERS`; see docs/outbox.md) |
 * | `OUTBOX_TRANSACTIONAL_ID` | `POD_NAME`, else `SERVICE_NAME` | the relay's transactional id with `exactly-once`: stable across the replica's restarts, different per live replica |
 */
import { MongoStore } from "@neural-hive/mongodb"
import { Http } from "@neural-hive/observability"
import { redact } from "@neural-hive/resilience"
import { Config, ConfigProvider, Effect, Option, Redacted } from "effect"
import { readFileSync } from "node:fs"
import { hostname } from "node:os"
import { fileURLToPath } from "node:url"
import type { FaultMode } from "./Embedded.ts"

export interface AppConfig {
  readonly resilienceConfig: string
  readonly service: string
  readonly host: string
  readonly port: number
  readonly adminToken: Redacted.Redacted<string> | undefined
  /** `HTTP_ALLOWED_HOSTS`; none when absent. */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  readonly kafkaBrokers: ReadonlyArray<string> | undefined
  readonly temporalAddress: string | undefined
  readonly temporalNamespace: string
  readonly redisUrl: Redacted.Redacted<string> | undefined
  readonly mongodbUrl: Redacted.Redacted<string> | undefined
  readonly faults: Partial<Record<"kafka" | "temporal" | "redis" | "mongodb", FaultMode>>
  /** Credentials and TLS of the real dependencies (`KAFKA_SASL_*`, `*_TLS*`, `TEMPORAL_API_KEY`); none when absent. */
  readonly credentials?: Credentials | undefined
  /** `FAULT_SWITCH=on`; off when absent. */
  readonly faultSwitch?: boolean | undefined
  /** `READINESS_BREAKERS`; none when absent. */
  readonly readinessBreakers?: ReadonlyArray<string> | undefined
  /** `DRAIN_SECONDS` in milliseconds (default 5 s): how long SIGTERM keeps serving with `/ready` at 503. */
  readonly drainMillis?: number | undefined
  /** The outbox relay's delivery; at-least-once when absent. */
  readonly outbox?:
    | { readonly delivery: "at-least-once" | "exactly-once"; readonly transactionalId: string }
    | undefined
  readonly fleet?:
    | {
      readonly redisUrl: Redacted.Redacted<string>
      readonly group: string
      readonly pod: string
      readonly shareCounts: boolean
      /** `FLEET_CIRCUITS`: the breakers the replicas share (default: all four). */
      readonly circuits: ReadonlyArray<string>
    }
    | undefined
}

/**
 * The dependencies' credentials and TLS settings. Secrets stay `Redacted`; CA files are read (and checked to
 * hold a PEM certificate) when the config is, so a wrong path stops the start naming the variable.
 */
export interface Credentials {
  readonly kafkaSasl?:
    | {
      readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"
      readonly username: string
      readonly password: Redacted.Redacted<string>
    }
    | undefined
  /** `KAFKA_SSL=true`: TLS, with the CA of `KAFKA_SSL_CA_FILE` when set. */
  readonly kafkaSsl?: { readonly ca?: string | undefined } | undefined
  /** `REDIS_TLS_CA_FILE`'s certificates. */
  readonly redisTlsCa?: string | undefined
  /** `MONGODB_TLS_CA_FILE`: its path (the driver reads it), checked here. */
  readonly mongodbTlsCaFile?: string | undefined
  /** TLS to Temporal, with its CA and server name when set. */
  readonly temporalTls?: { readonly ca?: string | undefined; readonly serverName?: string | undefined } | undefined
  readonly temporalApiKey?: Redacted.Redacted<string> | undefined
}

const defaultConfigFile = fileURLToPath(new URL("../config/resilience.yaml", import.meta.url))

const FAULT = /^(kafka|temporal|redis|mongodb)=(up|down|slow)$/

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

const invalid = (message: string) => Effect.fail(new Config.ConfigError(new ConfigProvider.SourceError({ message })))

// host, IPv4 or [IPv6], then a port: what kafkajs and Temporal's gRPC client accept.
const HOST_PORT = /^(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})$/

const hostPort = (name: string, entry: string) =>
  Number(HOST_PORT.exec(entry)?.[1] ?? 0) >= 1 && Number(HOST_PORT.exec(entry)?.[1]) <= 65535
    ? undefined
    : `${name}: got ${JSON.stringify(redact(entry))}, expected host:port${
      entry.includes("@") ? " without credentials" : entry.includes("://") ? " without a scheme" : ""
    }`

/**
 * A connection URL checked here, so a typo is a config error naming the variable rather than a
 * client's stack; `parsed` when the client reads it with `new URL` (ioredis), not for MongoDB's host lists;
 * `driver` for a client's own check (its message has no password).
 */
const connectionUrl = (
  name: string,
  schemes: ReadonlyArray<string>,
  parsed: boolean,
  driver?: (url: string) => string | undefined
) =>
  Config.Redacted(name).pipe(
    Config.mapEffect((secret) => {
      const text = Redacted.value(secret).trim()
      const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]+)/i.exec(text)
      const scheme = match?.[1]?.toLowerCase()
      let valid = scheme !== undefined && schemes.includes(scheme)
      if (valid && parsed) {
        try {
          valid = new URL(text).hostname !== ""
        } catch {
          valid = false
        }
      }
      // The value itself is not shown: a mistyped URL may hide its password from `redact`.
      const got = scheme === undefined
        ? "a value without a scheme://"
        : schemes.includes(scheme)
        ? `a ${scheme}:// URL that does not parse`
        : `a ${scheme}:// URL`
      const refused = valid ? driver?.(text) : undefined
      if (refused !== undefined) {
        return invalid(`${name}: got a ${scheme}:// URL the client refuses (value not shown): ${refused}`)
      }
      return valid ? Effect.succeed(Redacted.make(text)) : invalid(
        `${name}: got ${got} (value not shown, it may hold a password), expected a URL ${
          schemes.map((s) => `${s}://`).join(" or ")
        }[user:password@]host:port[/...]`
      )
    })
  )

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

/** The breakers of this service, the only names `READINESS_BREAKERS` may hold. */
export const CIRCUITS = ["kafka_producer", "temporal_client", "redis_client", "mongodb_client"] as const

/** Levenshtein distance: insertions, deletions and substitutions. */
const editDistance = (a: string, b: string) => {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    row = next
  }
  return row[b.length]!
}

/** The closest known name (edit distance at most 3, or a known name it starts or ends), for "did you mean". */
const closest = (name: string, known: ReadonlyArray<string>): string | undefined => {
  const affix = known.find((k) => k.startsWith(name.split("_")[0]!) || k.endsWith(name))
  const [best] = known.map((k) => [k, editDistance(name, k)] as const).toSorted((x, y) => x[1] - y[1])
  return best !== undefined && best[1] <= 3 ? best[0] : affix
}

/** A comma-separated list of this service's breakers (`READINESS_BREAKERS`, `FLEET_CIRCUITS`): a typo is an error. */
const breakerNames = (variable: string, fallback: string) =>
  Config.withDefault(Config.String(variable), fallback).pipe(
    Config.mapEffect((text) => {
      const names = text.split(",").map((s) => s.trim()).filter((s) => s !== "")
      const unknown = names.filter((name) => !(CIRCUITS as ReadonlyArray<string>).includes(name))
      if (unknown.length === 0) return Effect.succeed(names)
      const hint = (name: string) => {
        const guess = closest(name, CIRCUITS)
        return `${JSON.stringify(name.slice(0, 64))}${guess === undefined ? "" : ` (did you mean "${guess}"?)`}`
      }
      return invalid(
        `${variable}: unknown breaker ${unknown.slice(0, 5).map(hint).join(", ")}; this service's breakers are ${
          CIRCUITS.join(", ")
        }`
      )
    })
  )

/** `READINESS_BREAKERS`: a typo would keep `/ready` at 503 forever. */
const readinessBreakers = breakerNames("READINESS_BREAKERS", "")

/** Opt-in: the fleet is on when `FLEET_REDIS_URL` is set. */
const fleet = Config.all({
  redisUrl: optional(connectionUrl("FLEET_REDIS_URL", ["redis", "rediss"], true)),
  group: optional(Config.String("FLEET_GROUP")),
  service: Config.withDefault(Config.String("SERVICE_NAME"), "orchestrator-dynamic"),
  pod: Config.withDefault(Config.String("POD_NAME"), hostname()),
  shareCounts: Config.withDefault(Config.Boolean("FLEET_SHARE_COUNTS"), false),
  // Every dependency of this service is one all replicas share; leave out one private to a pod.
  circuits: breakerNames("FLEET_CIRCUITS", CIRCUITS.join(","))
}).pipe(
  Config.map(({ circuits, group, pod, redisUrl, service, shareCounts }) =>
    redisUrl === undefined ? undefined : { redisUrl, group: group ?? service, pod, shareCounts, circuits }
  )
)

/** `OUTBOX_DELIVERY` and the transactional id (`OUTBOX_TRANSACTIONAL_ID`, else `POD_NAME`, else `SERVICE_NAME`). */
const outbox = Config.all({
  delivery: Config.withDefault(Config.Literals(["at-least-once", "exactly-once"], "OUTBOX_DELIVERY"), "at-least-once"),
  transactionalId: optional(Config.String("OUTBOX_TRANSACTIONAL_ID")),
  pod: optional(Config.String("POD_NAME")),
  service: Config.withDefault(Config.String("SERVICE_NAME"), "orchestrator-dynamic")
}).pipe(
  Config.map(({ delivery, pod, service, transactionalId }) => ({
    delivery,
    transactionalId: transactionalId ?? pod ?? service
  }))
)

/** `ADMIN_TOKEN`, refused at start-up when easy to guess (`Http.checkAdminToken`: 16+ characters, 8+ different). */
const adminToken = optional(Config.Redacted("ADMIN_TOKEN")).pipe(
  Config.mapEffect((token) =>
    token === undefined
      ? Effect.succeed(undefined)
      : Http.checkAdminToken(token, "ADMIN_TOKEN").pipe(
        Effect.as(token),
        Effect.catch((error) => invalid(error.message))
      )
  )
)

const LOOPBACK = /^(localhost|127(\.[0-9]{1,3}){3}|::1|\[::1\])$/i

/** `DRAIN_SECONDS`: 0 to 300 seconds, fractions allowed. */
const drainMillis = Config.withDefault(Config.String("DRAIN_SECONDS"), "5").pipe(
  Config.mapEffect((text) => {
    const seconds = Number(text.trim())
    return text.trim() !== "" && Number.isFinite(seconds) && seconds >= 0 && seconds <= 300
      ? Effect.succeed(Math.round(seconds * 1000))
      : invalid(`DRAIN_SECONDS: got ${JSON.stringify(text.slice(0, 64))}, expected a number of seconds from 0 to 300`)
  })
)

/** A PEM file's certificates; an unreadable file or one with no certificate is an error naming the variable. */
const caFile = (variable: string) =>
  optional(Config.String(variable)).pipe(
    Config.mapEffect((file) => {
      if (file === undefined || file.trim() === "") return Effect.succeed(undefined)
      const where = JSON.stringify(file.trim().slice(0, 256))
      let text: string
      try {
        text = readFileSync(file.trim(), "utf8")
      } catch (error) {
        return invalid(`${variable}: cannot read ${where} (${(error as NodeJS.ErrnoException).code ?? "error"})`)
      }
      return /-----BEGIN CERTIFICATE-----/.test(text)
        ? Effect.succeed({ file: file.trim(), pem: text })
        : invalid(`${variable}: ${where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
    })
  )

const SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const

/** A variable set for a dependency that is not: an error rather than a setting silently ignored. */
const needs = (variable: string, set: boolean, dependency: string, isSet: boolean) =>
  set && !isSet ? `${variable} is set but ${dependency} is not: it would be ignored` : undefined

/** Credentials and TLS; each variable needs the dependency it is for, and a partial set is an error naming what is missing. */
const credentials = Config.all({
  kafkaBrokers: optional(Config.String("KAFKA_BROKERS")),
  saslMechanism: optional(Config.String("KAFKA_SASL_MECHANISM")),
  saslUsername: optional(Config.String("KAFKA_SASL_USERNAME")),
  saslPassword: optional(Config.Redacted("KAFKA_SASL_PASSWORD")),
  kafkaSsl: optional(Config.Boolean("KAFKA_SSL")),
  kafkaCa: caFile("KAFKA_SSL_CA_FILE"),
  redisUrl: optional(Config.Redacted("REDIS_URL")),
  redisCa: caFile("REDIS_TLS_CA_FILE"),
  mongodbUrl: optional(Config.Redacted("MONGODB_URL")),
  mongodbCa: caFile("MONGODB_TLS_CA_FILE"),
  temporalAddress: optional(Config.String("TEMPORAL_ADDRESS")),
  temporalTls: optional(Config.Boolean("TEMPORAL_TLS")),
  temporalCa: caFile("TEMPORAL_TLS_CA_FILE"),
  temporalServerName: optional(Config.String("TEMPORAL_TLS_SERVER_NAME")),
  temporalApiKey: optional(Config.Redacted("TEMPORAL_API_KEY"))
}).pipe(Config.mapEffect((c): Effect.Effect<Credentials | undefined, Config.ConfigError> => {
  const sasl = c.saslUsername !== undefined || c.saslPassword !== undefined || c.saslMechanism !== undefined
  const problem = needs("KAFKA_SASL_*", sasl, "KAFKA_BROKERS", c.kafkaBrokers !== undefined) ??
    needs("KAFKA_SSL", c.kafkaSsl === true, "KAFKA_BROKERS", c.kafkaBrokers !== undefined) ??
    needs("REDIS_TLS_CA_FILE", c.redisCa !== undefined, "REDIS_URL", c.redisUrl !== undefined) ??
    needs("MONGODB_TLS_CA_FILE", c.mongodbCa !== undefined, "MONGODB_URL", c.mongodbUrl !== undefined) ??
    needs(
      "TEMPORAL_TLS / TEMPORAL_API_KEY",
      c.temporalTls === true || c.temporalApiKey !== undefined,
      "TEMPORAL_ADDRESS",
      c.temporalAddress !== undefined
    ) ??
    (sasl && (c.saslUsername ?? "").trim() === ""
      ? "KAFKA_SASL_USERNAME: missing or empty, needed with KAFKA_SASL_MECHANISM / KAFKA_SASL_PASSWORD"
      : undefined) ??
    (sasl && (c.saslPassword === undefined || Redacted.value(c.saslPassword) === "")
      ? "KAFKA_SASL_PASSWORD: missing or empty, needed with KAFKA_SASL_USERNAME"
      : undefined) ??
    (sasl && !(SASL_MECHANISMS as ReadonlyArray<string | undefined>).includes(c.saslMechanism?.trim().toLowerCase())
      ? `KAFKA_SASL_MECHANISM: got ${
        c.saslMechanism === undefined ? "nothing" : JSON.stringify(c.saslMechanism.slice(0, 64))
      }, expected ${SASL_MECHANISMS.join(", ")} (the broker listener's sasl.enabled.mechanisms)`
      : undefined) ??
    (c.kafkaCa !== undefined && c.kafkaSsl !== true
      ? "KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true: set KAFKA_SSL=true for a SSL or SASL_SSL listener"
      : undefined) ??
    (c.redisCa !== undefined && !/^rediss:\/\//i.test(Redacted.value(c.redisUrl!).trim())
      ? "REDIS_TLS_CA_FILE is set but REDIS_URL is not a rediss:// URL: TLS needs rediss://"
      : undefined) ??
    ((c.temporalCa !== undefined || c.temporalServerName !== undefined) && c.temporalTls === false
      ? "TEMPORAL_TLS_CA_FILE / TEMPORAL_TLS_SERVER_NAME are set but TEMPORAL_TLS=false"
      : undefined) ??
    (c.temporalApiKey !== undefined && c.temporalTls === false
      ? "TEMPORAL_API_KEY with TEMPORAL_TLS=false: the key would cross the network in clear; refused"
      : undefined) ??
    (c.temporalApiKey !== undefined && Redacted.value(c.temporalApiKey).trim() === ""
      ? "TEMPORAL_API_KEY: empty"
      : undefined)
  if (problem !== undefined) return invalid(problem)
  const temporalTls = c.temporalTls === true || c.temporalApiKey !== undefined || c.temporalCa !== undefined ||
    c.temporalServerName !== undefined
  const result: Credentials = {
    ...(sasl
      ? {
        kafkaSasl: {
          mechanism: c.saslMechanism!.trim().toLowerCase() as (typeof SASL_MECHANISMS)[number],
          username: c.saslUsername!.trim(),
          password: c.saslPassword!
        }
      }
      : {}),
    ...(c.kafkaSsl === true ? { kafkaSsl: c.kafkaCa === undefined ? {} : { ca: c.kafkaCa.pem } } : {}),
    ...(c.redisCa === undefined ? {} : { redisTlsCa: c.redisCa.pem }),
    ...(c.mongodbCa === undefined ? {} : { mongodbTlsCaFile: c.mongodbCa.file }),
    ...(temporalTls
      ? {
        temporalTls: {
          ...(c.temporalCa === undefined ? {} : { ca: c.temporalCa.pem }),
          ...(c.temporalServerName === undefined ? {} : { serverName: c.temporalServerName.trim() })
        }
      }
      : {}),
    ...(c.temporalApiKey === undefined ? {} : { temporalApiKey: c.temporalApiKey })
  }
  return Effect.succeed(Object.keys(result).length === 0 ? undefined : result)
}))

/** A fault switch anyone on the network can reach and flip is refused: it needs a token there. */
const checkFaultSwitch = (config: AppConfig): Effect.Effect<AppConfig, Config.ConfigError> =>
  config.outbox?.delivery === "exactly-once" && config.kafkaBrokers === undefined
    ? invalid("OUTBOX_DELIVERY=exactly-once needs a real Kafka (KAFKA_BROKERS): the embedded one has no transactions")
    : config.faultSwitch === true && config.adminToken === undefined && !LOOPBACK.test(config.host)
    ? invalid(
      `FAULT_SWITCH=on with HTTP_HOST=${
        JSON.stringify(config.host)
      } and no ADMIN_TOKEN: any host could flip the fault switch; set ADMIN_TOKEN, or HTTP_HOST=127.0.0.1`
    )
    : Effect.succeed(config)

export const config: Config.Config<AppConfig> = Config.all({
  resilienceConfig: Config.withDefault(Config.String("RESILIENCE_CONFIG"), defaultConfigFile),
  service: Config.withDefault(Config.String("SERVICE_NAME"), "orchestrator-dynamic"),
  host: Config.withDefault(Config.String("HTTP_HOST"), "127.0.0.1"),
  port: Config.withDefault(Config.Port("HTTP_PORT"), 8000),
  adminToken,
  allowedHosts: Config.withDefault(Config.String("HTTP_ALLOWED_HOSTS"), "").pipe(
    Config.map((text) => text.split(",").map((s) => s.trim()).filter((s) => s !== ""))
  ),
  kafkaBrokers: optional(
    Config.String("KAFKA_BROKERS").pipe(Config.mapEffect((s) => {
      const brokers = s.split(",").map((b) => b.trim()).filter((b) => b !== "")
      const problem = brokers.length === 0
        ? "KAFKA_BROKERS: got no broker, expected host:port,host:port"
        : brokers.map((b) => hostPort("KAFKA_BROKERS", b)).find((p) => p !== undefined)
      return problem === undefined ? Effect.succeed(brokers) : invalid(problem)
    }))
  ),
  temporalAddress: optional(
    Config.String("TEMPORAL_ADDRESS").pipe(Config.mapEffect((s) => {
      const problem = hostPort("TEMPORAL_ADDRESS", s.trim())
      return problem === undefined ? Effect.succeed(s.trim()) : invalid(problem)
    }))
  ),
  temporalNamespace: Config.withDefault(Config.String("TEMPORAL_NAMESPACE"), "default"),
  redisUrl: optional(connectionUrl("REDIS_URL", ["redis", "rediss"], true)),
  mongodbUrl: optional(connectionUrl("MONGODB_URL", ["mongodb", "mongodb+srv"], false, MongoStore.urlProblem)),
  faults,
  credentials,
  faultSwitch: Config.withDefault(Config.Literals(["on", "off"], "FAULT_SWITCH"), "off").pipe(
    Config.map((value) => value === "on")
  ),
  readinessBreakers,
  drainMillis,
  outbox,
  fleet
}).pipe(Config.mapEffect(checkFaultSwitch))
