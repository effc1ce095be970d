/**
 * The Lua scripts the fleet runs on Redis. Every decision is taken inside one
 * script, so Redis orders them: the script reads Redis `TIME` (the only clock
 * the fleet uses), fences the decision against the stored one, stores it with a
 * new epoch and publishes it to the group's channel.
 *
 * Stored per circuit (a hash): `epoch`, `kind` (open | closed | forced |
 * disabled), `until` (Redis milliseconds, open only), `openings`, `pod`.
 *
 * @internal
 */

/** The answer of `decide` and `read`: a state with its remaining open time, and whether it is new. */
export interface Answer {
  readonly epoch: number
  readonly kind: "open" | "closed" | "forced" | "disabled"
  readonly remaining: number
  readonly openings: number
  readonly pod: string
  readonly circuit: string
  readonly accepted: boolean
}

const prelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function load()
  local v = redis.call('HMGET', KEYS[1], 'epoch', 'kind', 'until', 'openings', 'pod')
  if not v[1] then return nil end
  return { epoch = tonumber(v[1]), kind = v[2], untilMs = tonumber(v[3]) or 0, openings = tonumber(v[4]) or 0, pod = v[5] or '' }
end
local function answer(s, circuit, accepted)
  local remaining = 0
  if s.kind == 'open' then remaining = math.max(0, s.untilMs - now) end
  return cjson.encode({ epoch = s.epoch, kind = s.kind, remaining = remaining, openings = s.openings,
    pod = s.pod, circuit = circuit, accepted = accepted })
end
`

// Stores decision `s`, ends any probe lease and the shared count, publishes it; returns the message.
const store = `
local function store(channel, circuit, kind, duration, openings, pod, cur)
  local epoch = now
  if cur and cur.epoch >= epoch then epoch = cur.epoch + 1 end
  local untilMs = 0
  if kind == 'open' then untilMs = now + duration end
  local s = { epoch = epoch, kind = kind, untilMs = untilMs, openings = openings, pod = pod }
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'kind', kind, 'until', untilMs, 'openings', openings, 'pod', pod)
  redis.call('DEL', KEYS[2], KEYS[3])
  local message = answer(s, circuit, true)
  redis.call('PUBLISH', channel, message)
  return message
end
local function refused(cur, rule)
  if not cur then return rule == 'probe' end
  local inForce = cur.kind == 'open' and cur.untilMs > now
  local admin = cur.kind == 'forced' or cur.kind == 'disabled'
  if rule == 'trip' then return inForce or admin end
  if rule == 'probe' then return not (cur.kind == 'open' and not inForce) end
  return false
end
local none = { epoch = 0, kind = 'closed', untilMs = 0, openings = 0, pod = '' }
`

/**
 * KEYS: state, lease, counts. ARGV: channel, rule (trip | probe | admin), kind,
 * duration millis, openings, pod, circuit.
 *
 * - trip (a local trip or a failed probe): refused while an open period is in
 *   force or an admin mode holds; the caller adopts the stored state instead.
 * - probe (a probe closed the breaker): accepted only when the stored state is
 *   an open period that has ended, so a late result never closes a newer opening.
 * - admin (force open, disable, reset): always accepted.
 *
 * The epoch is Redis time in milliseconds (or one past the stored epoch), so it
 * keeps growing even when Redis lost its data.
 */
export const decide = prelude + store + `
local cur = load()
if refused(cur, ARGV[2]) then return answer(cur or none, ARGV[7], false) end
return store(ARGV[1], ARGV[7], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], cur)
`

/**
 * The shared count. KEYS: state, lease, counts. ARGV: channel, pod, count,
 * threshold, duration millis, circuit, ttl millis.
 *
 * Each replica reports its own consecutive count; when the replicas' counts add
 * up to the threshold the fleet trips (the trip rule applies). A replica that
 * stops reporting drops out after ttl.
 */
export const count = prelude + store + `
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
if tonumber(ARGV[3]) == 0 then return nil end
local sum = 0
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do sum = sum + tonumber(v) end
if sum < tonumber(ARGV[4]) then return nil end
local cur = load()
if refused(cur, 'trip') then return answer(cur, ARGV[6], false) end
return store(ARGV[1], ARGV[6], 'open', tonumber(ARGV[5]), 1, ARGV[2], cur)
`

/** KEYS: state. ARGV: circuit. The stored state with its remaining time, or nil. */
export const read = prelude + `
local cur = load()
if not cur then return nil end
return answer(cur, ARGV[1], false)
`

/** KEYS: lease. ARGV: holder, ttl millis. Extends the lease only for its holder. */
export const renew = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`

/** Parses an answer or a channel message; `undefined` when it is not one. */
export const parse = (text: unknown): Answer | undefined => {
  if (typeof text !== "string") return undefined
  try {
    const value = JSON.parse(text) as Partial<Answer>
    if (
      typeof value.epoch !== "number" || typeof value.remaining !== "number" || typeof value.circuit !== "string" ||
      (value.kind !== "open" && value.kind !== "closed" && value.kind !== "forced" && value.kind !== "disabled")
    ) return undefined
    return {
      epoch: value.epoch,
      kind: value.kind,
      remaining: value.remaining,
      openings: typeof value.openings === "number" ? value.openings : 0,
      pod: typeof value.pod === "string" ? value.pod : "",
      circuit: value.circuit,
      accepted: value.accepted === true
    }
  } catch {
    return undefined
  }
}

/**
 * The fleet-wide retry budget. KEYS: budget (a hash: pod -> "calls retries at"). ARGV: pod, calls,
 * retries, ttl millis.
 *
 * Stores this replica's window with Redis's time and answers the other replicas' windows added up
 * and their number, as `{calls, retries, replicas}`; a report older than ttl (a replica that stopped)
 * is dropped.
 */
export const budget = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. now)
redis.call('PEXPIRE', KEYS[1], ttl)
local all = redis.call('HGETALL', KEYS[1])
local calls, retries, replicas = 0, 0, 0
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local c, r, at = string.match(all[i + 1], '^(%d+) (%d+) (%d+)$')
    if c and now - tonumber(at) <= ttl then
      calls = calls + tonumber(c)
      retries = retries + tonumber(r)
      replicas = replicas + 1
    else
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
return { calls, retries, replicas }
`
