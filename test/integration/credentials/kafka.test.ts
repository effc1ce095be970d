/**
 * Kafka credentials against a real broker that requires them: a private KRaft broker (Kafka 3.9) with a
 * SASL_SSL listener (SCRAM-SHA-512, certificate from a CA made by openssl at test time, the SCRAM user
 * created by `kafka-storage format --add-scram`) and a SASL_PLAINTEXT listener (PLAIN, its user in the
 * listener's JAAS config). The example service is configured as an operator would (KAFKA_* variables):
 * the right credentials publish the plan's ticket; a wrong password or an untrusted CA gives a typed,
 * redacted start-up failure and an OPEN kafka_producer, and the service keeps running.
 */
import { Kafka, logLevel } from "kafkajs"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { freePort, type ServerHandle, startKafka } from "../../../tools/rig/servers.ts"
import { makePki, type Pki } from "../../../tools/rig/tls.ts"
import { assertNoSecret, breaker, openLine, start, submitPlan, until } from "./harness.ts"

const SCRAM_USER = "nh-orchestrator"
const SCRAM_PASSWORD = "scram-Secret-7f3a9c-pw"
const PLAIN_USER = "nhplain"
const PLAIN_PASSWORD = "plain-Secret-51d0e2-pw"
const WRONG_PASSWORD = "wrong-Secret-0b8e44-pw"
const TOPIC = "execution-tickets"

let pki: Pki
let kafka: ServerHandle
let saslSslPort: number
let saslPlainPort: number

beforeAll(async () => {
  pki = makePki()
  const { writeFileSync } = await import("node:fs")
  const keystore = `${pki.dir}/kafka-keystore.pem`
  writeFileSync(keystore, pki.key + pki.cert)
  saslSslPort = await freePort()
  saslPlainPort = await freePort()
  const started = performance.now()
  kafka = await startKafka({
    listeners: [
      { name: "SASL_SSL", protocol: "SASL_SSL", port: saslSslPort },
      { name: "SASL_PLAIN", protocol: "SASL_PLAINTEXT", port: saslPlainPort }
    ],
    formatArgs: ["--add-scram", `SCRAM-SHA-512=[name=${SCRAM_USER},password=${SCRAM_PASSWORD}]`],
    properties: {
      "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
      "listener.name.sasl_ssl.ssl.keystore.location": keystore,
      "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
      "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
      "listener.name.sasl_plain.sasl.enabled.mechanisms": "PLAIN",
      "listener.name.sasl_plain.plain.sasl.jaas.config":
        `org.apache.kafka.common.security.plain.PlainLoginModule required user_${PLAIN_USER}="${PLAIN_PASSWORD}";`
    }
  })
  console.log(`[credentials] kafka with SASL_SSL + SASL_PLAINTEXT up in ${Math.round(performance.now() - started)} ms`)
}, 180_000)

afterAll(async () => {
  await kafka?.stop()
  pki?.remove()
})

/** Messages in the tickets topic, read over the broker's PLAINTEXT listener (the test's own side door). */
const ticketCount = async (): Promise<number> => {
  const admin = new Kafka({ brokers: [kafka.endpoint], logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    const topics = await admin.listTopics()
    if (!topics.includes(TOPIC)) return 0
    const offsets = await admin.fetchTopicOffsets(TOPIC)
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
  } finally {
    await admin.disconnect()
  }
}

const scramEnv = (password: string, caFile: string) => ({
  KAFKA_BROKERS: `127.0.0.1:${saslSslPort}`,
  KAFKA_SASL_MECHANISM: "scram-sha-512",
  KAFKA_SASL_USERNAME: SCRAM_USER,
  KAFKA_SASL_PASSWORD: password,
  KAFKA_SSL: "true",
  KAFKA_SSL_CA_FILE: caFile
})

describe("Kafka credentials (example service, KAFKA_* variables)", () => {
  it("SASL_SSL with SCRAM-SHA-512 and the private CA: the plan's ticket reaches the topic", async () => {
    const before = await ticketCount()
    const service = await start(scramEnv(SCRAM_PASSWORD, pki.caFile))
    try {
      const plan = await submitPlan(service, "cred-scram-1")
      assert.include([200, 201, 202], plan.status, plan.text)
      await until("tickets in the topic", ticketCount, (n) => n > before, 30_000)
      const producer = await breaker(service, "kafka_producer")
      assert.strictEqual(producer.state, "closed")
      assert.strictEqual(producer.failures, 0)
      const starting = service.lines().find((l) => l["event"] === "orchestrator_starting")
      assert.strictEqual(starting?.["kafka_sasl"], "scram-sha-512")
      assert.strictEqual(starting?.["kafka_ssl"], true)
      await assertNoSecret(service, [SCRAM_PASSWORD])
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 90_000)

  it("SASL_PLAINTEXT with PLAIN: the plan's ticket reaches the topic", async () => {
    const before = await ticketCount()
    const service = await start({
      KAFKA_BROKERS: `127.0.0.1:${saslPlainPort}`,
      KAFKA_SASL_MECHANISM: "plain",
      KAFKA_SASL_USERNAME: PLAIN_USER,
      KAFKA_SASL_PASSWORD: PLAIN_PASSWORD
    })
    try {
      const plan = await submitPlan(service, "cred-plain-1")
      assert.include([200, 201, 202], plan.status, plan.text)
      await until("tickets in the topic", ticketCount, (n) => n > before, 30_000)
      assert.strictEqual((await breaker(service, "kafka_producer")).state, "closed")
      await assertNoSecret(service, [PLAIN_PASSWORD])
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 90_000)

  it(
    "a wrong SCRAM password: the start check opens kafka_producer with an Authentication error, redacted; the service keeps serving",
    async () => {
      const service = await start(scramEnv(WRONG_PASSWORD, pki.caFile))
      try {
        await until("kafka_producer", () => breaker(service, "kafka_producer"), (b) => b.state === "open")
        const open = openLine(service, "kafka_producer")
        console.log(`[credentials] kafka wrong password: ${JSON.stringify(open?.["last_error"])}`)
        assert.match(String(open?.["last_error"]), /SASL|authentication|Authentication/i)
        // Not a crash loop: the process serves, and a plan is still accepted (its ticket waits in the outbox).
        assert.strictEqual((await fetch(`${service.url}/live`)).status, 200)
        const plan = await submitPlan(service, "cred-wrong-1")
        assert.include([200, 201, 202], plan.status, plan.text)
        await assertNoSecret(service, [WRONG_PASSWORD, SCRAM_PASSWORD])
      } finally {
        assert.include([0, 130], await service.stop())
      }
    },
    90_000
  )

  it("a CA the broker's certificate does not end in: the TLS handshake fails, kafka_producer opens", async () => {
    const service = await start(scramEnv(SCRAM_PASSWORD, pki.otherCaFile))
    try {
      await until("kafka_producer", () => breaker(service, "kafka_producer"), (b) => b.state === "open")
      const lastError = String(openLine(service, "kafka_producer")?.["last_error"])
      console.log(`[credentials] kafka untrusted CA: ${JSON.stringify(lastError)}`)
      assert.match(lastError, /certificate|self.signed|verify/i)
      await assertNoSecret(service, [SCRAM_PASSWORD])
    } finally {
      assert.include([0, 130], await service.stop())
    }
  }, 90_000)
})
