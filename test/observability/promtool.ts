/**
 * Runs promtool (Debian package `prometheus`; `.ci/provision.sh` installs it).
 * A missing promtool fails the test that needs it: the alert rules are part of
 * the product and must be checked on every run.
 */
import { spawnSync } from "node:child_process"

export interface Run {
  readonly status: number | null
  readonly output: string
}

/** `$PROMTOOL` or `$NH_PROMTOOL` when set, else `promtool` from the PATH. */
export const promtoolPath = (): string => {
  for (const name of ["PROMTOOL", "NH_PROMTOOL"]) {
    const value = process.env[name]
    if (value !== undefined && value !== "" && value !== "missing") return value
  }
  return "promtool"
}

export const promtool = (
  args: ReadonlyArray<string>,
  options?: { readonly cwd?: string; readonly input?: string }
): Run => {
  const path = promtoolPath()
  const result = spawnSync(path, args, {
    cwd: options?.cwd,
    input: options?.input,
    encoding: "utf8",
    timeout: 60_000
  })
  if (result.error !== undefined) {
    throw new Error(
      `cannot run ${path} (${result.error.message}): install promtool (Debian package "prometheus", see .ci/provision.sh) or set PROMTOOL`
    )
  }
  return { status: result.status, output: `${result.stdout}${result.stderr}` }
}
