using Silk.NET.Vulkan;

namespace Llm.Vulkan;

/// <summary>
/// What a driver needs beyond its reported limits, keyed on VkPhysicalDeviceDriverProperties.driverID (never on the
/// device type: another CPU driver, or a GPU, has its own behaviour). The one place such knowledge lives; the
/// backend combines it with the reported limits and the options' overrides into <see cref="VulkanBackend.Limits"/>.
/// </summary>
public sealed record DeviceQuirks
{
    /// <summary>Most loop iterations one shader invocation may run, counted over all its loops together; the host splits
    /// longer work into several dispatches. <see cref="long.MaxValue"/> where the driver has no such cap.</summary>
    public required long LoopIterationBudget { get; init; }

    /// <summary>Matmul tiles with few invocations that each compute much (8×8 outputs), rather than many with 4×4.</summary>
    public required bool FewWideInvocations { get; init; }

    public static DeviceQuirks For(DriverId driver) => driver switch
    {
        // llvmpipe (lavapipe) ends an invocation's loops after 65535 iterations in total (Mesa's
        // LP_MAX_TGSI_LOOP_ITERATIONS), silently: the rest of the work is skipped. Its invocations are SIMD lanes of a
        // few CPU threads and a workgroup barrier switches between all of them, so 64 invocations with 8×8 outputs
        // each beat 256 with 4×4 (≈ 4 against 2.4 GFLOP/s). Its 128 MiB maxStorageBufferRange is reported, not a quirk.
        DriverId.MesaLlvmpipe => new() { LoopIterationBudget = 65535, FewWideInvocations = true },
        _ => new() { LoopIterationBudget = long.MaxValue, FewWideInvocations = false },
    };
}

/// <summary>The limits the host sizes its dispatches by: the device's, its driver's quirks, and the options' overrides.</summary>
/// <param name="BindingRange">Most bytes one descriptor spans: maxStorageBufferRange, or <see cref="VulkanOptions.MaxBindingBytes"/>
/// plus the slack where that is smaller.</param>
/// <param name="Slack">How far below its tensor a descriptor may start (minStorageBufferOffsetAlignment, at least 4).</param>
/// <param name="LoopIterationBudget">Most loop iterations per invocation: <see cref="DeviceQuirks.LoopIterationBudget"/> or
/// <see cref="VulkanOptions.LoopIterationBudget"/>, the smaller.</param>
public sealed record DispatchLimits(ulong BindingRange, ulong Slack, long LoopIterationBudget, bool FewWideInvocations)
{
    /// <summary>Most bytes of one tensor a dispatch may bind: the range less the alignment slack.</summary>
    public ulong TensorBytes => BindingRange - Slack;

    /// <summary>The iterations the host plans for: 3/4 of the budget, since its counts of a kernel's loops are estimates
    /// (measured: attention_back_kv planned at 64,500 of lavapipe's 65,535 was still cut short; at 50,000 it was not).</summary>
    public long PlannedIterations => LoopIterationBudget == long.MaxValue ? long.MaxValue : LoopIterationBudget / 4 * 3;

    /// <summary>Most units of work one invocation may loop over when each costs <paramref name="iterationsPerUnit"/>
    /// iterations and <paramref name="overhead"/> more are spent outside, within <see cref="PlannedIterations"/>; at
    /// least 1, at most int.MaxValue.</summary>
    public int UnitsWithinBudget(long iterationsPerUnit, long overhead = 0) =>
        (int)Math.Clamp((PlannedIterations - overhead) / Math.Max(iterationsPerUnit, 1), 1, int.MaxValue);

    public static DispatchLimits Of(DeviceInfo info, VulkanOptions options)
    {
        var quirks = DeviceQuirks.For(info.DriverId);
        ulong slack = Math.Max(info.MinStorageBufferOffsetAlignment, 4);
        ulong requested = options.MaxBindingBytes is ulong bytes ? bytes + slack : ulong.MaxValue;
        ulong range = Math.Min(Math.Min(info.MaxStorageBufferRange, requested), int.MaxValue);
        if (range < slack + 64)
            throw new ArgumentException($"a binding of {range} bytes leaves too little room after the {slack}-byte offset alignment of '{info.Name}'");
        long budget = Math.Min(quirks.LoopIterationBudget, options.LoopIterationBudget ?? long.MaxValue);
        if (budget < 256) throw new ArgumentException($"a loop budget of {budget} iterations is too small to make progress (at least 256)");
        return new DispatchLimits(range, slack, budget, quirks.FewWideInvocations);
    }
}
