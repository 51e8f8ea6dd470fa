using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SecureFed.Aggregator.Operations;

/// <summary>What the console shows of one round attempt (kept in memory by <see cref="AggregatorTelemetry"/>).</summary>
internal sealed class ConsoleRound(long round, DateTimeOffset startedUtc, long baseModelVersion)
{
    public long Round { get; } = round;

    public DateTimeOffset StartedUtc { get; } = startedUtc;

    public long BaseModelVersion { get; } = baseModelVersion;

    public DateTimeOffset? EndedUtc { get; set; }

    public RoundOutcomeKind Outcome { get; set; } = RoundOutcomeKind.Running;

    public string? AbortReason { get; set; }

    public string? AbortStage { get; set; }

    public int Survivors { get; set; }

    public long? ModelVersionAfter { get; set; }

    /// <summary>Protobuf bytes received from sites while this attempt was open.</summary>
    public long BytesReceived { get; set; }

    /// <summary>Federation-level F1 from federated evaluation, when it reported one (<see cref="AggregatorTelemetry.ReportFederationF1"/>).</summary>
    public double? FederationF1 { get; set; }

    /// <summary>
    /// Whether the record was rebuilt from the store at a restart (<see cref="AggregatorTelemetry.RoundRecovered"/>): the
    /// aggregator stopped after the round's completion was committed and before it kept this record, so the bytes received
    /// while the round was open are not known.
    /// </summary>
    public bool Recovered { get; set; }

    /// <summary>Each cohort member's state, by site.</summary>
    public Dictionary<string, ConsoleSite> Sites { get; private init; } = new(StringComparer.Ordinal);

    public List<string> ClosedStages { get; private init; } = [];

    public ConsoleRound Copy() => new(Round, StartedUtc, BaseModelVersion)
    {
        EndedUtc = EndedUtc,
        Outcome = Outcome,
        AbortReason = AbortReason,
        AbortStage = AbortStage,
        Survivors = Survivors,
        ModelVersionAfter = ModelVersionAfter,
        BytesReceived = BytesReceived,
        FederationF1 = FederationF1,
        Recovered = Recovered,
        Sites = new Dictionary<string, ConsoleSite>(Sites, StringComparer.Ordinal),
        ClosedStages = [.. ClosedStages],
    };

    /// <summary>The record as JSON (what the store keeps so the console's history survives a restart).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("round", Round);
            json.WriteString("started_utc", StartedUtc.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            json.WriteNumber("base_model_version", BaseModelVersion);
            if (EndedUtc is { } ended)
            {
                json.WriteString("ended_utc", ended.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            }

            json.WriteString("outcome", Outcome.ToString());
            if (AbortReason is not null)
            {
                json.WriteString("abort_reason", AbortReason);
            }

            if (AbortStage is not null)
            {
                json.WriteString("abort_stage", AbortStage);
            }

            json.WriteNumber("survivors", Survivors);
            if (ModelVersionAfter is long version)
            {
                json.WriteNumber("model_version_after", version);
            }

            json.WriteNumber("bytes_received", BytesReceived);
            if (FederationF1 is double f1)
            {
                json.WriteNumber("federation_f1", f1);
            }

            if (Recovered)
            {
                json.WriteBoolean("recovered", true);
            }

            json.WriteStartObject("sites");
            foreach ((string site, ConsoleSite state) in Sites.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                json.WriteStartObject(site);
                json.WriteString("state", state.State.ToString());
                if (state.Stage is not null)
                {
                    json.WriteString("stage", state.Stage);
                }

                if (state.Reason is not null)
                {
                    json.WriteString("reason", state.Reason);
                }

                json.WriteEndObject();
            }

            json.WriteEndObject();
            json.WriteStartArray("closed_stages");
            foreach (string stage in ClosedStages)
            {
                json.WriteStringValue(stage);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Reads a record written by <see cref="ToJson"/>.</summary>
    /// <exception cref="InvalidDataException">The JSON is not such a record.</exception>
    public static ConsoleRound FromJson(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            JsonElement root = document.RootElement;
            var record = new ConsoleRound(root.GetProperty("round").GetInt64(), Time(root.GetProperty("started_utc")), root.GetProperty("base_model_version").GetInt64())
            {
                EndedUtc = root.TryGetProperty("ended_utc", out JsonElement ended) ? Time(ended) : null,
                Outcome = Named<RoundOutcomeKind>(root.GetProperty("outcome"), "outcome"),
                AbortReason = root.TryGetProperty("abort_reason", out JsonElement reason) ? reason.GetString() : null,
                AbortStage = root.TryGetProperty("abort_stage", out JsonElement stage) ? stage.GetString() : null,
                Survivors = root.GetProperty("survivors").GetInt32(),
                ModelVersionAfter = root.TryGetProperty("model_version_after", out JsonElement version) ? version.GetInt64() : null,
                BytesReceived = root.GetProperty("bytes_received").GetInt64(),
                FederationF1 = root.TryGetProperty("federation_f1", out JsonElement f1) ? f1.GetDouble() : null,
                Recovered = root.TryGetProperty("recovered", out JsonElement recovered) && recovered.GetBoolean(),
            };
            foreach (JsonProperty site in root.GetProperty("sites").EnumerateObject())
            {
                record.Sites[site.Name] = new ConsoleSite(
                    Named<SiteState>(site.Value.GetProperty("state"), "state"),
                    site.Value.TryGetProperty("stage", out JsonElement s) ? s.GetString() : null,
                    site.Value.TryGetProperty("reason", out JsonElement r) ? r.GetString() : null);
            }

            record.ClosedStages.AddRange(root.GetProperty("closed_stages").EnumerateArray().Select(e => e.GetString()!));
            return record;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException or FormatException)
        {
            throw new InvalidDataException("A stored console round record is not valid: " + ex.Message, ex);
        }

        // Only a name the enum defines: Enum.Parse also took a number ("7" became a state the console printed as "7", and one
        // past Int32 threw OverflowException, which no caller expects: the aggregator did not start) or a list ("Completed, Aborted").
        static T Named<T>(JsonElement e, string field) where T : struct, Enum =>
            e.GetString() is { } name && Enum.GetNames<T>().Contains(name, StringComparer.Ordinal)
                ? Enum.Parse<T>(name)
                : throw new FormatException($"'{field}' is {e.GetRawText()}, not one of {string.Join(", ", Enum.GetNames<T>())}.");

        static DateTimeOffset Time(JsonElement e) => DateTimeOffset.Parse(e.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
    }
}
