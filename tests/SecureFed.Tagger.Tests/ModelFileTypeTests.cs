using SecureFed.Testing;
using Xunit.Abstractions;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// A tagger configuration file (<c>--config</c>) or a model folder's model.json or parameters.f32 that is a named pipe is
/// refused naming it and what it is: reading one waited for a writer forever (tagger train --config, tagger eval --model,
/// model merge hung at start-up).
/// </summary>
public sealed class ModelFileTypeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-model-type-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TaggerConfig_Resolve_NamedPipe_RefusedPromptlyNamingIt()
    {
        string? fifo = NamedPipe.Make(Path.Combine(_dir, "tagger.json"), output);
        if (fifo is null)
        {
            return;
        }

        Exception ex = NamedPipe.ThrownPromptly(fifo, () => TaggerConfig.Resolve(fifo));

        InvalidDataException invalid = Assert.IsType<InvalidDataException>(ex);
        Assert.StartsWith($"{fifo} is a named pipe (FIFO), not a regular file; give a JSON file of tagger settings", invalid.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("model.json")]
    [InlineData("parameters.f32")]
    public void TaggerModel_Load_ModelFileIsANamedPipe_RefusedPromptlyNamingIt(string file)
    {
        string model = Path.Combine(_dir, "model");
        using (TaggerModel saved = TaggerModel.Create(TaggerConfig.Tiny, LabelSet.Create(["Disease"]), 1))
        {
            saved.Save(model);
        }

        string path = Path.Combine(model, file);
        File.Delete(path);
        string? fifo = NamedPipe.Make(path, output);
        if (fifo is null)
        {
            return;
        }

        Exception ex = NamedPipe.ThrownPromptly(fifo, () => TaggerModel.Load(model, "cpu").Dispose());

        InvalidDataException invalid = Assert.IsType<InvalidDataException>(ex);
        Assert.Equal($"{fifo} is a named pipe (FIFO); a tagger model's {file} is a regular file (as 'securefed tagger train' writes it)", invalid.Message);
    }
}
