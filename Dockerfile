# The stratmon collector. Build: docker build -t stratmon . ; run with docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md stratmon.example.yaml ./
COPY collector ./collector
# shipped in the package as collector/data/ (pyproject.toml); /app/rules is also what docker/collector.yaml reads
COPY rules ./rules
COPY examples/maps ./examples/maps
# .[bus]: nats-py, for the scale profile's router, workers and aggregator (docker-compose.yml)
RUN pip install .[bus] && useradd --system --uid 10001 --home-dir /var/lib/stratmon --create-home stratmon \
    && install -d -o stratmon -g stratmon /var/lib/stratmon/grafana-alerting /var/lib/stratmon/.stratmon  # a volume inherits this owner
COPY docker/collector.yaml /etc/stratmon/stratmon.yaml

USER stratmon
WORKDIR /var/lib/stratmon
ENV STRATMON_CONFIG=/etc/stratmon/stratmon.yaml
EXPOSE 8470
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8470/healthz', timeout=2).status != 200)"
ENTRYPOINT ["stratmon"]
CMD ["run", "--log-format", "json"]
