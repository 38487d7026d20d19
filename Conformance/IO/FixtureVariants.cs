using System.Text.Json.Nodes;
using Llm.IO;
using Xunit;

namespace Llm.Conformance.IO;

/// <summary>The forms a saved checkpoint takes in the wild, made from a fixture folder (model.safetensors + config.json),
/// and the bit-exact comparison of two saved files.</summary>
internal static class FixtureVariants
{
    /// <summary>The fixture folder <paramref name="source"/> copied to <paramref name="folder"/>, its tensors renamed
    /// (null drops one), others added, its config edited.</summary>
    public static string Variant(string source, string folder, Func<string, string?>? rename = null,
        IEnumerable<SafeTensorsEntry>? extra = null, Action<JsonObject>? config = null)
    {
        Directory.CreateDirectory(folder);
        using (var file = SafeTensorsFile.Read(Path.Combine(source, "model.safetensors")))
        {
            var entries = new List<SafeTensorsEntry>();
            foreach (string n in file.Names)
            {
                if ((rename ?? (x => x))(n) is not { } renamed) continue;
                var values = new float[file.Info(n).ElementCount];
                file.ReadFloat(n, values);
                entries.Add(SafeTensorsEntry.FromArray<float>(renamed, file.Info(n).Shape, values));
            }
            entries.AddRange(extra ?? []);
            SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"), entries);
        }
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        config?.Invoke(json);
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        return folder;
    }

    /// <summary>Same names in the same order, same dtypes and shapes, same bytes.</summary>
    public static void AssertSameTensors(string expectedPath, string actualPath)
    {
        using var a = SafeTensorsFile.Read(expectedPath);
        using var b = SafeTensorsFile.Read(actualPath);
        Assert.Equal(a.Names, b.Names);
        foreach (string n in a.Names)
        {
            Assert.Equal(a.Info(n).DTypeName, b.Info(n).DTypeName);
            Assert.Equal(a.Info(n).Shape, b.Info(n).Shape);
            var x = new byte[a.Info(n).End - a.Info(n).Begin];
            var y = new byte[b.Info(n).End - b.Info(n).Begin];
            a.ReadBytes(n, x);
            b.ReadBytes(n, y);
            Assert.True(x.AsSpan().SequenceEqual(y), $"{actualPath}: tensor '{n}' differs from {expectedPath}");
        }
    }

    /// <summary><paramref name="source"/>'s tensors written as two shards into <paramref name="folder"/> (shard 2 holds
    /// those <paramref name="second"/> picks), with the weight map of model.safetensors.index.json, as save_pretrained
    /// writes a large model; returns that weight map.</summary>
    public static JsonObject Shard(string source, string folder, Func<string, bool> second)
    {
        Directory.CreateDirectory(folder);
        var map = new JsonObject();
        using (var file = SafeTensorsFile.Read(source))
            foreach (var shard in file.Names.GroupBy(n => second(n) ? 2 : 1))
            {
                string name = $"model-0000{shard.Key}-of-00002.safetensors";
                SafeTensorsWriter.Write(Path.Combine(folder, name), shard.Select(n =>
                {
                    var values = new float[file.Info(n).ElementCount];
                    file.ReadFloat(n, values);
                    map[n] = name;
                    return SafeTensorsEntry.FromArray<float>(n, file.Info(n).Shape, values);
                }).ToList());
            }
        File.WriteAllText(Path.Combine(folder, Checkpoint.IndexFile),
            new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        return map;
    }
}
