# rc-softphone as a container: Node.js 20 on Debian slim, running as the
# image's unprivileged "node" user (uid 1000).
#
#   docker build -t rc-softphone .
#   docker run --rm -v "$PWD/devices:/devices:ro" -v "$PWD/recordings:/recordings" \
#     -p 9464:9464 -p 20000-20199:20000-20199/udp rc-softphone \
#     listen --devices /devices --record-dir /recordings --rtp-ports 20000-20199 --http :9464 --log-format json
#
# deploy/compose.yaml adds Redis (events, leases); deploy/kubernetes/ has a Deployment.

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No lifecycle scripts yet: `prepare` builds, and the sources are not here yet.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:20-slim
# tini: PID 1 that forwards SIGTERM (a graceful stop unregisters every device
# and finishes every recording) and reaps the --pipe engines' processes.
# ca-certificates: TLS to RingCentral (SIP over TLS, the REST API, rediss://).
# sox: converts audio for the --pipe engine commands the README shows.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates sox \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY assets ./assets
RUN mkdir -p /recordings /devices && chown node:node /recordings
USER node
VOLUME ["/recordings"]
# Metrics (--http); RTP is UDP in the --rtp-ports range you choose.
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["tini", "--", "node", "/app/bin/rc-softphone.js"]
CMD ["listen", "--devices", "/devices", "--record-dir", "/recordings", "--http", ":9464", "--log-format", "json"]
