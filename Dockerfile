# The Orchestrator Dynamic example service (deploy/helm/orchestrator-dynamic runs it). docs/deployment.md.
#   docker build -t orchestrator-dynamic .          (or: podman build --format docker ...)
#   docker run --rm --init -p 8000:8000 orchestrator-dynamic
# CI builds it with Podman on a local stand-in for node:24-slim (NODE_IMAGE, made by .ci/image-base.sh)
# and runs it: test/deploy/image.test.ts.
#
# No build stage: the service runs its TypeScript sources on Node 24 with the `@neural-hive/source`
# export condition, exactly as `npm start` and every test run it, so the image runs the code CI tested
# (no dist/ that could be stale). Starting costs Node's type stripping of the sources once.
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/ packages/
COPY examples/ examples/
# Production dependencies only, exactly the lockfile's; lifecycle scripts off (nothing here compiles at install).
# Behind a TLS-intercepting proxy, give its CA as a build secret: --secret id=npm_ca,src=/path/ca.crt
# (read by npm for this step only; it stays out of the image). The devDependency `node`, the
# repository's pinned toolchain, is dropped: the image has its own Node.
# npm's download cache is a build cache mount: reused by the next build, never in the image.
RUN --mount=type=secret,id=npm_ca --mount=type=cache,target=/root/.npm \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/node node_modules/.bin/node

FROM ${NODE_IMAGE}
# No package manager at run time: less to patch, nothing a compromised process could install with.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
 /opt/yarn* /usr/local/bin/yarn /usr/local/bin/yarnpkg
ENV NODE_ENV=production HTTP_HOST=0.0.0.0 HTTP_PORT=8000
WORKDIR /app
# Owned by root and read-only to the service user: the pod runs with a read-only root filesystem anyway.
COPY --from=deps /app /app
USER 10001:10001
EXPOSE 8000
# /live answers while the process serves; Kubernetes uses its own probes (the chart), this is for
# docker/podman. Node's fetch, no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||8000)+'/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains (/ready 503 for DRAIN_SECONDS, every route still serving), then closes; the runtime
# handles the signal, so it stops as PID 1 too (`--init` is still advised for reaping).
STOPSIGNAL SIGTERM
CMD ["node", "--conditions=@neural-hive/source", "examples/orchestrator-dynamic/src/main.ts"]
