/**
 * What every measurement of the example service under HTTP load shares (the service table, the plan profile
 * and the real-server ceiling): autocannon's `POST /plans`, the check that every plan was served, and the
 * process's own CPU time.
 */
import autocannon from "autocannon"
import { readFileSync } from "node:fs"

/** `seconds` of `POST /plans` over `connections`, a fresh plan id per request (the service refuses a duplicate). */
export const loadPlans = (url: string, seconds: number, connections: number): Promise<autocannon.Result> =>
  autocannon({
    url: `${url}/plans`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: "bench-[<id>]", steps: ["plan", "execute"] }),
    idReplacement: true,
    connections,
    duration: seconds,
    // The service closes a keep-alive connection after 1,000 requests (`Connection: close`, to spread clients over
    // replicas); autocannon ignores the header and would get 503s on that socket: it reconnects before that instead.
    reconnectRate: 500
  })

/** A plan the service did not accept is not a plan served: a run with any (or with none at all) is a failed measurement. */
export const requireAllServed = (result: autocannon.Result, what: string): void => {
  if (result.non2xx > 0 || result.errors > 0 || result.requests.total === 0) {
    throw new Error(
      `${what} failed: ${result.requests.total} requests, ${result.non2xx} non-2xx ` +
        `(${JSON.stringify(result.statusCodeStats)}), ${result.errors} errors`
    )
  }
}

/**
 * Against real servers the service may shed load: its adaptive limits refuse a plan with 503 when a slot does
 * not come within the queue timeout. Those are counted, not a failed run; any other non-2xx, a socket error,
 * or no plan accepted at all is. Returns the plans accepted (202).
 */
export const acceptedOrShed = (result: autocannon.Result, what: string): { accepted: number; shed: number } => {
  const accepted = result.statusCodeStats["202"]?.count ?? 0
  const shed = result.statusCodeStats["503"]?.count ?? 0
  if (result.errors > 0 || accepted === 0 || accepted + shed !== result.requests.total) {
    throw new Error(
      `${what} failed: ${result.requests.total} requests, ${accepted} accepted, ${shed} shed (503) ` +
        `(${JSON.stringify(result.statusCodeStats)}), ${result.errors} errors`
    )
  }
  return { accepted, shed }
}

// Linux reports process times in clock ticks of 1/100 s on every common configuration (USER_HZ).
const ticksPerSecond = 100

/** User + system CPU time of a process, in µs, from /proc (Linux); NaN elsewhere. */
export const processCpuMicros = (pid: number | undefined): number => {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 1e6 / ticksPerSecond
  } catch {
    return NaN
  }
}
