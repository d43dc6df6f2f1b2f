# syntax=docker/dockerfile:1
#
# wshub container image (issue 7).
#
#   docker build -t wshub .
#   docker run -p 3003:3003 -p 9100:9100 wshub
#   docker run wshub --help        # arguments after the image name are wshub flags
#
# Base image choice: gcr.io/distroless/nodejs (Debian 12, glibc) for the runtime.
# - glibc, not musl/alpine: bufferutil (ws's native frame masking) ships ONE prebuilt
#   Linux binary, prebuilds/linux-x64/bufferutil.node, linked against glibc
#   (NEEDED libc.so.6, GLIBC_2.x symbols); on alpine it would not load and ws
#   would silently fall back to JavaScript. The build stages use the same Debian
#   release (bookworm) so a binding compiled there (arm64 has no prebuild) runs here.
# - distroless, not node:*-slim: no shell, no package manager, no npm in the
#   runtime image: a smaller attack surface and ~half the size of slim. The
#   health check therefore uses node itself (no curl, no sh).
# Node 24 is an LTS line (supported to 2028-04) published both as node:24 and as
# distroless nodejs24; the same major for building and running keeps the native ABI aligned.
ARG NODE_MAJOR=24

# --- build: dev dependencies + TypeScript compile ------------------------------
FROM node:${NODE_MAJOR}-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the root "prepare" script compiles, and the sources are not copied yet.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.sdk.json ./
COPY bin ./bin
COPY src ./src
RUN npm run build

# --- deps: production dependencies only, with the native accelerator -----------
FROM node:${NODE_MAJOR}-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The rebuild runs bufferutil's install script (node-gyp-build): it picks the
# prebuilt binary where one exists (linux-x64) and compiles with this image's
# toolchain elsewhere. The last step fails the build if the binding cannot load.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild bufferutil \
 && node -e "require('node-gyp-build')('node_modules/bufferutil')"

# --- runtime ---------------------------------------------------------------------
FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY bin ./bin
# The native binding must load against this image's libc, not only the build image's.
RUN ["/nodejs/bin/node", "-e", "require('node-gyp-build')('node_modules/bufferutil')"]
# Numeric uid (distroless "nonroot"), so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
# 3003: WebSocket (/ws). 9100: /metrics, /livez, /readyz.
EXPOSE 3003 9100
# wshub itself runs as PID 1 and installs SIGTERM/SIGINT handlers (src/lifecycle/signals.ts),
# so the kernel's "PID 1 ignores default-action signals" rule does not apply; it spawns no
# children, so there are no zombies to reap and no init (tini) is needed.
STOPSIGNAL SIGTERM
# Reads WSHUB_METRICS_PORT so the check follows a non-default metrics port set by env.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/nodejs/bin/node", "-e", "fetch('http://127.0.0.1:'+(process.env.WSHUB_METRICS_PORT||9100)+'/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/nodejs/bin/node", "bin/wshub.js"]
CMD []
