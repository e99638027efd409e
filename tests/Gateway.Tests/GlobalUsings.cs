global using Xunit;
global using Orleans;
global using ProxyOrleans.Abstractions;
