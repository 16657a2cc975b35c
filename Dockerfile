# The stagegate GitHub Action: Python and the `action` package, entrypoint stagegate-action.
# BASE_IMAGE: any Debian-like image with python3 (>= 3.11) and its venv module.
# PIP_ARGS: e.g. "--no-index --find-links /src/.wheelhouse" to install from a local wheelhouse.
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}

ARG PIP_ARGS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

COPY . /src
# hadolint ignore=DL3013
RUN python3 -m venv /opt/stagegate \
    && /opt/stagegate/bin/pip install --no-cache-dir ${PIP_ARGS} "/src[action]" \
    && rm -rf /src

ENV PATH="/opt/stagegate/bin:${PATH}"
ENTRYPOINT ["stagegate-action"]
