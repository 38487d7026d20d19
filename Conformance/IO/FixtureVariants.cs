using System.Text.Json.Nodes;
using Llm.IO;

namespace Llm.Conformance.IO;

/// <summary>The forms a saved checkpoint takes in the wild, made from a fixture folder (model.safetensors + config.json).</summary>
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
}
