/**
 * The fleet's own pair of Redis connections: one for commands, which fail
 * within `timeout` rather than queue, and one for the subscription.
 *
 * @internal
 */
import { Redis } from "ioredis"

export interface Connections {
  readonly client: Redis
  readonly subscriber: Redis
}

/** Opens both connections (ioredis connects in the background); the caller listens for `error` at once. */
export const make = (url: string, timeout: number): Connections => {
  // Literals, not `RedisOptions`: ioredis 6 types that interface's optional fields as `T | undefined`,
  // which its own constructor refuses under `exactOptionalPropertyTypes`; ioredis 5 accepts both.
  const common = {
    autoResendUnfulfilledCommands: false,
    connectTimeout: Math.max(timeout, 1000),
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000)
  }
  return {
    client: new Redis(url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: timeout }),
    // The subscription waits for the connection instead of failing: it is renewed on every reconnection.
    subscriber: new Redis(url, { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null })
  }
}
