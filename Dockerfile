# EvalStudio production image: gunicorn serves the app (whitenoise serves static files), the same image runs the
# Celery worker. See docker-compose.yml for the whole topology.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EVALSTUDIO_VAR_DIR=/app/var

WORKDIR /app

RUN groupadd --system --gid 10001 evalstudio \
    && useradd --system --uid 10001 --gid evalstudio --home-dir /app --no-create-home evalstudio

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# collectstatic imports the settings, which refuse to start without a SECRET_KEY when DEBUG is off: give it a
# build-only key that never reaches the running container. The throwaway DATABASE_URL and broker keep settings from
# creating the SQLite and filesystem-broker directories of the embedded mode inside the image.
# /app/var/media is where the media volume is mounted; a named volume copies the directory's owner on first use,
# so uploads written by the non-root user work without a chown at start-up.
RUN SECRET_KEY=collectstatic-build-only-not-a-secret \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    CELERY_BROKER_URL=memory:// \
    python manage.py collectstatic --no-input \
    && mkdir -p /app/var/media \
    && chown -R evalstudio:evalstudio /app/var

USER evalstudio

EXPOSE 8000
# Workers: gunicorn reads WEB_CONCURRENCY. Migrations run in the compose `web` command, not here, so a worker
# container started from the same image never races them.
CMD ["gunicorn", "evalstudio.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
