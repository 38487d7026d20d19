using System.Globalization;
using System.Numerics;
using Llm.Tensors;

namespace Llm.IO;

/// <summary>
/// Everything besides the weights that a run needs to continue exactly where it stopped, stored as
/// training_state.safetensors: the optimizer's tensors under their own names (AdamW's "adam.m.&lt;parameter&gt;" and
/// "adam.v.&lt;parameter&gt;", one per parameter, so the file does not depend on how a backend splits its arenas) and,
/// as string metadata, the counters, the data loader's state, the validation loss at this step, a fingerprint of the
/// training text and the trainer options as JSON.
/// </summary>
/// <param name="Step">Training steps completed, skipped ones included.</param>
/// <param name="OptimizerStep">Updates the optimizer has applied (AdamW's bias correction counts these).</param>
/// <param name="SkippedSteps">Steps skipped for a non-finite loss or gradient norm.</param>
/// <param name="DataOrderState">The data loader's order generator at the start of its current epoch.</param>
/// <param name="DataPosition">Where the data loader is in that epoch.</param>
/// <param name="ValidationLoss">Validation loss of these weights (NaN when not measured).</param>
/// <param name="DataSha256">SHA-256 of the training text, so a resume on a changed file is refused (null: unknown).</param>
/// <param name="TrainerJson">The options the run was started with.</param>
public sealed record TrainingState(long Step, long OptimizerStep, long SkippedSteps, ulong DataOrderState, long DataPosition,
    double ValidationLoss, string? DataSha256, string TrainerJson)
{
    /// <summary>The tensors to save, each under its <see cref="Tensor.Name"/>.</summary>
    public IReadOnlyList<Tensor> Tensors { get; init; } = [];

    /// <summary>Creates or replaces <paramref name="path"/> atomically.</summary>
    public void Save(string path)
    {
        var inv = CultureInfo.InvariantCulture;
        var metadata = new Dictionary<string, string>
        {
            ["step"] = Step.ToString(inv),
            ["optimizer_step"] = OptimizerStep.ToString(inv),
            ["skipped_steps"] = SkippedSteps.ToString(inv),
            ["rng_state"] = DataOrderState.ToString(inv),
            ["data_position"] = DataPosition.ToString(inv),
            ["val_loss"] = ValidationLoss.ToString("R", inv),
            ["trainer"] = TrainerJson,
        };
        if (DataSha256 is not null) metadata["data_sha256"] = DataSha256;
        SafeTensorsWriter.Write(path, Tensors.Select(t => SafeTensorsEntry.FromTensor(t)), metadata);
    }

    /// <summary>The metadata of the state at <paramref name="path"/>; the tensors stay in the file
    /// (<see cref="ReadTensors"/>). Counters that files from before they existed lack get their old meaning:
    /// every step was an update, none was skipped, no validation loss or fingerprint was recorded.</summary>
    public static TrainingState Read(string path)
    {
        using var file = SafeTensorsFile.Read(path);
        string? Optional(string key) => file.Metadata.TryGetValue(key, out var value) ? value : null;
        string Meta(string key) => Optional(key) ?? throw new InvalidDataException($"{path}: metadata '{key}' missing");
        // digits only (NumberStyles.None: no sign, no spaces): counters, positions and generator states are never negative
        T Count<T>(string key, string? text) where T : IBinaryInteger<T> =>
            T.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
                : throw new InvalidDataException($"{path}: metadata '{key}' = \"{text}\" is not a non-negative integer");
        long step = Count<long>("step", Meta("step"));
        ulong order = Count<ulong>("rng_state", Meta("rng_state"));
        double val = Optional("val_loss") is { } text
            ? double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
                : throw new InvalidDataException($"{path}: metadata 'val_loss' = \"{text}\" is not a number")
            : double.NaN;
        return new TrainingState(step,
            Optional("optimizer_step") is { } os ? Count<long>("optimizer_step", os) : step,
            Optional("skipped_steps") is { } ss ? Count<long>("skipped_steps", ss) : 0,
            order, Count<long>("data_position", Meta("data_position")), val, Optional("data_sha256"), Meta("trainer"));
    }

    /// <summary>Fills each destination from the tensor of its name in <paramref name="path"/>; the whole file is
    /// checked for names and shapes before anything is written.</summary>
    public static void ReadTensors(string path, IReadOnlyList<Tensor> destinations)
    {
        using var file = SafeTensorsFile.Read(path);
        foreach (var d in destinations)
        {
            string name = d.Name ?? throw new ArgumentException($"{d.Describe()} needs a name to be read from {path}");
            if (!file.Contains(name))
                throw new InvalidDataException($"{path}: missing tensor '{name}' (the checkpoint belongs to another model or optimizer)");
            var info = file.Info(name);
            if (!info.Shape.SequenceEqual(d.Shape))
                throw new InvalidDataException($"{path}: tensor '{name}' has shape {Tensor.ShapeString(info.Shape)}, the model expects {d.Describe()}");
        }
        foreach (var d in destinations) Checkpoint.ReadInto(file, file.Info(d.Name!), d);
    }

    /// <summary>The names of the tensors in <paramref name="path"/> (used to recognise the older layout of one flat
    /// "adam.m" [P]).</summary>
    public static IReadOnlySet<string> TensorNames(string path)
    {
        using var file = SafeTensorsFile.Read(path);
        return file.Names.ToHashSet();
    }
}
