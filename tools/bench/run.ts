/**
 * `npm run bench`: circuit breaker benchmarks, ours against bare Effect,
 * Effect's `effect/persistence/CircuitBreaker`, opossum and cockatiel.
 *
 * Needs `gc()`, so without `--expose-gc` it runs itself again with the flag.
 * The benchmark itself lives in `main.ts`, loaded only in the process that
 * measures.
 *
 * Environment:
 * - `BENCH_ROUNDS`: measured rounds (default 15, quick 2)
 * - `BENCH_TARGET_MS`: wall time aimed at per measurement (default 60, quick 20)
 * - `BENCH_QUICK=1`: a fast smoke run; does not write docs/performance.md
 * - `BENCH_ONLY`: comma-separated scenario ids to run (closed-effect, closed-promise, in-flight, rejection,
 *   half-open, memory, observability, policies, concurrency, breakers, service, paths, ceiling, profile); a partial run does not
 *   write docs/performance.md
 * - `NH_BREAKER_PATH=public`: the whole run on the breaker's public path (the `paths` measurement runs both paths
 *   in child processes of its own, with `BENCH_PATHS_CHILD=1`: see `paths.ts`)
 * - `BENCH_SERVICE_SECONDS` / `BENCH_SERVICE_ROUNDS` / `BENCH_SERVICE_CONNECTIONS`: the HTTP load on the example
 *   service (default 5 s, 8 rounds, 10 connections; quick 2 s, 2 rounds: an interval needs two pairs)
 * - `BENCH_CEILING_SECONDS` / `BENCH_CEILING_CONCURRENCY`: each real server's standalone measure (default 5 s,
 *   quick 1 s; 32 in flight, and as many connections to the service) and half the service's run against them (`ceiling.ts`; needs the servers `npm test`
 *   provisions)
 * - `BENCH_OUT`: where to write the markdown report (`-` for nowhere)
 * - `BENCH_JSON`: also write every per-round figure and the order of each round to this file
 */

// `npm run` passes --expose-gc: every measurement starts from a collected heap.
if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc (npm run does)")
const { main } = await import("./main.ts")
await main()
