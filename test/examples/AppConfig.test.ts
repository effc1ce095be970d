/**
 * The service's environment: a malformed endpoint is a typed config error
 * naming the variable, never a client's raw stack, and never shows a
 * password. The last test starts the real program with the inputs that
 * leaked a password at startup and reads everything it printed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as AppConfig from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import { ConfigProvider, Effect, Redacted } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { EXAMPLE_ARGS, EXAMPLE_NODE } from "../../tools/rig/example.ts"

const SECRET = "pw-S3cret"

const read = (env: Record<string, string>) =>
  Effect.gen(function*() {
    return yield* AppConfig.config
  }).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })))

const failure = (env: Record<string, string>) =>
  Effect.flip(read(env)).pipe(Effect.map((error) => `${error.message}\n${String(error.cause)}`))

describe("AppConfig", () => {
  it.effect("READINESS_BREAKERS names only this service's breakers; a typo is an error with a suggestion", () =>
    Effect.gen(function*() {
      const ok = yield* read({ READINESS_BREAKERS: " redis_client , kafka_producer" })
      assert.deepStrictEqual(ok.readinessBreakers, ["redis_client", "kafka_producer"])
      const typo = yield* failure({ READINESS_BREAKERS: "kafka,mongodb_clinet" })
      assert.include(typo, "READINESS_BREAKERS: unknown breaker")
      assert.include(typo, `"kafka" (did you mean "kafka_producer"?)`)
      assert.include(typo, `"mongodb_clinet" (did you mean "mongodb_client"?)`)
      assert.include(typo, "kafka_producer, temporal_client, redis_client, mongodb_client")
      const nothingClose = yield* failure({ READINESS_BREAKERS: "zzz" })
      assert.include(nothingClose, `unknown breaker "zzz";`)
    }))

  it.effect("DRAIN_SECONDS: 5 s by default, 0 to 300 seconds, anything else names the variable", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* read({})).drainMillis, 5_000)
      assert.strictEqual((yield* read({ DRAIN_SECONDS: "0" })).drainMillis, 0)
      assert.strictEqual((yield* read({ DRAIN_SECONDS: "2.5" })).drainMillis, 2_500)
      for (const bad of ["-1", "301", "soon"]) {
        assert.include(yield* failure({ DRAIN_SECONDS: bad }), "DRAIN_SECONDS: got", bad)
      }
    }))

  it.effect("valid endpoints are read as given (URLs stay Redacted)", () =>
    Effect.gen(function*() {
      const config = yield* read({
        KAFKA_BROKERS: "kafka-0.kafka:9092, 10.0.0.7:9093,[::1]:9094",
        TEMPORAL_ADDRESS: "temporal-frontend:7233",
        REDIS_URL: `redis://default:${SECRET}@redis:6379/0`,
        MONGODB_URL: `mongodb://admin:${SECRET}@m1:27017,m2:27017/orchestrator?replicaSet=rs0`
      })
      assert.deepStrictEqual(config.kafkaBrokers, ["kafka-0.kafka:9092", "10.0.0.7:9093", "[::1]:9094"])
      assert.strictEqual(config.temporalAddress, "temporal-frontend:7233")
      assert.strictEqual(Redacted.value(config.redisUrl!), `redis://default:${SECRET}@redis:6379/0`)
      assert.include(Redacted.value(config.mongodbUrl!), "m1:27017,m2:27017")
      const none = yield* read({})
      assert.strictEqual(none.redisUrl, undefined)
      assert.strictEqual(none.kafkaBrokers, undefined)
    }))

  it.effect("OUTBOX_DELIVERY: at-least-once by default; exactly-once takes its id from OUTBOX_TRANSACTIONAL_ID, POD_NAME, SERVICE_NAME", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* read({})).outbox, {
        delivery: "at-least-once",
        transactionalId: "orchestrator-dynamic"
      })
      const kafka = { KAFKA_BROKERS: "kafka:9092", OUTBOX_DELIVERY: "exactly-once" }
      assert.deepStrictEqual((yield* read({ ...kafka, SERVICE_NAME: "svc" })).outbox?.transactionalId, "svc")
      assert.deepStrictEqual((yield* read({ ...kafka, POD_NAME: "svc-0" })).outbox?.transactionalId, "svc-0")
      assert.deepStrictEqual(
        (yield* read({ ...kafka, POD_NAME: "svc-0", OUTBOX_TRANSACTIONAL_ID: "relay-a" })).outbox,
        { delivery: "exactly-once", transactionalId: "relay-a" }
      )
      assert.include(yield* failure({ OUTBOX_DELIVERY: "exactly-twice" }), "OUTBOX_DELIVERY")
      assert.include(yield* failure({ OUTBOX_DELIVERY: "exactly-once" }), "needs a real Kafka (KAFKA_BROKERS)")
    }))

  it.effect("a bad REDIS_URL or MONGODB_URL is a config error naming the variable, the value not shown", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Record<string, string>, string]> = [
        [{ REDIS_URL: "not a url" }, "REDIS_URL: got a value without a scheme://"],
        [{ REDIS_URL: `redis://:${SECRET}@[::1` }, "REDIS_URL: got a redis:// URL that does not parse"],
        [{ REDIS_URL: `http://u:${SECRET}@h:6379` }, "REDIS_URL: got a http:// URL"],
        [{ MONGODB_URL: `mongo://x:${SECRET}@h` }, "MONGODB_URL: got a mongo:// URL"],
        [{ MONGODB_URL: `redis//admin:${SECRET}@h` }, "MONGODB_URL: got a value without a scheme://"]
      ]
      for (const [env, expected] of cases) {
        const message = yield* failure(env)
        assert.include(message, expected)
        assert.include(message, "expected a URL")
        assert.notInclude(message, SECRET)
      }
    }))

  it.effect("KAFKA_BROKERS and TEMPORAL_ADDRESS are host:port, credentials and schemes refused and masked", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Record<string, string>, string]> = [
        [
          { TEMPORAL_ADDRESS: `http://user:${SECRET}@host:7233` },
          "TEMPORAL_ADDRESS: got \"http://user:***@host:7233\""
        ],
        [{ TEMPORAL_ADDRESS: `user:${SECRET}@host:7233` }, "TEMPORAL_ADDRESS: got \"user:***@host:7233\""],
        [{ KAFKA_BROKERS: `user:${SECRET}@host:9092` }, "KAFKA_BROKERS: got \"user:***@host:9092\""],
        [{ KAFKA_BROKERS: "broker:99999" }, "KAFKA_BROKERS: got \"broker:99999\", expected host:port"],
        [{ KAFKA_BROKERS: " , " }, "KAFKA_BROKERS: got no broker"]
      ]
      for (const [env, expected] of cases) {
        const message = yield* failure(env)
        assert.include(message, expected)
        assert.notInclude(message, SECRET)
      }
    }))

  it.effect("credentials: KAFKA_SASL_*, KAFKA_SSL*, *_TLS_CA_FILE, TEMPORAL_TLS*, TEMPORAL_API_KEY are read, secrets Redacted", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(path.join(tmpdir(), "nh-appconfig-"))
      const ca = path.join(dir, "ca.pem")
      writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
      const config = yield* read({
        KAFKA_BROKERS: "kafka:9093",
        KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
        KAFKA_SASL_USERNAME: "orchestrator",
        KAFKA_SASL_PASSWORD: SECRET,
        KAFKA_SSL: "true",
        KAFKA_SSL_CA_FILE: ca,
        REDIS_URL: `rediss://app:${SECRET}@redis:6380`,
        REDIS_TLS_CA_FILE: ca,
        MONGODB_URL: `mongodb://app:${SECRET}@m1:27017/orchestrator`,
        MONGODB_TLS_CA_FILE: ca,
        TEMPORAL_ADDRESS: "temporal:7233",
        TEMPORAL_TLS_SERVER_NAME: "temporal.internal",
        TEMPORAL_API_KEY: SECRET
      })
      const credentials = config.credentials!
      assert.strictEqual(credentials.kafkaSasl?.mechanism, "scram-sha-512")
      assert.strictEqual(credentials.kafkaSasl?.username, "orchestrator")
      assert.strictEqual(Redacted.value(credentials.kafkaSasl!.password), SECRET)
      assert.include(credentials.kafkaSsl?.ca, "BEGIN CERTIFICATE")
      assert.include(credentials.redisTlsCa, "BEGIN CERTIFICATE")
      assert.strictEqual(credentials.mongodbTlsCaFile, ca)
      // An API key turns TLS on by itself.
      assert.deepStrictEqual(credentials.temporalTls, { serverName: "temporal.internal" })
      assert.strictEqual(Redacted.value(credentials.temporalApiKey!), SECRET)
      assert.notInclude(JSON.stringify(config) + String(config.credentials), SECRET)
      assert.strictEqual((yield* read({})).credentials, undefined)

      const cases: ReadonlyArray<readonly [Record<string, string>, string]> = [
        [{ KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: SECRET }, "KAFKA_SASL_* is set but KAFKA_BROKERS is not"],
        [
          { KAFKA_BROKERS: "k:9092", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_MECHANISM: "plain" },
          "KAFKA_SASL_PASSWORD: missing"
        ],
        [
          { KAFKA_BROKERS: "k:9092", KAFKA_SASL_PASSWORD: SECRET, KAFKA_SASL_MECHANISM: "plain" },
          "KAFKA_SASL_USERNAME: missing"
        ],
        [
          { KAFKA_BROKERS: "k:9092", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: SECRET },
          "KAFKA_SASL_MECHANISM: got nothing, expected plain, scram-sha-256, scram-sha-512"
        ],
        [
          {
            KAFKA_BROKERS: "k:9092",
            KAFKA_SASL_USERNAME: "u",
            KAFKA_SASL_PASSWORD: SECRET,
            KAFKA_SASL_MECHANISM: "GSSAPI"
          },
          `KAFKA_SASL_MECHANISM: got "GSSAPI"`
        ],
        [{ KAFKA_BROKERS: "k:9092", KAFKA_SSL: "maybe" }, "KAFKA_SSL"],
        [{ KAFKA_BROKERS: "k:9092", KAFKA_SSL_CA_FILE: ca }, "KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true"],
        [
          { KAFKA_BROKERS: "k:9092", KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: `${dir}/missing.pem` },
          "KAFKA_SSL_CA_FILE: cannot read"
        ],
        [{ KAFKA_BROKERS: "k:9092", KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: dir }, "KAFKA_SSL_CA_FILE: cannot read"],
        [{ REDIS_URL: `redis://:${SECRET}@r:6379`, REDIS_TLS_CA_FILE: ca }, "REDIS_URL is not a rediss:// URL"],
        [{ REDIS_TLS_CA_FILE: ca }, "REDIS_TLS_CA_FILE is set but REDIS_URL is not"],
        [{ MONGODB_TLS_CA_FILE: ca }, "MONGODB_TLS_CA_FILE is set but MONGODB_URL is not"],
        [{ TEMPORAL_API_KEY: SECRET }, "TEMPORAL_TLS / TEMPORAL_API_KEY is set but TEMPORAL_ADDRESS is not"],
        [
          { TEMPORAL_ADDRESS: "t:7233", TEMPORAL_API_KEY: SECRET, TEMPORAL_TLS: "false" },
          "TEMPORAL_API_KEY with TEMPORAL_TLS=false"
        ],
        [{ TEMPORAL_ADDRESS: "t:7233", TEMPORAL_TLS_CA_FILE: ca, TEMPORAL_TLS: "false" }, "TEMPORAL_TLS=false"]
      ]
      const notPem = path.join(dir, "key.pem")
      writeFileSync(notPem, `password=${SECRET}\n`)
      const all = [
        ...cases,
        [
          { TEMPORAL_ADDRESS: "t:7233", TEMPORAL_TLS: "true", TEMPORAL_TLS_CA_FILE: notPem },
          "holds no PEM certificate"
        ] as const
      ]
      for (const [env, expected] of all) {
        const message = yield* failure(env)
        assert.include(message, expected, JSON.stringify(env))
        assert.notInclude(message, SECRET)
      }
      rmSync(dir, { recursive: true, force: true })
    }))

  it(
    "a credential mistake stops the program naming the variable; the password is not in its output",
    () => {
      const run = spawnSync(EXAMPLE_NODE, EXAMPLE_ARGS, {
        env: {
          PATH: process.env.PATH ?? "",
          KAFKA_BROKERS: "127.0.0.1:9092",
          KAFKA_SASL_USERNAME: "orchestrator",
          KAFKA_SASL_PASSWORD: SECRET,
          KAFKA_SASL_MECHANISM: "scram-sha-1024",
          TEMPORAL_ADDRESS: "127.0.0.1:7233",
          TEMPORAL_API_KEY: SECRET,
          HTTP_HOST: "127.0.0.1",
          HTTP_PORT: "1"
        },
        encoding: "utf8",
        timeout: 30_000
      })
      const output = `${run.stdout}${run.stderr}`
      assert.notStrictEqual(run.status, 0, output)
      assert.include(output, "KAFKA_SASL_MECHANISM: got")
      assert.notInclude(output, SECRET)
    },
    60_000
  )

  it(
    "the program stops on the inputs that leaked, printing the variable and no password",
    () => {
      const inputs: ReadonlyArray<readonly [string, string]> = [
        ["TEMPORAL_ADDRESS", `http://user:${SECRET}@127.0.0.1:7233`],
        ["TEMPORAL_ADDRESS", `user:${SECRET}@127.0.0.1:7233`],
        ["KAFKA_BROKERS", `user:${SECRET}@127.0.0.1:9092`],
        ["REDIS_URL", `redis//default:${SECRET}@127.0.0.1:6379`]
      ]
      for (const [name, value] of inputs) {
        const run = spawnSync(EXAMPLE_NODE, EXAMPLE_ARGS, {
          env: { PATH: process.env.PATH ?? "", [name]: value, HTTP_HOST: "127.0.0.1", HTTP_PORT: "1" },
          encoding: "utf8",
          timeout: 30_000
        })
        const output = `${run.stdout}${run.stderr}`
        assert.notStrictEqual(run.status, 0, output)
        assert.include(output, `${name}: got`)
        assert.notInclude(output, SECRET)
        // A config error, not a client's stack.
        assert.notMatch(output, /node_modules\/(ioredis|mongodb|kafkajs|@temporalio)/)
      }
    },
    120_000
  )
})
