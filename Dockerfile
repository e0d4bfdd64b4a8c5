# Pilah REST service.
#
#   docker build -t pilah .
#   docker run -p 8000:8000 pilah                       # docs: http://127.0.0.1:8000/docs
#   docker run -p 8000:8000 -v pilah-data:/data pilah    # keep the comment store
#   docker run -p 8000:8000 -v /srv/pilah-models:/app/models pilah   # other models
#   docker run ... -e PILAH_DATABASE_URL=postgresql+psycopg://pilah:pw@db/pilah pilah
#
# The default model is trained while building (from datasets/) and baked into /app/models;
# mount a folder of model versions there to serve others (writable, for promote/rollback).
# The comment store is SQLite in the /data volume unless PILAH_DATABASE_URL names
# PostgreSQL. Settings come from PILAH_* variables (e.g. -e PILAH_AUTH_ENABLED=true
# -e PILAH_API_KEYS='[...]').

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PILAH_MODELS_DIR=/app/models \
    PILAH_DATABASE_URL=sqlite:////data/pilah.db
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
# Runtime dependencies only (no [dev] or [train] extras), then drop the sources: the
# package runs from site-packages.
RUN pip install . && rm -rf /app/service /app/training /app/build /app/*.egg-info

FROM runtime AS model
COPY datasets ./datasets
RUN set -eu; \
    args=""; \
    for path in $(find datasets -name '*.csv' | sort); do args="$args --data $path"; done; \
    pilah train $args --output /app/models

FROM runtime
COPY --from=model /app/models /app/models
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pilah \
    && mkdir -p /data && chown pilah /data /app/models
VOLUME ["/data"]
USER pilah
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]
CMD ["pilah", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-train-if-missing"]
