# syntax=docker/dockerfile:1
# crawl: one image for every role (seed, worker, status, export). Build: docker build -t crawl .
# Wheels are built in a throw-away stage, so the final image has no compiler and no build cache.
# PYTHON_IMAGE: any Debian-based image whose `python`/`pip` (3.11+) install as root; where Docker
# Hub cannot be reached, scripts/image-base makes one from Debian's packages (scripts/check-image).
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crawler ./crawler
COPY workers ./workers
COPY storage ./storage
RUN pip wheel --wheel-dir /wheels ".[speed]"

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed, unprivileged user: files written to the OUT volume belong to uid 10001, not root.
RUN groupadd --system --gid 10001 crawl \
    && useradd --system --uid 10001 --gid crawl --create-home --home-dir /home/crawl \
       --shell /usr/sbin/nologin crawl \
    && mkdir /data \
    && chown crawl:crawl /data
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels "crawl[speed]" \
    && rm -rf /wheels
USER crawl
WORKDIR /data
VOLUME ["/data"]
ENTRYPOINT ["crawl"]
CMD ["--help"]
