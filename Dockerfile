# podrelay container image.
#
#   docker build -t ghcr.io/podrelay/podrelay:0.1.0 .
#
# Two stages on the same Debian release, so the binaries built in the first stage find the
# exact shared libraries they were linked against in the second. For reproducible builds, pin
# both FROM lines to a digest (debian:bookworm-slim@sha256:...) in your release pipeline.

# ---------------------------------------------------------------------------------------------
# build: exactly what CI and developers run, so CI proves this stage's steps too.
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY . .
# install-deps.sh also installs the test-only packages (Python, Ruby, npm): the same script CI
# runs, and none of it reaches the runtime stage.
RUN scripts/install-deps.sh && scripts/build.sh
# The two binaries without debug information (50 MB -> about 3 MB; symbols stay), checked to
# load and run here, not at pod start.
RUN scripts/package.sh /out

# ---------------------------------------------------------------------------------------------
# runtime: shared libraries + the two binaries; no compiler, no -dev package, no shell tools
# beyond what the slim base already has.
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/install-deps.sh
COPY --from=build /out/podrelay /out/podrelay-cli /usr/local/bin/

LABEL org.opencontainers.image.title="podrelay" \
      org.opencontainers.image.description="Kubernetes sidecar mirroring a localhost pub/sub protocol onto Redis pub/sub" \
      org.opencontainers.image.source="https://github.com/podrelay/podrelay"

# Numeric user (the conventional "nonroot" 65532) so Kubernetes' runAsNonRoot can verify it
# without a passwd entry. podrelay writes nothing to disk: the image runs unchanged with
# readOnlyRootFilesystem. A Unix-socket --listen needs a writable volume (e.g. an emptyDir).
USER 65532:65532

# 7400: app protocol, loopback only by default (the sidecar shares the pod's network namespace,
#       so the app reaches it on 127.0.0.1). 9400: admin HTTP (/metrics /healthz /readyz).
EXPOSE 7400 9400

# SIGTERM (the default stop signal) starts the drain: /readyz turns 503, apps get GOAWAY,
# buffered publishes are flushed within --drain-timeout, then exit 0.
ENTRYPOINT ["/usr/local/bin/podrelay"]
# No flags here on purpose: a flag given on the command line would shadow the PODRELAY_*
# environment variables that the Kubernetes ConfigMap sets. Defaults (listen 127.0.0.1:7400,
# admin 0.0.0.0:9400) come from the daemon itself; configure with env or explicit args.
CMD []
