/**
 * Removes secrets from text that may reach logs, errors or `/health`.
 *
 * @since 0.1.0
 */

// user:password@ in any URL-like string, and password=... / token=... pairs.
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*):([^\s/@]*)@/gi
const SECRET_PAIRS =
  /\b(password|passwd|pwd|secret|token|api[_-]?key|authorization)(["']?\s*[=:]\s*["']?)([^\s"'&,;]+)/gi

/**
 * Replaces passwords in connection URLs and `password=...`-style pairs with `***`.
 *
 * @since 0.1.0
 * @category redaction
 */
export const redact = (text: string): string =>
  text.replace(URL_CREDENTIALS, "$1$2:***@").replace(SECRET_PAIRS, "$1$2***")
