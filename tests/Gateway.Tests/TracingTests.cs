using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Xunit.Abstractions;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>One proxy-tuned request is one trace: the gateway's span, the coordinator's grain calls and every model's prefill and steps.</summary>
[Collection(GatewayCollection.Name)]
public sealed class TracingTests(GatewayFixture fx, ITestOutputHelper output)
{
    [Fact]
    public async Task A_proxy_tuned_request_is_one_trace_from_the_gateway_through_the_coordinator_to_every_model()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => Tracing.AllSources.Contains(s.Name),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        var body = $$"""{"model": "{{fx.Combination}}", "prompt": "The capital of", "max_tokens": 4, "temperature": 0}""";
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", body, GatewayFixture.AliceKey));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-request-id").Single();
        await Task.Delay(500); // server spans stop after the response is written

        var gateway = spans.Single(a => a.Source.Name == Tracing.SourceName && (string?)a.GetTagItem("proxyorleans.request_id") == requestId);
        var trace = spans.Where(a => a.TraceId == gateway.TraceId).ToList();
        foreach (var a in trace.OrderBy(a => a.StartTimeUtc))
            output.WriteLine($"{a.Source.Name,-32} {a.DisplayName,-60} {a.Kind,-8} {string.Join(' ', a.TagObjects.Where(t => t.Key.StartsWith("proxyorleans") || t.Key == "orleans.rpc.target_id").Select(t => $"{t.Key}={t.Value}"))}");

        Assert.Contains(trace, a => a.Source.Name == "Microsoft.AspNetCore" && a.Kind == ActivityKind.Server); // the HTTP request itself
        // The coordinator: the grain calls into the generation grain, served on a silo.
        Assert.Contains(trace, a => a.Source.Name.StartsWith("Microsoft.Orleans") && a.Kind == ActivityKind.Server
                                    && a.GetTagItem("orleans.rpc.target_id") is string target && target.StartsWith("generation/" + fx.BaseModel + "/alice:" + requestId));
        // Every model: its prefill and each step (the expert and anti-expert may be served together, as a pair).
        var modelSpans = trace.Where(a => a.Source.Name == Tracing.SourceName && a.GetTagItem(Tracing.ModelTag) is string).ToList();
        foreach (var model in new[] { fx.BaseModel, fx.ExpertModel, fx.AntiExpertModel })
        {
            var mine = modelSpans.Where(a => ((string)a.GetTagItem(Tracing.ModelTag)!).Split(',').Contains(model)).ToList();
            Assert.True(mine.Count(a => a.DisplayName == "model prefill") == 1, $"{model}: no prefill span in the trace");
            Assert.True(mine.Count(a => a.DisplayName == "model step") >= 3, $"{model}: {mine.Count(a => a.DisplayName == "model step")} step spans in the trace");
        }
    }
}
