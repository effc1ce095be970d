/**
 * The `service` every metric, log line and `/health` report carries.
 *
 * Each layer of this package takes a `service` option; without one it reads
 * this reference, whose default is the Orchestrator Dynamic's `orchestrator-dynamic`. Set it
 * once for the whole program with `ServiceName.layer("my-service")`.
 *
 * **Example** (Naming the service once for every layer)
 *
 * ```ts
 * import { Layer } from "effect"
 * import { Metrics, ServiceName, TransitionLog } from "@neural-hive/observability"
 *
 * const Observability = Layer.mergeAll(Metrics.layer(), TransitionLog.layer()).pipe(
 *   Layer.provide(ServiceName.layer("orchestrator-dynamic"))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"

/**
 * The Orchestrator Dynamic's service name.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT = "orchestrator-dynamic"

/**
 * @since 0.1.0
 * @category references
 */
export const ServiceName: Context.Reference<string> = Context.Reference<string>(
  "@neural-hive/observability/ServiceName",
  { defaultValue: () => DEFAULT }
)

/**
 * Sets the service name for every layer of this package built below it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (service: string): Layer.Layer<never> => Layer.succeed(ServiceName, service)
