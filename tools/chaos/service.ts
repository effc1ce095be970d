/**
 * The Orchestrator Dynamic service, booted in this process from its layer graph (`App.make`)
 * against the rig's proxies, with a logger that keeps what the invariants need from its log lines.
 */
import * as App from "@neural-hive/example-orchestrator-dynamic/App"
import type { AppConfig } from "@neural-hive/example-orchestrator-dynamic/AppConfig"
import type * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import { Context, Effect, Exit, Layer, Logger, Redacted, Scope } from "effect"
import { HttpServer } from "effect/http"
import { DATABASE, within } from "./model.ts"
import type { Rig } from "./rig.ts"

export interface LogCapture {
  readonly logger: Logger.Logger<unknown, void>
  lines: number
  errorLines: number
  readonly byMessage: Map<string, number>
  /** Transition lines: [circuit, message]. */
  readonly transitions: Array<{ readonly circuit: string; readonly message: string; readonly at: string }>
  /** Lines whose cause holds a defect (Die), at any level. */
  readonly defects: Array<string>
  /** A few ERROR/FATAL lines, for the report. */
  readonly errorSamples: Array<string>
}

/** A logger that formats each line as the service's JSON output (`Logger.formatJson`) and keeps what the checks need. */
export const captureLogs = (): LogCapture => {
  const capture: Omit<LogCapture, "logger"> = {
    lines: 0,
    errorLines: 0,
    byMessage: new Map(),
    transitions: [],
    defects: [],
    errorSamples: []
  }
  const logger = Logger.make((options) => {
    const line = Logger.formatJson.log(options)
    capture.lines++
    let parsed: { message?: unknown; level?: unknown; annotations?: Record<string, unknown> }
    try {
      parsed = JSON.parse(line)
    } catch {
      parsed = {}
    }
    const message = typeof parsed.message === "string" ? parsed.message : JSON.stringify(parsed.message)
    capture.byMessage.set(message, (capture.byMessage.get(message) ?? 0) + 1)
    if (message.startsWith("circuit_breaker_")) {
      capture.transitions.push({
        circuit: String(parsed.annotations?.["circuit"]),
        message,
        at: options.date.toISOString()
      })
    }
    const level = String(parsed.level)
    if (level === "ERROR" || level === "FATAL") {
      capture.errorLines++
      if (capture.errorSamples.length < 3) capture.errorSamples.push(line.slice(0, 400))
    }
    if (options.cause.reasons.some((reason) => reason._tag === "Die")) {
      if (capture.defects.length < 20) capture.defects.push(line.slice(0, 2000))
      else capture.defects.push("(more)")
    }
  })
  return Object.assign(capture, { logger })
}

export interface Service {
  readonly base: string
  readonly get: (route: string) => Promise<{ status: number; text: string }>
  /** Shuts the service down (its clients disconnect); idempotent, never throws. */
  readonly close: () => Promise<void>
}

/** Boots the service on a free port of 127.0.0.1; throws if it does not boot within a minute. */
export const startService = async (
  rig: Rig,
  settings: OrchestratorConfig.Settings,
  logs: LogCapture,
  delivery: "at-least-once" | "exactly-once" = "at-least-once"
): Promise<Service> => {
  const config: AppConfig = {
    resilienceConfig: "(chaos settings)",
    service: "orchestrator-dynamic",
    host: "127.0.0.1",
    port: 0,
    adminToken: undefined,
    kafkaBrokers: [rig.kafkaProxy.address],
    temporalAddress: rig.temporalProxy.address,
    temporalNamespace: "default",
    redisUrl: Redacted.make(`redis://127.0.0.1:${rig.redisProxy.port}`),
    mongodbUrl: Redacted.make(`mongodb://127.0.0.1:${rig.mongodbProxy.port}/${DATABASE}`),
    faults: {},
    outbox: { delivery, transactionalId: "orchestrator-dynamic-0" }
  }
  const scope = Effect.runSync(Scope.make())
  let open = true
  const close = async () => {
    if (!open) return
    open = false
    await within(Effect.runPromise(Scope.close(scope, Exit.void)), 30_000, "service shutdown").catch(() => undefined)
  }
  try {
    const context = await within(
      Effect.runPromise(
        Layer.buildWithScope(App.make(config, settings).pipe(Layer.provide(Logger.layer([logs.logger]))), scope)
      ),
      60_000,
      "service boot"
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    const base = `http://127.0.0.1:${"port" in address ? address.port : 0}`
    const get = async (route: string) => {
      const response = await fetch(`${base}${route}`, { signal: AbortSignal.timeout(10_000) })
      return { status: response.status, text: await response.text() }
    }
    return { base, get, close }
  } catch (error) {
    await close()
    throw error
  }
}
