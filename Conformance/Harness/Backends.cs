using Llm.Checks;
using Llm.Conformance.Vulkan;

namespace Llm.Conformance.Harness;

/// <summary>
/// Who the xunit suite tests against whom. Every property runs each op on every <see cref="Subjects"/> backend in
/// F32 and on <see cref="Oracle.Backend"/>, the scalar definitions in F64, with identical inputs, and compares the
/// results. The subjects are the CPU fast paths and, unless LLM_SKIP_VULKAN=1, the Vulkan device with the
/// validation layer on (<see cref="Checks.Subject.Of"/> lists its feature variants).
/// </summary>
public static class Backends
{
    public static IReadOnlyList<Subject> All { get; } =
    [
        .. Subject.Of("cpu"),
        .. VulkanTestDevice.Skipped ? [] : Subject.Of("vulkan", WithValidation(), o => VulkanTestDevice.Open(o)),
    ];

    private static Llm.Vulkan.VulkanOptions WithValidation() => Llm.Vulkan.VulkanOptions.FromEnvironment() with { Validation = true };

    /// <summary>The available backends of <see cref="All"/>; CONFORMANCE_SUBJECTS=name,name narrows them.</summary>
    public static IReadOnlyList<Subject> Subjects { get; } = Select();

    /// <summary>The context every xunit property runs in: <see cref="Subjects"/>, and a record of the worst errors.</summary>
    public static CheckContext Context { get; } = new(Subjects);

    private static List<Subject> Select()
    {
        var only = Environment.GetEnvironmentVariable("CONFORMANCE_SUBJECTS")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var chosen = All.Where(s => (only is null || only.Contains(s.Name)) && s.Available).ToList();
        if (chosen.Count == 0)
            throw new InvalidOperationException($"no conformance subject selected: CONFORMANCE_SUBJECTS='{string.Join(",", only ?? [])}', known: {string.Join(", ", All)}");
        return chosen;
    }
}
