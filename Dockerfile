# syntax=docker/dockerfile:1
# The wallet service: granian serving the Django API as an unprivileged user, on 0.0.0.0:8000.
#   docker build -t wallet-service .        (`docker compose up --build` does it for you)
# Nothing secret is baked in: every setting comes from the environment at run time (see .env.example).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the pinned requirements, the code, the collected static files -------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python3 -m venv /opt/venv
COPY requirements.txt ./
# A build behind a TLS-inspecting proxy may pass its CA bundle as the secret "ca_bundle"
# (--secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt): mounted for this step only, never
# stored in a layer. Without it pip uses its own certificates.
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt
COPY . .
# The admin's static files are collected into the image (whitenoise serves them). Settings refuse
# to load without a secret key: this placeholder lives for this one command and is not kept.
RUN WALLET_SERVICE_SECRET_KEY=collectstatic-only-not-a-secret \
    /opt/venv/bin/python manage.py collectstatic --noinput --verbosity 0 \
    && /opt/venv/bin/python -m compileall -q /app

# --- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="wallet-service" \
      org.opencontainers.image.description="Wallet and payments HTTP API (Django REST Framework, granian)"
RUN groupadd --system --gid 10001 wallet \
    && useradd --system --uid 10001 --gid wallet --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin wallet
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
# HOST and PORT are the server's bind address (wallet_service/serve.py); workers come from
# WALLET_SERVICE_WORKERS. The code stays owned by root: the service cannot rewrite itself.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["python", "-m", "wallet_service.serve"]
