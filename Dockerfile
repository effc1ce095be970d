# The Orchestrator Dynamic example service (deploy/helm/orchestrator-dynamic runs it).
# Not built in this repository's CI (no container engine there); see docs/deployment.md.
#   docker build -t orchestrator-dynamic .
#   docker run --rm -p 8000:8000 orchestrator-dynamic
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/ packages/
COPY examples/ examples/
# Production dependencies only; lifecycle scripts off (nothing here needs to compile at install time).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production HTTP_HOST=0.0.0.0 HTTP_PORT=8000
WORKDIR /app
# Owned by root and read-only to the service user: the pod runs with a read-only root filesystem anyway.
COPY --from=deps /app /app
USER 10001:10001
EXPOSE 8000
# The image has no build (no packages/*/dist): the condition loads @neural-hive/* from their sources, as `npm start` does.
CMD ["node", "--conditions=@neural-hive/source", "examples/orchestrator-dynamic/src/main.ts"]
