/**
 * A private CA and a server certificate for 127.0.0.1 / localhost, made by `openssl` at test time in a fresh
 * temporary directory: what the credential tests give Kafka's SASL_SSL listener, redis-server's `--tls-port`,
 * FerretDB's TLS listener and the Temporal TLS proxy. EC P-256 keys (fast to make), valid for 2 days.
 *
 * Plain Node APIs only, like the rest of the rig. A missing `openssl` throws: the tests fail, never skip.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export interface Pki {
  /** The temporary directory holding every file; `remove()` deletes it. */
  readonly dir: string
  /** PEM of the CA certificate: what clients trust. */
  readonly caFile: string
  readonly ca: string
  /** The server certificate (SAN: IP 127.0.0.1, DNS localhost), signed by the CA. */
  readonly certFile: string
  readonly cert: string
  /** The server's private key, unencrypted PKCS#8 PEM. */
  readonly keyFile: string
  readonly key: string
  /** Another CA, not the server's: a client trusting only it must refuse the server. */
  readonly otherCaFile: string
  readonly remove: () => void
}

const openssl = (cwd: string, args: ReadonlyArray<string>): void => {
  try {
    execFileSync(process.env["NH_OPENSSL"] || "openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] })
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? ""
    throw new Error(`openssl ${args.join(" ")} failed: ${(error as Error).message}\n${stderr}`, { cause: error })
  }
}

const newCa = (dir: string, name: string): void =>
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign"
  ])

/** Makes the CA, the server certificate and a second, unrelated CA. */
export function makePki(): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nh-pki-"))
  newCa(dir, "nh-test-ca")
  newCa(dir, "nh-other-ca")
  openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost"
  ])
  fs.writeFileSync(
    path.join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
  )
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "nh-test-ca.crt",
    "-CAkey",
    "nh-test-ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "server.ext"
  ])
  const file = (name: string) => path.join(dir, name)
  return {
    dir,
    caFile: file("nh-test-ca.crt"),
    ca: fs.readFileSync(file("nh-test-ca.crt"), "utf8"),
    certFile: file("server.crt"),
    cert: fs.readFileSync(file("server.crt"), "utf8"),
    keyFile: file("server.key"),
    key: fs.readFileSync(file("server.key"), "utf8"),
    otherCaFile: file("nh-other-ca.crt"),
    remove: () => fs.rmSync(dir, { recursive: true, force: true })
  }
}
