global using ProxyOrleans.Abstractions;
