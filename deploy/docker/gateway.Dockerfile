# syntax=docker/dockerfile:1
# The gateway image (OpenAI-compatible HTTP API; an Orleans client, no TorchSharp). From the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t proxyorleans/gateway:0.1.0 .
# Tenants come from a mounted secret (ProxyOrleans__TenantsFile), never from the image.
ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION}-noble AS build
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/Abstractions/ProxyOrleans.Abstractions.csproj src/Abstractions/
COPY src/Gateway/ProxyOrleans.Gateway.csproj src/Gateway/
RUN dotnet restore src/Gateway/ProxyOrleans.Gateway.csproj
COPY src/ src/
RUN dotnet publish src/Gateway/ProxyOrleans.Gateway.csproj -c Release --no-restore --no-self-contained -o /app

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS runtime
WORKDIR /app
COPY --from=build /app ./
ENV ASPNETCORE_HTTP_PORTS=8080
EXPOSE 8080
# The aspnet image's "app" user; numeric so that Kubernetes can check runAsNonRoot.
USER 1654:1654
ENTRYPOINT ["dotnet", "ProxyOrleans.Gateway.dll"]
