# syntax=docker/dockerfile:1
# The silo image. Build from the repository root:
#   docker build -f deploy/docker/silo.Dockerfile -t proxyorleans/silo:0.1.0 .                          # CPU (default)
#   docker build -f deploy/docker/silo.Dockerfile --target gpu -t proxyorleans/silo:0.1.0-cuda .       # CUDA
#   docker build -f deploy/docker/silo.Dockerfile --target demo -t proxyorleans/silo:0.1.0-demo .      # CPU + demo models
# Weights are not in the image (except the demo target): mount them at /models (one directory per model).
ARG DOTNET_VERSION=10.0
# CUDA 12.8 matches the libtorch-cuda-12.8 package the Inference project takes with -p:TorchBackend=cuda.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# Project files first: the restore (libtorch is hundreds of MB, the CUDA one several GB) stays cached
# until a project file changes.
FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION}-noble AS projects
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/Abstractions/ProxyOrleans.Abstractions.csproj src/Abstractions/
COPY src/Inference/ProxyOrleans.Inference.csproj src/Inference/
COPY src/Grains/ProxyOrleans.Grains.csproj src/Grains/
COPY src/Gateway/ProxyOrleans.Gateway.csproj src/Gateway/
COPY src/Silo/ProxyOrleans.Silo.csproj src/Silo/

FROM projects AS build-cpu
RUN dotnet restore src/Silo/ProxyOrleans.Silo.csproj -p:TorchBackend=cpu
COPY src/ src/
RUN dotnet publish src/Silo/ProxyOrleans.Silo.csproj -c Release -p:TorchBackend=cpu --no-restore --no-self-contained -o /app

# The CUDA build of TorchSharp brings libtorch with its CUDA libraries (several GB); the node only needs the driver.
FROM projects AS build-cuda
RUN dotnet restore src/Silo/ProxyOrleans.Silo.csproj -p:TorchBackend=cuda
COPY src/ src/
RUN dotnet publish src/Silo/ProxyOrleans.Silo.csproj -c Release -p:TorchBackend=cuda --no-restore --no-self-contained -o /app

# Ubuntu 24.04's libstdc++ has GLIBCXX_3.4.32, so TorchSharp loads as shipped (TorchRuntime patches nothing).
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS runtime-cpu
WORKDIR /app
COPY --from=build-cpu /app ./
ENV ProxyOrleans__HttpPort=8080 \
    ProxyOrleans__Demo=false \
    DOTNET_GCLOHThreshold=0x200000
EXPOSE 8080 11111 30000
# The aspnet image's "app" user; numeric so that Kubernetes can check runAsNonRoot.
USER 1654:1654
ENTRYPOINT ["dotnet", "ProxyOrleans.Silo.dll"]

# CPU image with the bundled demo models baked in at /models/<name> (the paths the cpu-demo overlay uses).
FROM runtime-cpu AS demo
COPY --chown=1654:1654 models/demo/ /models/

# GPU variant: the CUDA runtime image plus the .NET runtime copied from the official image.
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS dotnet-runtime
FROM ${CUDA_IMAGE} AS gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libicu74 tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1654 app && useradd --uid 1654 --gid 1654 --no-create-home --shell /usr/sbin/nologin app
COPY --from=dotnet-runtime /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
WORKDIR /app
COPY --from=build-cuda /app ./
ENV ProxyOrleans__HttpPort=8080 \
    ProxyOrleans__Demo=false \
    ProxyOrleans__Device=cuda \
    DOTNET_GCLOHThreshold=0x200000 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
EXPOSE 8080 11111 30000
USER 1654:1654
ENTRYPOINT ["dotnet", "ProxyOrleans.Silo.dll"]

# Default target (last stage): the CPU image.
FROM runtime-cpu AS runtime
