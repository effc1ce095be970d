/**
 * redactError on every shape a cause chain can hold: plain objects (with or without a prototype),
 * arrays, null fields, class instances it must not copy, and a chain deeper than it follows. Written for
 * behaviour a mutation run showed unpinned (docs/testing.md, "Mutation testing").
 */
import { assert, describe, it } from "@effect/vitest"
import { redactError } from "@neural-hive/resilience"

const URL = "redis://app:pw-S3cret@cache:6379"
const MASKED = "redis://app:***@cache:6379"

describe("redactError: the shapes of a cause chain", () => {
  it("plain objects, objects without a prototype and arrays are copied with their strings redacted", () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { url: URL })
    const original = { url: URL, list: [URL, 1, null], bare, nothing: null, count: 3, sized: { length: URL } }
    const copy = redactError(original)
    assert.notStrictEqual(copy, original)
    assert.deepStrictEqual(copy.list, [MASKED, 1, null])
    assert.isTrue(Array.isArray(copy.list))
    assert.strictEqual(copy.url, MASKED)
    assert.strictEqual(copy.bare["url"], MASKED)
    assert.isNull(Object.getPrototypeOf(copy.bare))
    assert.isNull(copy.nothing)
    assert.strictEqual(copy.count, 3)
    assert.strictEqual(copy.sized.length, MASKED) // only an array's length is left to the array
    assert.strictEqual(original.url, URL) // the original is left as it was
  })

  it("an AggregateError's list of errors is copied too (an array's length is not redefined)", () => {
    const error = new AggregateError([new Error(`dial ${URL}`), `retry ${URL}`], "every replica failed")
    const copy = redactError(error)
    assert.instanceOf(copy, AggregateError)
    assert.strictEqual(copy.errors.length, 2)
    assert.strictEqual((copy.errors[0] as Error).message, `dial ${MASKED}`)
    assert.strictEqual(copy.errors[1], `retry ${MASKED}`)
  })

  it("an instance of another class is kept as it is, not copied", () => {
    class Client {
      readonly url = URL
    }
    const client = new Client()
    const error = Object.assign(new Error("failed"), { client, when: new Date(0) })
    const copy = redactError(error)
    assert.strictEqual(copy.client, client)
    assert.strictEqual(copy.when, error.when)
  })

  it("the copy's fields are plain data: same enumerability, writable and configurable", () => {
    const error = Object.assign(new Error(`dial ${URL}`), { address: URL })
    const copy = redactError(error)
    assert.include(Object.keys(copy), "address")
    assert.notInclude(Object.keys(copy), "message") // not enumerable on the original either
    const address = Object.getOwnPropertyDescriptor(copy, "address")!
    assert.deepStrictEqual([address.enumerable, address.writable, address.configurable], [true, true, true])
    copy.address = "changed"
    assert.strictEqual(copy.address, "changed")
    assert.isTrue(delete (copy as { address?: string }).address)
  })

  it("a chain is followed 16 levels down; below that, values are kept as they are", () => {
    type Level = { url: string; next?: Level }
    const levels: Array<Level> = Array.from({ length: 20 }, () => ({ url: URL }))
    for (let i = 0; i < levels.length - 1; i++) levels[i]!.next = levels[i + 1]!
    let copied: Level | undefined = redactError(levels[0]!)
    for (let depth = 0; depth <= 16; depth++) {
      assert.notStrictEqual(copied, levels[depth], `level ${depth} is a copy`)
      assert.strictEqual(copied?.url, MASKED, `level ${depth} is redacted`)
      copied = copied?.next
    }
    assert.strictEqual(copied, levels[17], "level 17 is the original")
  })
})
