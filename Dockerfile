# TimeFusion from this repository. With AWS_S3_BUCKET set the tables live in the bucket; the
# volume at /var/lib/timefusion then holds only the write-ahead log and the read cache.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY timefusion ./timefusion
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/timefusion timefusion \
    && mkdir -p /var/lib/timefusion && chown timefusion /var/lib/timefusion

USER timefusion
ENV TIMEFUSION_DATA_DIR=/var/lib/timefusion \
    TIMEFUSION_PGWIRE_HOST=0.0.0.0
VOLUME ["/var/lib/timefusion"]
EXPOSE 5432 50051 4317 4318
CMD ["timefusion", "serve"]
