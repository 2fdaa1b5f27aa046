# The control-plane image: `navarch-worker` (workflows, cloud activities, notifier, metrics)
# and the `navarch` CLI. Build from the repository root:
#   docker build -t navarch:0.1.0 .
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY navarch ./navarch
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY agent ./agent
RUN pip install --no-compile '.[aws,gcp,lambda,ssh,kubernetes]' && rm -rf /src

RUN useradd --create-home --uid 10001 navarch
USER navarch
WORKDIR /home/navarch
EXPOSE 9400
# Real clouds only; `--fake-cloud` adds the fake cloud, to try it without cloud accounts.
ENTRYPOINT ["navarch-worker"]
