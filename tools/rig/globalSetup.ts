/**
 * Vitest globalSetup: starts the shared Redis, Kafka, Temporal and MongoDB (FerretDB) servers in
 * parallel, hands their endpoints to the tests through `provide`/`inject`, and stops them at teardown.
 *
 * In vitest.config.ts: `test: { globalSetup: ["tools/rig/globalSetup.ts"] }`.
 * In a test: `const url = inject("redisUrl")`.
 *
 * A server whose env var is set is not started; the given endpoint is used as is:
 *   REDIS_URL        redis://127.0.0.1:6379
 *   KAFKA_BROKERS    127.0.0.1:9092[,host:port...]
 *   TEMPORAL_ADDRESS 127.0.0.1:7233
 *   MONGODB_URL      mongodb://127.0.0.1:27017/
 * NH_SERVICES limits which servers start (comma list of redis,kafka,temporal,mongodb, or "none");
 * default: all. A server that should start and cannot makes the whole run fail with its log tail.
 *
 * These shared servers are for tests that do not kill or pause them. Fault tests start private
 * instances with `startRedis()`, `startKafka()`, ... from ./servers.ts (and a `FaultProxy`).
 */
import type { TestProject } from "vitest/node"
import { startServer } from "./servers.ts"
import type { ServerHandle, ServerName } from "./servers.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** `redis://127.0.0.1:PORT` */
    redisUrl: string
    /** `127.0.0.1:PORT`, comma separated if several */
    kafkaBrokers: string
    /** `127.0.0.1:PORT` (gRPC, plaintext; namespace `default`) */
    temporalAddress: string
    /** `mongodb://127.0.0.1:PORT/` */
    mongodbUrl: string
  }
}

type ProvidedKey = "redisUrl" | "kafkaBrokers" | "temporalAddress" | "mongodbUrl"

const services: ReadonlyArray<{ readonly name: ServerName; readonly env: string; readonly key: ProvidedKey }> = [
  { name: "redis", env: "REDIS_URL", key: "redisUrl" },
  { name: "kafka", env: "KAFKA_BROKERS", key: "kafkaBrokers" },
  { name: "temporal", env: "TEMPORAL_ADDRESS", key: "temporalAddress" },
  { name: "mongodb", env: "MONGODB_URL", key: "mongodbUrl" }
]

function wanted(): Set<string> {
  const raw = (process.env["NH_SERVICES"] ?? "all").trim().toLowerCase()
  if (raw === "" || raw === "all") return new Set(services.map((s) => s.name))
  if (raw === "none") return new Set()
  const names = raw.split(",").map((s) => s.trim()).filter((s) => s !== "")
  for (const name of names) {
    if (!services.some((s) => s.name === name)) throw new Error(`NH_SERVICES: unknown server "${name}"`)
  }
  return new Set(names)
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const want = wanted()
  const started: Array<ServerHandle> = []
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(started.map((s) => s.stop()))
  }

  const results = await Promise.allSettled(
    services.map(async (service) => {
      const given = process.env[service.env]?.trim()
      if (given) return { service, endpoint: given, note: `from ${service.env}` }
      if (!want.has(service.name)) return undefined
      const server = await startServer(service.name)
      started.push(server)
      return { service, endpoint: server.endpoint, note: `pid ${server.pid}, ready in ${server.startupMs} ms` }
    })
  )

  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []))
  if (failures.length > 0) {
    await stopAll()
    const text = failures.map((e) => (e instanceof Error ? e.message : String(e))).join("\n\n")
    throw new Error(`test servers could not start:\n\n${text}`)
  }

  for (const r of results) {
    if (r.status !== "fulfilled" || r.value === undefined) continue
    const { service, endpoint, note } = r.value
    project.provide(service.key, endpoint)
    console.log(`[test services] ${service.name}: ${endpoint} (${note})`)
  }

  return stopAll
}
