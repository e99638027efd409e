using System.Net;
using System.Net.Sockets;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// Ports for processes started on this machine (loopback clusters, test silos and gateways). Taken below the
/// kernel's ephemeral range (32768+ on Linux), where outgoing connections of any process can grab a port between
/// our check and the child's bind; checked free on 127.0.0.1 and on the any-address a host listens on; never handed
/// out twice by one process. The test projects reach it through tests/TestSupport, so that a test and the loopback
/// cluster it starts draw from the same set of ports given out.
/// </summary>
public static class LoopbackPorts
{
    private const int First = 20000, Last = 32000;
    private static readonly HashSet<int> Given = [];

    public static int Next()
    {
        lock (Given)
        {
            for (int attempt = 0; attempt < 1000; attempt++)
            {
                int port = Random.Shared.Next(First, Last);
                if (!Given.Contains(port) && Free(IPAddress.Loopback, port) && Free(IPAddress.IPv6Any, port))
                {
                    Given.Add(port);
                    return port;
                }
            }
        }
        throw new InvalidOperationException($"No free TCP port between {First} and {Last} after 1000 tries.");
    }

    private static bool Free(IPAddress address, int port)
    {
        try
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (address.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen();
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
        {
            return false;
        }
        catch (SocketException) when (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            return true; // no IPv6 on this machine: the IPv4 check decides
        }
    }
}
