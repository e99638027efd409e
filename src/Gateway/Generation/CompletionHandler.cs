using System.Buffers;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using ProxyOrleans.Gateway.OpenAi;
using ProxyOrleans.Gateway.Operations;
using ProxyOrleans.Gateway.Tenants;

namespace ProxyOrleans.Gateway.Generation;

/// <summary>
/// POST /v1/completions and /v1/chat/completions: validate, authorize the model, admit against the tenant's
/// quotas, run the generations (n per prompt, concurrently) on the cluster and answer as JSON or SSE.
/// </summary>
public sealed class CompletionHandler(
    GatewayOptions options, ModelCatalog catalog, IGenerationBackend backend, QuotaLimiter quotas,
    RequestRegistry registry, ClusterRequests clusterRequests, GatewayMetrics metrics, GatewayDrain drain, TimeProvider time, ILogger<CompletionHandler> log)
{
    static readonly byte[] DataPrefix = "data: "u8.ToArray(), EventEnd = "\n\n"u8.ToArray(), Done = "data: [DONE]\n\n"u8.ToArray();

    public async Task HandleAsync(HttpContext ctx, ApiEndpoint endpoint)
    {
        var tenant = TenantAuth.Current(ctx);
        var started = time.GetTimestamp();
        using var span = Tracing.Source.StartActivity("gateway " + (endpoint == ApiEndpoint.ChatCompletions ? "chat.completions" : "completions"));
        var body = await ReadBodyAsync(ctx);
        using var doc = RequestParser.ParseJson(body);
        await catalog.RefreshAsync(ctx.RequestAborted);
        if (catalog.Error is { } down)
            throw ApiError.Unavailable($"The model cluster cannot be reached right now ({down}); retry shortly.", "cluster_unavailable");
        var req = LogprobOptions.Apply(doc.RootElement,
            ProxyAnalysis.Apply(doc.RootElement, new RequestParser(options, catalog.Resolve).Parse(doc.RootElement, endpoint)));
        bool analysisAsked = doc.RootElement.TryGetProperty(ProxyAnalysis.Field, out var asked) && asked.ValueKind != JsonValueKind.Null;

        if (catalog.Combinations.ContainsKey(req.Model) || catalog.Hosted.Contains(req.Model)) ctx.Items["proxyorleans.model"] = req.Model;
        span?.SetTag(Tracing.ModelTag, req.Model).SetTag("proxyorleans.tenant", tenant.Name);
        if (!tenant.Allows(req.Model)) throw ApiError.ModelNotAllowed("model", req.Model);
        if (req.OverrideModels.FirstOrDefault(m => !tenant.Allows(m)) is { } denied) throw ApiError.ModelNotAllowed("proxy", denied);
        // A tenant allowed a combination but not its base must not get the base alone by switching the steering off.
        if (!tenant.Allows(req.Combination.Base) && RunsTheBaseAlone(req.Combination))
            throw new ApiError(StatusCodes.Status403Forbidden,
                $"Your API key may use '{req.Combination.Base}' only steered by '{req.Model}': alpha 0, no experts or all weights 0 would run it alone. " +
                "Send a non-zero alpha, or ask the operator to allow the base model itself.", "permission_error", "alpha", "model_not_allowed", "model_not_allowed");
        if (req.Combination.Models.FirstOrDefault(m => !catalog.Hosted.Contains(m)) is { } missing)
            throw ApiError.Unavailable($"The model '{missing}' needed by '{req.Model}' is not hosted by any silo right now; retry later.", "model_not_hosted");

        var lease = await quotas.AdmitAsync(tenant, req.GenerationCount, req.MaxTokens, PromptTokenEstimate(req));
        using var leaseAlive = new CancellationTokenSource();
        var keepAlive = quotas.KeepAliveAsync(tenant, lease, leaseAlive.Token);
        var id = (endpoint == ApiEndpoint.ChatCompletions ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, drain.GraceOver);
        registry.Add(new RequestRegistry.Entry(tenant.Name, id, req.Model, time.GetUtcNow(), req.GenerationCount, cancel));
        ctx.Response.Headers["x-request-id"] = id;
        span?.SetTag("proxyorleans.request_id", id);
        using var scope = log.BeginScope(new Dictionary<string, object> { ["RequestId"] = id, ["Tenant"] = tenant.Name, ["Model"] = req.Model });
        log.LogInformation("Request {RequestId} admitted: {Generations} generation(s), max_tokens {MaxTokens}, stream {Stream}",
            id, req.GenerationCount, req.MaxTokens, req.Stream);
        var modelTag = new KeyValuePair<string, object?>("model", req.Model);
        var jobs = BuildGenerations(req, tenant.Name, id);
        // Cluster-wide, so that GET/DELETE /v1/requests work on every gateway replica.
        var registered = clusterRequests.KeepRegisteredAsync(
            clusterRequests.Describe(tenant.Name, id, req.Model, req.Combination.Base, created, jobs.Select(j => j.Id)), leaseAlive.Token);
        var promptTokens = new int[jobs.Count];
        var completionTokens = new int[jobs.Count];
        try
        {
            var texts = jobs.Select(_ => new System.Text.StringBuilder()).ToArray();
            var scores = jobs.Select(_ => new ChoiceLogprobs(req)).ToArray();
            var finish = new string?[jobs.Count];
            var lastAt = new long[jobs.Count];
            var firstTextSeen = false;
            var streamStarted = false;
            var echoTexts = new string?[jobs.Count];
            // The echoed text of a token-id prompt is its ids decoded by the base (special tokens kept, as /detokenize),
            // asked once the cluster has accepted the ids, so that a bad id is reported as the prompt's.
            async ValueTask<string> EchoText(int i) => echoTexts[i] ??= jobs[i].Request.PromptTokenIds is { } ids
                ? await backend.DetokenizeAsync(req.Combination.Base, ids, cancel.Token)
                : jobs[i].Request.Prompt ?? "";

            await foreach (var (index, update) in RunAll(jobs, modelTag, cancel.Token))
            {
                if (update is TextDelta d)
                {
                    var now = time.GetTimestamp();
                    if (!firstTextSeen) { firstTextSeen = true; metrics.TimeToFirstToken.Record(time.GetElapsedTime(started, now).TotalSeconds, modelTag); }
                    else if (lastAt[index] != 0 && d.Tokens > 0)
                        metrics.StepLatency.Record(time.GetElapsedTime(lastAt[index], now).TotalSeconds / d.Tokens, modelTag);
                    lastAt[index] = now;
                    completionTokens[index] += d.Tokens;
                    var choice = scores[index];
                    choice.Add(d);
                    if (req.Stream)
                    {
                        if (!streamStarted) { streamStarted = true; await StartStreamAsync(ctx, req, id, created, jobs.Count); }
                        if (req.Echo && !choice.Echoed)
                        {
                            // The prompt goes first, as its own chunk (with its scores when asked for).
                            choice.Echoed = true;
                            var promptLogprobs = choice.PromptChunk();
                            var promptText = await EchoText(index);
                            await WriteEventAsync(ctx, w => ResponseWriter.Chunk(w, endpoint, id, created, req.Model, index, promptText, null,
                                logprobs: promptLogprobs), cancel.Token);
                        }
                        var logprobs = choice.TokenChunk(d);
                        var models = choice.ModelsChunk(d);
                        var analysis = analysisAsked ? d.Analysis : null;
                        Action<Utf8JsonWriter>? extra = analysis is null && models is null ? null : x =>
                        {
                            if (analysis is not null) ProxyAnalysis.Write(x, analysis, req.Combination);
                            models?.Invoke(x);
                        };
                        if (extra is not null || logprobs is not null || d.Text.Length > 0)
                            await WriteEventAsync(ctx, w => ResponseWriter.Chunk(w, endpoint, id, created, req.Model, index, d.Text, null,
                                extra: extra, logprobs: logprobs), cancel.Token);
                    }
                    else texts[index].Append(d.Text);
                }
                else if (update is Finished f)
                {
                    finish[index] = f.FinishReason;
                    if (f.StepMs is { } stepMs) metrics.ClusterStepLatency.Record(stepMs / 1000, modelTag);
                    if (f.ModelMs is { } modelMs) metrics.ModelComputeLatency.Record(modelMs / 1000, modelTag);
                    promptTokens[index] = f.PromptTokens;
                    completionTokens[index] = f.CompletionTokens;
                    if (req.Stream)
                    {
                        if (!streamStarted) { streamStarted = true; await StartStreamAsync(ctx, req, id, created, jobs.Count); }
                        await WriteEventAsync(ctx, w => ResponseWriter.Chunk(w, endpoint, id, created, req.Model, index, null, f.FinishReason), cancel.Token);
                    }
                }
            }

            // Usage counts each prompt once (its n choices share it), as OpenAI does.
            var prompt = Enumerable.Range(0, jobs.Count).Where(i => i % req.N == 0).Sum(i => promptTokens[i]);
            var completion = completionTokens.Sum();
            metrics.Tokens(req.Model, tenant.Name, prompt, completion);

            if (req.Stream)
            {
                if (!streamStarted) await StartStreamAsync(ctx, req, id, created, jobs.Count);
                if (req.IncludeUsage)
                    await WriteEventAsync(ctx, w => ResponseWriter.UsageChunk(w, endpoint, id, created, req.Model, prompt, completion), cancel.Token);
                await ctx.Response.Body.WriteAsync(Done, cancel.Token);
                await ctx.Response.Body.FlushAsync(cancel.Token);
            }
            else
            {
                List<ResponseWriter.Choice> choices = [];
                for (var i = 0; i < jobs.Count; i++)
                    choices.Add(new ResponseWriter.Choice(i, (req.Echo ? await EchoText(i) : "") + texts[i], finish[i] ?? "stop",
                        scores[i].Whole(), scores[i].WholeModels()));
                ctx.Response.ContentType = "application/json";
                await using var w = new Utf8JsonWriter(ctx.Response.Body, OpenAi.JsonOut.Options);
                ResponseWriter.Completion(w, endpoint, id, created, req.Model, choices, prompt, completion);
                await w.FlushAsync(cancel.Token);
            }
            log.LogInformation("Request {RequestId} done: {PromptTokens} prompt + {CompletionTokens} completion tokens, finish {Finish}, {Seconds:F3} s",
                id, prompt, completion, string.Join(",", finish), time.GetElapsedTime(started).TotalSeconds);
        }
        catch (OperationCanceledException) when (drain.GraceOver.IsCancellationRequested && !ctx.RequestAborted.IsCancellationRequested)
        {
            // This replica is stopping and the request outlived the drain's grace period: the client retries elsewhere.
            var error = new ApiError(StatusCodes.Status503ServiceUnavailable,
                $"This gateway replica is shutting down and the request did not finish within its drain grace period ({options.DrainGraceSeconds:0.#} s); " +
                "retry the request (another replica takes it).", "server_error", null, "gateway_draining", "gateway_draining", TimeSpan.FromSeconds(1));
            log.LogWarning("Request {RequestId} ended by the drain's grace period; generations stopped on the cluster", id);
            if (!ctx.Response.HasStarted) throw error; // answered (and counted) by the error middleware
            metrics.Reject(error.RejectionReason);
            await WriteEventAsync(ctx, error.WriteBody, CancellationToken.None);
        }
        catch (OperationCanceledException e) when (cancel.IsCancellationRequested || e is ClusterCancelledException)
        {
            var why = ctx.RequestAborted.IsCancellationRequested ? "client disconnected"
                : cancel.IsCancellationRequested ? "cancelled through DELETE /v1/requests" : "cancelled on the cluster (DELETE /v1/requests on another replica)";
            log.LogInformation("Request {RequestId} cancelled: {Reason}; generations stopped on the cluster", id, why);
            metrics.Reject(ctx.RequestAborted.IsCancellationRequested ? "client_disconnected" : "cancelled");
            if (!ctx.Response.HasStarted && !ctx.RequestAborted.IsCancellationRequested)
                throw new ApiError(499, "The request was cancelled.", "invalid_request_error", null, "request_cancelled", "cancelled");
        }
        catch (ApiError e) when (ctx.Response.HasStarted)
        {
            // Headers are gone: report the error as a last SSE event, as OpenAI does mid-stream.
            metrics.Reject(e.RejectionReason);
            log.LogWarning("Request {RequestId} failed mid-stream: {Message}", id, e.Message);
            await WriteEventAsync(ctx, e.WriteBody, CancellationToken.None);
        }
        finally
        {
            registry.Remove(tenant.Name, id);
            leaseAlive.Cancel();
            await Task.WhenAll(keepAlive, registered);
            // Charged for what was produced, also when cancelled or failed half-way; each prompt once, as usage reports it.
            var charged = Enumerable.Range(0, jobs.Count).Where(i => i % req.N == 0).Sum(i => promptTokens[i]) + completionTokens.Sum();
            await quotas.ReleaseAsync(tenant, lease, charged);
            metrics.RequestDuration.Record(time.GetElapsedTime(started).TotalSeconds,
                new KeyValuePair<string, object?>("endpoint", endpoint.ToString()), modelTag);
        }
    }

    /// <summary>
    /// Prompt tokens reserved at admission, before any model tokenized the prompt: a quarter of its characters (about
    /// what English text gives with BPE vocabularies); the settlement at the end charges the real count.
    /// </summary>
    static int PromptTokenEstimate(ParsedRequest req)
    {
        long chars = req.Endpoint == ApiEndpoint.Completions
            ? req.Prompts.Sum(p => p.TokenIds is { } ids ? ids.Length * 4L : p.Length) // ids are tokens already: 4 "characters" each
            : (req.Generation.Messages ?? []).Sum(m => (long)m.Content.Length);
        return (int)Math.Min(int.MaxValue, (chars + 3) / 4);
    }

    static bool RunsTheBaseAlone(CombinationSpec c) => c.Alpha == 0 || c.Experts.All(e => e.Weight == 0);

    /// <summary>Each generation's cluster-wide id ("&lt;tenant&gt;:&lt;request id&gt;:&lt;index&gt;": the prefix keeps tenants' ids apart) and request.</summary>
    static List<(string Id, GenerationRequest Request)> BuildGenerations(ParsedRequest req, string tenant, string id) =>
        [.. req.Generations(tenant).Select((g, i) => ($"{tenant}:{id}:{i}", g))];

    /// <summary>Runs every generation at once and merges their updates; the first failure cancels the others.</summary>
    async IAsyncEnumerable<(int, GenerationUpdate)> RunAll(List<(string Id, GenerationRequest Request)> jobs, KeyValuePair<string, object?> modelTag,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (jobs.Count == 1)
        {
            metrics.ActiveGenerations.Add(1, modelTag);
            try
            {
                await foreach (var u in backend.RunAsync(jobs[0].Id, jobs[0].Request, ct).WithCancellation(ct)) yield return (0, u);
            }
            finally { metrics.ActiveGenerations.Add(-1, modelTag); }
            yield break;
        }
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var channel = Channel.CreateUnbounded<(int, GenerationUpdate)>(new UnboundedChannelOptions { SingleReader = true });
        var tasks = jobs.Select(async (job, i) =>
        {
            metrics.ActiveGenerations.Add(1, modelTag);
            try
            {
                await foreach (var u in backend.RunAsync(job.Id, job.Request, linked.Token).WithCancellation(linked.Token))
                    await channel.Writer.WriteAsync((i, u), linked.Token);
            }
            catch { linked.Cancel(); throw; }
            finally { metrics.ActiveGenerations.Add(-1, modelTag); }
        }).ToArray();
        var all = Task.WhenAll(tasks).ContinueWith(t => channel.Writer.TryComplete(t.Exception?.InnerExceptions.FirstOrDefault(e => e is not OperationCanceledException)
                ?? t.Exception?.InnerExceptions.FirstOrDefault(e => e is ClusterCancelledException) ?? t.Exception?.InnerException),
            TaskScheduler.Default);
        try
        {
            await foreach (var item in channel.Reader.ReadAllAsync(CancellationToken.None)) yield return item;
        }
        finally
        {
            linked.Cancel();
            await all;
        }
    }

    async Task StartStreamAsync(HttpContext ctx, ParsedRequest req, string id, long created, int choices)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        await ctx.Response.StartAsync(ctx.RequestAborted);
        if (req.Endpoint == ApiEndpoint.ChatCompletions)
            for (var i = 0; i < choices; i++)
                await WriteEventAsync(ctx, w => ResponseWriter.Chunk(w, req.Endpoint, id, created, req.Model, i, "", null, role: true), ctx.RequestAborted);
    }

    static async Task WriteEventAsync(HttpContext ctx, Action<Utf8JsonWriter> write, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write(DataPrefix);
        using (var w = new Utf8JsonWriter(buffer, OpenAi.JsonOut.Options)) write(w);
        buffer.Write(EventEnd);
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpContext ctx) => ReadBodyAsync(ctx, options);

    /// <summary>The request body, refused with a 413 past MaxRequestBodyBytes (also for /tokenize and /detokenize).</summary>
    internal static async Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpContext ctx, GatewayOptions options)
    {
        if (ctx.Request.ContentLength > options.MaxRequestBodyBytes) throw TooLarge(options);
        using var ms = new MemoryStream();
        var buf = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int n;
            while ((n = await ctx.Request.Body.ReadAsync(buf, ctx.RequestAborted)) > 0)
            {
                if (ms.Length + n > options.MaxRequestBodyBytes) throw TooLarge(options);
                ms.Write(buf, 0, n);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
        return ms.GetBuffer().AsMemory(0, (int)ms.Length);
    }

    static ApiError TooLarge(GatewayOptions options) => new(StatusCodes.Status413PayloadTooLarge,
        $"The request body is larger than {options.MaxRequestBodyBytes} bytes.", "invalid_request_error", null, "request_too_large", "invalid_request");
}
