/**
 * A Promise-only program (scripts/consumer-test.ts): it never imports `effect`. It makes breakers with
 * `Facade.make` and `Facade.makeRegistry`, trips one, reads state and events, and leaves one breaker
 * OPEN and unclosed with a one-minute open period: the process must still exit as soon as its last
 * line is printed, because a facade breaker's timers never hold it (the test measures the gap).
 */
import { CircuitBreakerError, CircuitBreakerOptionsError, Facade } from "@neural-hive/resilience"
import { strict as assert } from "node:assert"

const failing = (): Promise<never> => Promise.reject(new Error("connection refused"))

// One line, as with opossum or cockatiel; left open on purpose, never closed.
const forgotten = Facade.make({ name: "forgotten_api", failMax: 1, recoveryTimeout: "60 seconds" })
await forgotten.execute(failing).catch(() => undefined)
assert.equal(forgotten.state(), "Open")

{
  await using registry = Facade.makeRegistry()
  const users = registry.make({ name: "users_api", failMax: 2, recoveryTimeout: "60 seconds" })
  const transitions: Array<string> = []
  const stop = users.listen({ onTransition: (t) => transitions.push(`${t.from}->${t.to}`) })
  const getUser = users.wrap((id: string) => id === "down" ? failing() : Promise.resolve({ id }))

  assert.deepEqual(await getUser("42"), { id: "42" })
  for (let i = 0; i < 2; i++) await assert.rejects(getUser("down"), /connection refused/)
  await assert.rejects(getUser("42"), (error: unknown) => error instanceof CircuitBreakerError)
  assert.deepEqual(transitions, ["Closed->Open"])
  assert.equal(users.snapshot().totals.rejected, 1)
  stop()

  // A name is unique in a registry; bad options throw a typed error naming the option.
  assert.throws(() => registry.make({ name: "users_api" }), CircuitBreakerOptionsError)
  assert.throws(() => Facade.make({ name: "bad", failMax: 0 }), /failMax/)
  assert.equal(registry.get("users_api"), users)

  const parse = Facade.make({ name: "parser", failMax: 1 }).wrapSync((text: string) => JSON.parse(text) as unknown)
  assert.deepEqual(parse("[1]"), [1])
}

console.log("promise: ok")
console.log(`promise: last line at ${Date.now()}`)
