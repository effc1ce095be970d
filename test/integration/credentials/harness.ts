/**
 * What the credential tests share: the example service run as an operator runs it (environment variables
 * only, test/observability/service.ts), with breakers that open at the first counted failure, so a wrong
 * password shows as an OPEN breaker right after the start check; a plan submitted through /plans; and
 * the check that a secret appears nowhere an operator or a caller can look.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert } from "vitest"
import { ADMIN_TOKEN, type Service, startService } from "../../observability/service.ts"

/** failMax 1 everywhere: the start check alone opens the breaker of a dependency that refuses us. */
export const resilienceFile = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nh-cred-config-"))
  const file = path.join(dir, "resilience.yaml")
  const breaker = "{ failMax: 1, recoveryTimeoutSeconds: 60, timeoutSeconds: 60 }"
  fs.writeFileSync(
    file,
    `circuitBreaker:\n  kafka: ${breaker}\n  temporal: ${breaker}\n  redis: ${breaker}\n  mongodb: ${breaker}\n`
  )
  return file
}

export interface BreakerHealth {
  readonly name: string
  readonly state: string
  readonly failures: number
  readonly trips: number
}

export const health = async (service: Service): Promise<{ text: string; breakers: Array<BreakerHealth> }> => {
  const response = await fetch(`${service.url}/health`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    signal: AbortSignal.timeout(10_000)
  })
  const text = await response.text()
  return { text, breakers: (JSON.parse(text) as { breakers: Array<BreakerHealth> }).breakers }
}

export const breaker = async (service: Service, name: string): Promise<BreakerHealth> => {
  const found = (await health(service)).breakers.find((b) => b.name === name)
  assert.isDefined(found, `no breaker ${name} in /health`)
  return found!
}

/** Polls until `check` holds (or fails with the last value after `timeoutMs`). */
export const until = async <A>(
  what: string,
  read: () => Promise<A>,
  check: (value: A) => boolean,
  timeoutMs = 20_000
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last = await read()
  while (!check(last)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    last = await read()
  }
  return last
}

/** POST /plans; the HTTP status and body. */
export const submitPlan = async (service: Service, id: string): Promise<{ status: number; text: string }> => {
  const response = await fetch(`${service.url}/plans`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id, steps: ["plan", "execute"] }),
    signal: AbortSignal.timeout(20_000)
  })
  return { status: response.status, text: await response.text() }
}

/** Everything the service said (log lines, stderr) and served (/health, /metrics) holds none of `secrets`. */
export const assertNoSecret = async (service: Service, secrets: ReadonlyArray<string>): Promise<void> => {
  const metrics = await (await fetch(`${service.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const seen = [
    ...service.lines().map((line) => JSON.stringify(line)),
    service.stderr(),
    (await health(service)).text,
    metrics
  ].join("\n")
  for (const secret of secrets) assert.notInclude(seen, secret, "a secret reached the logs, /health or /metrics")
}

/** The service with these variables and the failMax-1 breakers. */
export const start = (env: Record<string, string>): Promise<Service> =>
  startService({ RESILIENCE_CONFIG: resilienceFile(), ...env })

/** The first log line into OPEN for this breaker: its `last_error` names why. */
export const openLine = (service: Service, circuit: string): Record<string, unknown> | undefined =>
  service.lines().find((line) => line["circuit"] === circuit && String(line["to"]).toLowerCase() === "open")
