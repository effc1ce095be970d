/**
 * The fault schedule and its injection: what each fault does to a server or its proxy, when (in
 * fractions of the load's duration, with a small seeded jitter), and the timers that run it.
 */
import type * as OrchestratorConfig from "@neural-hive/example-orchestrator-dynamic/OrchestratorConfig"
import * as Duration from "effect/Duration"
import type { ServerName } from "../rig/servers.ts"
import type { FaultRecord } from "./model.ts"
import type { Rig } from "./rig.ts"

export interface FaultSpec {
  readonly server: ServerName
  readonly from: number
  readonly to: number
  readonly inject: string
  readonly lift: string
  readonly injectRun: (rig: Rig) => Promise<void>
  readonly liftRun: (rig: Rig) => Promise<void>
}

/** The end of the last fault, as a fraction of the load: the rest is the quiet tail. */
export const LAST_FAULT_ENDS = 0.68

/**
 * The schedule. Flow order is Redis (fail-open), Temporal, MongoDB, then the relay's Kafka: the Kafka
 * breaker is still out (the relay's calls failed) when MongoDB's trips, so two fail-fast breakers overlap.
 */
export const schedule = (
  settings: OrchestratorConfig.Settings,
  cuts: { timer: NodeJS.Timeout | undefined }
): Array<FaultSpec> => {
  const kafkaSlowMs = Math.round(Duration.toMillis(settings.kafka.callTimeout))
  return [
    {
      server: "kafka",
      from: 0.10,
      to: 0.26,
      inject: "SIGKILL the broker (crash)",
      lift: "restart it (same port and data)",
      injectRun: (rig) => rig.kafka.kill(),
      liftRun: (rig) => rig.kafka.restart()
    },
    {
      server: "redis",
      from: 0.16,
      to: 0.34,
      inject: "stall the proxy (no bytes either way)",
      lift: "pass",
      injectRun: (rig) => rig.redisProxy.stall(),
      liftRun: (rig) => rig.redisProxy.pass()
    },
    {
      server: "mongodb",
      from: 0.22,
      to: 0.40,
      inject: "refuse new connections, cut open ones every second",
      lift: "pass",
      injectRun: async (rig) => {
        await rig.mongodbProxy.refuse()
        rig.mongodbProxy.cut()
        cuts.timer = setInterval(() => rig.mongodbProxy.cut(), 1_000)
      },
      liftRun: async (rig) => {
        clearInterval(cuts.timer)
        cuts.timer = undefined
        await rig.mongodbProxy.pass()
      }
    },
    {
      server: "temporal",
      from: 0.44,
      to: 0.56,
      inject: "SIGSTOP the server (hung)",
      lift: "SIGCONT",
      injectRun: async (rig) => rig.temporal.pause(),
      liftRun: async (rig) => rig.temporal.resume()
    },
    {
      server: "redis",
      from: 0.50,
      to: 0.58,
      inject: "SIGKILL the server",
      lift: "restart it (empty)",
      injectRun: (rig) => rig.redis.kill(),
      liftRun: (rig) => rig.redis.restart()
    },
    {
      server: "kafka",
      from: 0.60,
      to: LAST_FAULT_ENDS,
      inject: `slow the proxy: +${kafkaSlowMs} ms each way`,
      lift: "pass",
      injectRun: (rig) => rig.kafkaProxy.delay(kafkaSlowMs),
      liftRun: (rig) => rig.kafkaProxy.pass()
    },
    {
      server: "temporal",
      from: 0.62,
      to: 0.66,
      inject: "cut every connection and refuse new ones",
      lift: "pass",
      injectRun: async (rig) => {
        await rig.temporalProxy.refuse()
        rig.temporalProxy.cut()
      },
      liftRun: (rig) => rig.temporalProxy.pass()
    }
  ]
}

export interface RunningFaults {
  readonly records: ReadonlyArray<FaultRecord>
  /** Resolves when every injection and lift ran (a restart counts once the server answers). */
  readonly done: Promise<void>
  /** Clears the timers not yet fired and the MongoDB cutter. */
  readonly cancel: () => void
}

/** Lays `schedule` out over `durationMs` from `t0` (a `performance.now()`) and arms its timers. */
export const startFaults = (options: {
  readonly rig: Rig
  readonly settings: OrchestratorConfig.Settings
  readonly durationMs: number
  readonly t0: number
  readonly random: () => number
  readonly log: (line: string) => void
}): RunningFaults => {
  const { durationMs, log, rig, t0 } = options
  const cuts: { timer: NodeJS.Timeout | undefined } = { timer: undefined }
  const timers = new Set<NodeJS.Timeout>()
  const specs = schedule(options.settings, cuts)
  const records: Array<FaultRecord> = specs.map((s) => {
    const jitter = () => (options.random() - 0.5) * 0.01 * durationMs
    return {
      server: s.server,
      inject: s.inject,
      lift: s.lift,
      plannedFromMs: Math.round(s.from * durationMs + jitter()),
      plannedToMs: Math.round(s.to * durationMs + jitter()),
      injectedAtMs: undefined,
      liftedAtMs: undefined,
      liftDoneAtMs: undefined,
      error: undefined
    }
  })
  // One chain per server, so that a lift never overtakes its own injection (a restart that is still running).
  const chains = new Map<ServerName, Promise<void>>()
  const at = (ms: number, server: ServerName, run: () => Promise<void>) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        const chain = (chains.get(server) ?? Promise.resolve()).then(run)
        chains.set(server, chain.catch(() => undefined))
        chain.then(resolve, resolve)
      }, Math.max(0, ms - (performance.now() - t0)))
      timers.add(timer)
    })
  const actions = specs.flatMap((spec, i) => {
    const record = records[i]!
    return [
      at(record.plannedFromMs, spec.server, async () => {
        record.injectedAtMs = performance.now() - t0
        log(`chaos: t=${(record.injectedAtMs / 1000).toFixed(1)} s ${spec.server}: ${spec.inject}`)
        await spec.injectRun(rig).catch((error: unknown) => {
          record.error = `inject: ${String(error)}`
        })
      }),
      at(record.plannedToMs, spec.server, async () => {
        record.liftedAtMs = performance.now() - t0
        log(`chaos: t=${(record.liftedAtMs / 1000).toFixed(1)} s ${spec.server}: ${spec.lift}`)
        await spec.liftRun(rig).catch((error: unknown) => {
          record.error = `${record.error === undefined ? "" : `${record.error}; `}lift: ${String(error)}`
        })
        record.liftDoneAtMs = performance.now() - t0
      })
    ]
  })
  return {
    records,
    done: Promise.all(actions).then(() => undefined),
    cancel: () => {
      for (const timer of timers) clearTimeout(timer)
      clearInterval(cuts.timer)
    }
  }
}
