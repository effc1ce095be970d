/**
 * The `ssl` option checked and resolved to what kafkajs passes to `tls.connect`.
 *
 * @internal
 */
import type { ConnectionOptions } from "node:tls"
import type { Tls } from "../KafkaProducer.ts"

/** What kafkajs gets: `false` (plaintext), `true` (the system's CAs) or the TLS options. */
export type TlsSettings = boolean | ConnectionOptions

/** A PEM certificate: what `ca` must hold (a file's path instead is the usual mistake). */
const PEM = /-----BEGIN CERTIFICATE-----/

/**
 * `ssl` resolved, or the problem: `[option, value, expected]` for the options error. A CA is never
 * secret, but only its size is shown (a certificate in an error message is noise).
 */
export const resolveTls = (
  ssl: boolean | Tls | undefined
): TlsSettings | readonly [option: string, value: unknown, expected: string] => {
  if (ssl === undefined || typeof ssl === "boolean") return ssl ?? false
  if (typeof ssl !== "object" || ssl === null) {
    return ["ssl", ssl, "true, false or { ca, servername, rejectUnauthorized }"]
  }
  const { ca, rejectUnauthorized, servername } = ssl
  const cas = ca === undefined ? [] : typeof ca === "string" ? [ca] : Array.isArray(ca) ? ca : [ca]
  const bad = cas.find((entry) => typeof entry !== "string" || !PEM.test(entry))
  if (bad !== undefined) {
    return [
      "ssl.ca",
      typeof bad === "string" ? `a string of ${bad.length} characters` : bad,
      "PEM certificates (-----BEGIN CERTIFICATE-----), the file's content rather than its path"
    ]
  }
  if (servername !== undefined && (typeof servername !== "string" || servername === "")) {
    return ["ssl.servername", servername, "a non-empty host name"]
  }
  if (rejectUnauthorized !== undefined && typeof rejectUnauthorized !== "boolean") {
    return ["ssl.rejectUnauthorized", rejectUnauthorized, "true or false"]
  }
  return {
    ...(ca === undefined ? {} : { ca: [...cas] }),
    ...(servername === undefined ? {} : { servername }),
    ...(rejectUnauthorized === undefined ? {} : { rejectUnauthorized })
  }
}
