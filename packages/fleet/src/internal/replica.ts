/**
 * One replica's membership of its fleet, as the fleet's phases share it: its
 * settings, its pair of Redis connections, the circuits it shares and whether
 * Redis answers. `Fleet.make` builds it; the phases take it explicitly:
 * adopting the fleet's decisions (`adopt.ts`), publishing this replica's
 * (`publish.ts`), the connection and its heartbeat (`connection.ts`) and the
 * shared consecutive count (`sharedCount.ts`).
 *
 * @internal
 */
import { redact, type RetryBudget } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { Redis } from "ioredis"
import type * as Prometheus from "prom-client"
import type * as Circuit from "./circuit.ts"

export interface Replica {
  readonly group: string
  readonly pod: string
  /** The `service` label of the connected gauge. */
  readonly service: string
  /** Prefix of the keys; also the channel of the decisions. */
  readonly prefix: string
  readonly channel: string
  readonly client: Redis
  readonly subscriber: Redis
  /** The shared circuits by name (a circuit the fleet does not share is not here). */
  readonly circuits: Map<string, Circuit.Circuit>
  /** The retry budgets of the shared circuits by name, made fleet-wide (`budget.ts`). */
  readonly budgets: Map<string, RetryBudget.RetryBudget>
  readonly gauge: Prometheus.Gauge<"service" | "group"> | undefined
  /** Durations in milliseconds (see `Fleet.Options`). */
  readonly heartbeat: number
  readonly timeout: number
  readonly lease: number
  readonly hold: number
  readonly countInterval: number
  /** Forks an effect in the fleet's context, off the call path. */
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  /** The Clock's milliseconds, synchronously. */
  readonly now: () => number
  /** Redis answers: decisions are shared; otherwise each breaker runs locally. */
  connected: boolean
  /** The fleet stopped: nothing is adopted nor published any more. */
  closed: boolean
}

/** A command on the fleet's client that fails within `timeout`, with a message that names it and holds no secret. */
export const command = <A>(r: Replica, name: string, f: () => Promise<A>): Effect.Effect<A, Error> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new Error(`${name}: ${redact(cause instanceof Error ? cause.message : String(cause))}`)
  }).pipe(
    Effect.timeoutOrElse({ duration: r.timeout, orElse: () => Effect.fail(new Error(`${name}: timed out`)) })
  )
