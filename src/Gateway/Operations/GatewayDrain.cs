namespace ProxyOrleans.Gateway.Operations;

/// <summary>
/// The gateway's graceful stop (SIGTERM, Ctrl+C). The host calls <see cref="StoppingAsync"/> before it stops any
/// service, Kestrel included: from then on /readyz answers 503 (a load balancer that reads it stops sending) while the
/// gateway keeps accepting for <see cref="GatewayOptions.DrainDelaySeconds"/>; then Kestrel closes its listeners and
/// waits for the requests it has. Requests still running <see cref="GatewayOptions.DrainGraceSeconds"/> after that
/// are ended by <see cref="GraceOver"/> (streams with a last error event that says to retry), which cancels their
/// generations on the cluster and releases their quota leases. The Orleans client was registered before Kestrel,
/// so the host stops it only after Kestrel is done with every request.
/// </summary>
public sealed class GatewayDrain(GatewayOptions options, ILogger<GatewayDrain> log) : IHostedLifecycleService
{
    readonly CancellationTokenSource graceOver = new();
    volatile bool draining;

    /// <summary>True from SIGTERM on: /readyz says 503.</summary>
    public bool Draining => draining;

    /// <summary>Cancelled when the drain's grace period has ended: running requests stop and answer "retry".</summary>
    public CancellationToken GraceOver => graceOver.Token;

    /// <summary>
    /// The host's shutdown timeout this drain needs: the delay, the grace, and 10 s for the requests ended at the
    /// grace's end to release their leases and for the Orleans client to close.
    /// </summary>
    public static TimeSpan ShutdownTimeout(GatewayOptions o) => TimeSpan.FromSeconds(o.DrainDelaySeconds + o.DrainGraceSeconds + 10);

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        draining = true;
        graceOver.CancelAfter(TimeSpan.FromSeconds(options.DrainDelaySeconds + options.DrainGraceSeconds));
        log.LogInformation("Draining: /readyz answers 503; still accepting for {Delay} s, then running requests get {Grace} s to finish",
            options.DrainDelaySeconds, options.DrainGraceSeconds);
        if (options.DrainDelaySeconds > 0)
            try { await Task.Delay(TimeSpan.FromSeconds(options.DrainDelaySeconds), cancellationToken); }
            catch (OperationCanceledException) { }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
