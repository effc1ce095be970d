/**
 * Imported for its effect: this process's kafkajs gets the request-queue fix a KafkaProducer applies
 * (packages/kafka/src/internal/requestQueue.ts), so the harnesses' own kafkajs clients (topic creation,
 * read-back) do not print kafkajs's TimeoutNegativeWarning either. A vitest setup file (vitest.config.ts),
 * and imported by tools/chaos/rig.ts and tools/fleet/run.ts. test/kafka/RequestQueue.test.ts checks the producer's
 * own fix in processes this file never runs in.
 */
// By URL: tsc refuses to rewrite a relative .ts import into another project's sources (TS2878).
const internal = new URL("../../packages/kafka/src/internal/requestQueue.ts", import.meta.url)
const { quietRequestQueue } = (await import(internal.href)) as { readonly quietRequestQueue: () => boolean }
quietRequestQueue()
