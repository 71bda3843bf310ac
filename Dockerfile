# One image for the API, the worker and the migrate step.
# CPU by default; for GPUs build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
RUN pip install "torch>=2.3,<2.14" --index-url ${TORCH_INDEX}
COPY pyproject.toml README.md ./
COPY genq genq
COPY api api
COPY workers workers
COPY pipelines pipelines
COPY storage storage
COPY migrations migrations
RUN pip install .
RUN useradd --create-home genq
USER genq
CMD ["genq", "api", "--bind", "0.0.0.0:8000"]
