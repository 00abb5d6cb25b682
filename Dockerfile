# One image for the MLflow server and the vae-lab workers (CPU torch; see the Makefile for GPUs).
FROM python:3.11-slim
WORKDIR /app
ARG TORCH_SPEC=torch==2.13.0
RUN pip install --no-cache-dir "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY vae_lab ./vae_lab
RUN pip install --no-cache-dir ".[postgres]"
COPY studies ./studies
ENTRYPOINT ["vae-lab"]
