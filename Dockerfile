# astapp as a Hugging Face Docker Space (or any Docker host).
#
#   docker build -t astapp .                       # CPU image (PyTorch CPU wheels, no CUDA download)
#   docker run -p 7860:7860 -v astapp-data:/data astapp
#
# GPU image: any CUDA runtime base with Python 3.11 as `python`/`pip` and `useradd` (for example a
# pytorch/pytorch:<version>-cuda<X.Y>-cudnn<N>-runtime tag), and PyPI's default torch wheels, which
# bundle CUDA:
#   docker build -t astapp-gpu --build-arg BASE_IMAGE=<cuda image> \
#     --build-arg TORCH_INDEX=https://pypi.org/simple .
#   docker run --gpus all -p 7860:7860 -v astapp-data:/data astapp-gpu
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Extra index for torch: the CPU wheel index keeps the default image free of GBs of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

# libsndfile ships inside the soundfile wheel; nothing else from apt is needed at run time.
# Spaces run the container as uid 1000; /data is where their persistent storage is mounted.
RUN useradd --create-home --uid 1000 user \
    && mkdir -p /data/astapp \
    && chown -R user:user /data

USER 1000:1000
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    ASTAPP_DATA_DIR=/data/astapp
WORKDIR $HOME/app

COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user --extra-index-url "${TORCH_INDEX}" -r requirements.txt

COPY --chown=user . .

EXPOSE 7860
CMD ["python", "app.py"]
