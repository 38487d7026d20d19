namespace Llm.IO;

/// <summary>A model's config.json as a checkpoint writes it: <see cref="HfConfig"/> for decoders, T5's for encoder-decoders.</summary>
public interface IModelConfigFile
{
    string ToJson();
    /// <summary>Creates or replaces <paramref name="path"/> atomically.</summary>
    void Save(string path);
}
