# zapjobs-sse: the live dashboard server, configured by ZAPJOBS_* environment variables
# (every setting: docs/CONFIGURATION.md; deployment: docs/DEPLOYING.md).
#
#   docker build -t zapjobs-sse .
#   docker run -p 8080:8080 -e ZAPJOBS_HOST=0.0.0.0 -e ZAPJOBS_DSN=postgresql://... \
#       -e ZAPJOBS_AUTH=token -e ZAPJOBS_TOKENS_FILE=/run/secrets/zapjobs-tokens ... zapjobs-sse
#
# The image listens on 127.0.0.1 unless told otherwise: a non-loopback address needs an
# authentication mode (ZAPJOBS_AUTH=token or proxy).

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY zapjobs_sse/ zapjobs_sse/
COPY migrations/ migrations/
COPY web/ web/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ZAPJOBS_PORT=8080 \
    ZAPJOBS_LOG_FORMAT=json
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/zapjobs \
        --shell /usr/sbin/nologin zapjobs
# The wheels are mounted, not copied: they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl
USER 10001:10001
WORKDIR /home/zapjobs
EXPOSE 8080
# /health needs no database and no credentials; the port and prefix follow the settings.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = os.environ.get('ZAPJOBS_BASE_PATH', '/zapjobs').strip('/'); urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ZAPJOBS_PORT', '8080') + ('/' + p if p else '') + '/health', timeout=2)"]
ENTRYPOINT ["zapjobs-sse"]
CMD ["serve"]
