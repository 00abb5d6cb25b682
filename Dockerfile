# One image for the MLflow server and the vae-lab workers of docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
# Logs reach `docker compose logs` as they are written.
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# torch goes in first so pip never resolves another build by accident. TORCH_INDEX empty is PyPI,
# whose Linux torch is a CUDA build (what GPU workers need); a CPU wheel index gives a far smaller
# image for CPU-only workers. docker compose passes both from .env (see .env.example).
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=
RUN pip install --no-cache-dir "${TORCH_SPEC}" ${TORCH_INDEX:+--index-url "${TORCH_INDEX}"}
COPY pyproject.toml README.md ./
COPY vae_lab ./vae_lab
# psycopg2 for PostgreSQL: Optuna's storage in the workers, MLflow's store in the server; Ray for
# the compose `ray` profile and KubeRay (`--engine ray`, docs/ray.md).
RUN pip install --no-cache-dir ".[postgres,ray]"
COPY studies ./studies
ENTRYPOINT ["vae-lab"]
