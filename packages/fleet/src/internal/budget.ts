/**
 * The fleet-wide retry budget: every `heartbeat`, off the call path, each
 * replica stores its budgets' windows (calls and retries) in Redis and gives
 * each budget the other replicas' windows (`Remote.shareBudget`), so the ratio
 * and the reserve bound the retries of the fleet. Redis away or a command
 * failed: the budget counts alone again until the next answer.
 *
 * @internal
 */
import { Remote, type RetryBudget } from "@neural-hive/resilience"
import * as Effect from "effect/Effect"
import { command, type Replica } from "./replica.ts"
import * as Scripts from "./scripts.ts"

/** The reply of `Scripts.budget`: the others' calls, retries and number; `undefined` when it is not one. */
const parse = (reply: unknown): { calls: number; retries: number; replicas: number } | undefined => {
  if (!Array.isArray(reply) || reply.length !== 3) return undefined
  const [calls, retries, replicas] = reply.map(Number)
  if (![calls, retries, replicas].every((n) => Number.isInteger(n) && n! >= 0)) return undefined
  return { calls: calls!, retries: retries!, replicas: replicas! }
}

/** Publishes one budget's window and takes the others'. */
const share = (r: Replica, budget: RetryBudget.RetryBudget, ttl: number): Effect.Effect<void> => {
  const { calls, retries } = Remote.budgetWindow(budget)
  return command(
    r,
    "BUDGET",
    () => r.client.eval(Scripts.budget, 1, `${r.prefix}:${budget.name}:budget`, r.pod, calls, retries, ttl)
  ).pipe(
    Effect.map(parse),
    Effect.catch(() => Effect.succeed(undefined)),
    Effect.map((others) => Remote.shareBudget(budget, others))
  )
}

/** Every budget counts alone again (Redis away, or the fleet stopped). */
export const unshareAll = (r: Replica): void => {
  for (const budget of r.budgets.values()) Remote.shareBudget(budget, undefined)
}

/** Every `heartbeat` while connected: shares each budget's window with the fleet. */
export const budgetLoop = (r: Replica): Effect.Effect<void> => {
  // A replica's window leaves the others' sums when it stopped reporting for three heartbeats.
  const ttl = Math.max(3 * r.heartbeat + r.timeout, 2000)
  return Effect.suspend(() =>
    r.connected && r.budgets.size > 0
      ? Effect.forEach(Array.from(r.budgets.values()), (budget) => share(r, budget, ttl), { discard: true })
      : Effect.void
  ).pipe(Effect.andThen(Effect.sleep(r.heartbeat)), Effect.forever)
}
