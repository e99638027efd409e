using System.Text.Json;

namespace ProxyOrleans.Gateway.OpenAi;

/// <summary>
/// A request the gateway refuses, answered with OpenAI's error body
/// {"error":{"message","type","param","code"}}. Thrown anywhere in request handling; written by one middleware.
/// </summary>
public sealed class ApiError(int status, string message, string type, string? param = null, string? code = null,
    string? rejectionReason = null, TimeSpan? retryAfter = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    /// <summary>Label of the rejections metric (invalid_request, unauthorized, ...).</summary>
    public string RejectionReason { get; } = rejectionReason ?? code ?? type;
    public TimeSpan? RetryAfter { get; } = retryAfter;

    public static ApiError Invalid(string? param, string message, string code = "invalid_value") =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", param, code, "invalid_request");

    public static ApiError Unauthorized(string message) =>
        new(StatusCodes.Status401Unauthorized, message, "invalid_request_error", null, "invalid_api_key", "unauthorized");

    public static ApiError ModelNotAllowed(string param, string model) =>
        new(StatusCodes.Status403Forbidden,
            $"Your API key may not use the model '{model}'. Ask the operator to add it to your tenant's allowed models.",
            "permission_error", param, "model_not_allowed", "model_not_allowed");

    public static ApiError TooMany(string message, string code, TimeSpan retryAfter) =>
        new(StatusCodes.Status429TooManyRequests, message, "rate_limit_error", null, code, code, retryAfter);

    public static ApiError NotFound(string message, string? param = null, string code = "not_found") =>
        new(StatusCodes.Status404NotFound, message, "invalid_request_error", param, code, code);

    public static ApiError Unavailable(string message, string code = "service_unavailable") =>
        new(StatusCodes.Status503ServiceUnavailable, message, "server_error", null, code, code);

    public void WriteBody(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WritePropertyName("error");
        w.WriteStartObject();
        w.WriteString("message", Message);
        w.WriteString("type", Type);
        if (Param is null) w.WriteNull("param"); else w.WriteString("param", Param);
        if (Code is null) w.WriteNull("code"); else w.WriteString("code", Code);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    public async Task WriteAsync(HttpResponse response)
    {
        response.StatusCode = Status;
        response.ContentType = "application/json";
        // The unread rest of a too-large body makes the connection unusable: tell the client not to reuse it.
        if (Status == StatusCodes.Status413PayloadTooLarge) response.Headers.Connection = "close";
        if (RetryAfter is { } ra)
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(ra.TotalSeconds)).ToString();
        await using var w = new Utf8JsonWriter(response.Body, OpenAi.JsonOut.Options);
        WriteBody(w);
        await w.FlushAsync();
    }
}

/// <summary>JSON as OpenAI writes it: apostrophes and angle brackets left readable (API bodies are never HTML-embedded).</summary>
public static class JsonOut
{
    public static readonly JsonWriterOptions Options = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
