# onepass as a SageMaker training and inference image:
#   docker build -t onepass .                      (CPU; add --build-arg EXTRAS=serve,torch for NTM)
#   docker run -v $PWD/ml:/opt/ml onepass train    (onepass sagemaker train: /opt/ml/input -> /opt/ml/model)
#   docker run -p 8080:8080 -v $PWD/ml:/opt/ml onepass serve
# The algorithm is the image's (ONEPASS_ALGORITHM, e.g. --build-arg ALGORITHM=kmeans) or the
# job's hyperparameter onepass_algorithm. SageMaker runs the image with "train" or "serve".
FROM python:3.11-slim

ARG EXTRAS=serve
ARG ALGORITHM=""
ENV ONEPASS_ALGORITHM=${ALGORITHM} \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/onepass
COPY pyproject.toml README.md ./
COPY onepass ./onepass
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[${EXTRAS}]"

EXPOSE 8080
ENTRYPOINT ["onepass", "sagemaker"]
CMD ["serve"]
