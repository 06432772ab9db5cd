# syntax=docker/dockerfile:1
# The signaling node image: compiled with the full toolchain in `build`, then run from a slim
# Debian image (uWebSockets.js ships glibc binaries) as a non-root user on a read-only root file
# system; only /tmp needs to be writable (mount a tmpfs or emptyDir there). NODE_IMAGE may name a
# Node 22 bookworm-slim image too (docs/deployment.md "Node versions"); 20 is the one tested here.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs an install script; skipping them keeps the build hermetic.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY client ./client
COPY signaling-server ./signaling-server
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    DATA_DIR=/tmp/signaling-data
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; npm itself is then removed so it cannot be used (or flagged by
# scanners) at run time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /root/.npm
COPY db ./db
COPY signaling-server/public ./signaling-server/public
COPY --from=build /app/signaling-server/dist ./signaling-server/dist
COPY --from=build /app/client/dist ./client/dist
# Files stay owned by root and read-only; the process runs as the image's `node` user.
USER 1000:1000
EXPOSE 8080
# SIGTERM starts the drain (fail /readyz, send `reconnect` in waves, exit within DRAIN_TIMEOUT_MS).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["node", "signaling-server/dist/main.js"]
