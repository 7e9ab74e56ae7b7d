# syntax=docker/dockerfile:1
# deploy/docker/koreo-agent.Dockerfile: the container image of koreo-agent: one per cluster (issue 5).
# Two stages on Debian bookworm-slim: "build" installs the -dev packages and
# builds a CMake Release; "runtime" has only the shared libraries the binary
# links and runs it as an unprivileged user (uid 65532).  Build from the
# repository root:
#   docker build -f deploy/docker/koreo-agent.Dockerfile -t koreo-agent:0.1.0 .

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libcjson-dev libyaml-dev libpcre2-dev libcurl4-openssl-dev \
      libevent-dev libssl-dev protobuf-c-compiler libprotobuf-c-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DKOREO_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target koreo-agent \
 && mkdir -p /out \
 && for t in koreo-agent; do \
      f=$(find /build -type f -name "$t" -perm -u+x | head -n 1); \
      test -n "$f" || { echo "$t was not built" >&2; exit 1; }; \
      install -m 0755 -s "$f" /out/$t; \
    done

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libcjson1 libyaml-0-2 libpcre2-8-0 \
      libevent-2.1-7 libevent-openssl-2.1-7 libssl3 libprotobuf-c1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 koreo \
 && useradd --system --uid 65532 --gid koreo --no-create-home \
      --home-dir /var/lib/koreo-agent --shell /usr/sbin/nologin koreo \
 && install -d -o koreo -g koreo -m 0700 /var/lib/koreo-agent
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
WORKDIR /var/lib/koreo-agent
ENTRYPOINT ["/usr/local/bin/koreo-agent"]
