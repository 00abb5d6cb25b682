# One image for the MLflow server and the vae-lab workers (CPU torch; see the Makefile for GPUs).
FROM python:3.11-slim
WORKDIR /app
# Set TORCH_INDEX to PyTorch's CPU (or CUDA) wheel index: PyPI's Linux torch is a CUDA build.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=
RUN pip install --no-cache-dir "${TORCH_SPEC}" ${TORCH_INDEX:+--index-url "${TORCH_INDEX}"}
COPY pyproject.toml README.md ./
COPY vae_lab ./vae_lab
RUN pip install --no-cache-dir ".[postgres]"
COPY studies ./studies
ENTRYPOINT ["vae-lab"]
