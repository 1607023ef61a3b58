# The hub's Python side (worker, CLI) for docker-compose.redpanda.yml.
# Kafka and the schema registry come from Redpanda there, so no Java or Maven here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY agents ./agents
COPY schemas ./schemas
RUN pip install . \
    && useradd --create-home --uid 10001 hotelhub
USER hotelhub

# 6066: Faust web (metrics, table pages). 3400: the event hub gateway (to come).
EXPOSE 6066 3400
CMD ["hotelhub", "worker"]
