# mlsdm-grpc server image.
#
# Two stages: `build` turns the project and every dependency into wheels,
# `runtime` installs only those wheels into a venv. The runtime stage has no
# compiler, no pip in the venv and no source tree.
#
# The RUN steps marked `# ci: run outside docker` are executed verbatim outside
# Docker: deploy/validate.sh runs the build stage's step (it needs PyPI) and
# tests/deploy/test_container_entrypoint.py runs the runtime stage's step, then
# starts ENTRYPOINT + CMD with this file's ENV as UID 10001 and checks gRPC
# health. Paths used by those steps therefore come from ENV variables only.
#
# Pin the base by digest too (`python:3.11.13-slim-bookworm@sha256:...`) in
# your registry mirror; the version tag is the reviewed part here.

FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WHEELHOUSE=/wheels

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY proto/ ./proto/
COPY engine/ ./engine/
COPY server/ ./server/
COPY client/ ./client/

# Every runtime dependency ships manylinux wheels, so no build tools are needed
# even here; the project's own wheel is pure Python.
# ci: run outside docker
RUN python -m pip wheel --wheel-dir "$WHEELHOUSE" .


FROM python:3.11.13-slim-bookworm AS runtime

# Settings are deliberately NOT baked in as MLSDM_* variables: the environment
# beats the config file, so an image default would silently override the
# ConfigMap. Kubernetes passes MLSDM_CONFIG; `docker run` passes -e MLSDM_...
ENV VENV=/opt/mlsdm \
    WHEELHOUSE=/wheels \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric UID/GID so `runAsNonRoot` can be verified by the kubelet and
# volume ownership (fsGroup) is predictable.
RUN groupadd --system --gid 10001 mlsdm \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/mlsdm --shell /usr/sbin/nologin mlsdm \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/mlsdm

# The venv gets no pip of its own; the base image's pip installs into it from
# the wheelhouse only (--no-index), so nothing is fetched or compiled here.
# Bytecode is compiled now because the root filesystem is read-only at run time.
# ci: run outside docker
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip "$VENV" \
 && python -m pip --python "$VENV/bin/python" install --no-index \
      --find-links "$WHEELHOUSE" mlsdm-grpc

# Only now: with the venv first on PATH, `python` in the step above would have
# been the venv's, which has no pip.
ENV PATH=/opt/mlsdm/bin:$PATH

# The only writable paths at run time: tenant data and scratch space. Everything
# else works with readOnlyRootFilesystem.
VOLUME ["/var/lib/mlsdm", "/tmp"]
WORKDIR /var/lib/mlsdm
USER 10001:10001

# gRPC, HTTP (Connect, gRPC-Web, /ui/, /openapi.json), metrics.
EXPOSE 50051 8080 9464

# Exec form: the server is PID 1 and receives SIGTERM itself; it installs its
# own handler (drain, then exit within server.grace_period_s) and starts no
# children, so no init shim is needed for signal forwarding or reaping.
STOPSIGNAL SIGTERM
# --image-defaults: listen on 0.0.0.0 (both ports) unless configured otherwise,
# and with no credential source configured, generate one admin key at the
# first start in the data volume and print it once (never open). Defaults
# only: a ConfigMap (MLSDM_CONFIG), MLSDM_* and --set still win.
ENTRYPOINT ["mlsdm-grpc"]
CMD ["serve", "--image-defaults"]

# No HEALTHCHECK: Kubernetes ignores it (the kubelet runs the native gRPC
# probes from the Deployment), and the slim image has no gRPC probe binary
# to run one with.
