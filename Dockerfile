# syntax=docker/dockerfile:1
#
# One image for both halves of the driver: `rds-csi plugin --mode controller` (Deployment) and
# `rds-csi plugin --mode node` (DaemonSet). Build from the repository root:
#
#   docker build -t rds-csi:0.1.0 --build-arg VERSION=0.1.0 .
#
# The image's default user is unprivileged (uid 10001), which is all the controller needs. The node plugin
# cannot run that way: it writes /dev/nvme-fabrics, formats and mounts block devices and loads kernel modules,
# so its DaemonSet sets runAsUser 0 and privileged explicitly (see docs/deploy.md).

ARG PYTHON_VERSION=3.12
ARG DEBIAN_RELEASE=bookworm

# ---- build: the wheel with its Cython extensions, plus wheels of every dependency -------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY pyproject.toml setup.py README.md ./
COPY src/ src/

RUN pip wheel --no-cache-dir --wheel-dir /wheels .
# setup.py falls back to the pure-Python twins when the extensions fail to build; a release image must not
# ship that fallback silently, so prove the compiled backend is the one that loads.
RUN python -m venv /verify \
    && /verify/bin/pip install --no-cache-dir --no-index --find-links /wheels rds-csi \
    && /verify/bin/python -c "import rds_csi._native as n; assert n.BACKEND == 'cython', n.BACKEND"

# ---- runtime ----------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rds-csi" \
      org.opencontainers.image.description="Kubernetes CSI driver for MikroTik ROSE Data Server (NVMe/TCP)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# What the node plugin runs on the host's devices: mkfs/fsck/resize for ext4 and xfs, blkid and findmnt
# (util-linux), mount/umount, modprobe for nvme-tcp (kmod). nvme-cli is optional for the driver (it talks to
# /dev/nvme-fabrics and sysfs directly) and is here for operators debugging from `kubectl exec`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends e2fsprogs xfsprogs util-linux mount kmod nvme-cli \
    && rm -rf /var/lib/apt/lists/*

# Installed from the build stage's wheels through a bind mount, so no wheel file stays in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels rds-csi \
    && rds-csi --version

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin rds-csi
USER 10001

ENV PYTHONUNBUFFERED=1
EXPOSE 9809
ENTRYPOINT ["rds-csi"]
CMD ["plugin", "--help"]
