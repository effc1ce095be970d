/**
 * The fleet's own pair of Redis connections: one for commands, which fail
 * within `timeout` rather than queue, and one for the subscription.
 *
 * @internal
 */
import { Redis, type RedisOptions } from "ioredis"

export interface Connections {
  readonly client: Redis
  readonly subscriber: Redis
}

/** Opens both connections (ioredis connects in the background); the caller listens for `error` at once. */
export const make = (url: string, timeout: number): Connections => {
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: timeout,
    connectTimeout: Math.max(timeout, 1000),
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000)
  }
  return {
    client: new Redis(url, options),
    // The subscription waits for the connection instead of failing: it is renewed on every reconnection.
    subscriber: new Redis(url, {
      ...options,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      commandTimeout: undefined
    })
  }
}
