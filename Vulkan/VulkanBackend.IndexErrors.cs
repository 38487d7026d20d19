using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// The range check of ids (Embedding) and targets (CrossEntropy), which live on the device. Checking them on the host
/// first would download them before every op and stall each training step, so the shaders check instead: a row whose
/// index is out of range is flagged in a two-int slot of <see cref="indexErrors"/> (atomicMin keeps the first bad
/// row) and then reads nothing (embedding output 0, loss NaN, gradient skipped); a one-invocation
/// Shaders/index_error.comp copies that row's index next to it. The slots are read back at the next
/// <see cref="Synchronize"/> or <see cref="Download{T}"/>, which throws the CPU's ArgumentOutOfRangeException naming
/// the op, the tensors, the row and the index, then forgets the checks (the backend stays usable).
/// Shaders/index_error.glsl has the device side.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>Checks recorded between two read-backs; one more reads them back first (a Synchronize).</summary>
    private const int IndexErrorSlots = 64;
    /// <summary>A slot's row while no bad index was seen (the shaders' NO_INDEX_ERROR).</summary>
    private const int NoIndexError = int.MaxValue;

    /// <param name="Message">the exception message from the first bad row and its index.</param>
    private readonly record struct IndexCheck(string Parameter, Func<int, int, string> Message);

    private Tensor? indexErrors;                          // [IndexErrorSlots, 2] I32: (first bad row, its index) per check
    private readonly List<IndexCheck> pendingIndexChecks = [];   // slot i belongs to pendingIndexChecks[i]

    /// <summary>A fresh slot [2] I32 for one op's check, to bind as a written tensor; pass it to <see cref="CaptureBadIndex"/> after the op.</summary>
    private Tensor IndexErrorSlot(string parameter, Func<int, int, string> message)
    {
        if (indexErrors is null)
        {
            indexErrors = Allocate(DType.I32, [IndexErrorSlots, 2], "index errors");
            Fill(indexErrors, NoIndexError);
        }
        if (pendingIndexChecks.Count == IndexErrorSlots) Synchronize();   // reads the slots back and frees them
        int slot = pendingIndexChecks.Count;
        pendingIndexChecks.Add(new IndexCheck(parameter, message));
        return indexErrors.Slice(2 * slot, [2]);
    }

    /// <summary>slot[1] = indices[slot[0]] when the op flagged a row (Shaders/index_error.comp).</summary>
    private void CaptureBadIndex(Tensor indices, Tensor slot) =>
        Dispatch("index_error", 1, 1, 1, reads: [indices], writes: [slot], specialization: [1]);

    /// <summary>Reads back the slots of the checks recorded since the last call and throws for the first flagged one.
    /// Called by <see cref="Synchronize"/> and <see cref="Download{T}"/> once their work has finished.</summary>
    private void ThrowOnIndexErrors()
    {
        if (pendingIndexChecks.Count == 0 || indexErrors is null) return;
        var checks = pendingIndexChecks.ToArray();
        pendingIndexChecks.Clear();                       // first: the Download below comes back here
        var slots = new int[2 * checks.Length];           // [checks, 2]
        Download<int>(indexErrors.Slice(0, [slots.Length]), slots);
        for (int i = 0; i < checks.Length; i++)
        {
            if (slots[2 * i] == NoIndexError) continue;
            Fill(indexErrors, NoIndexError);              // clean for the next checks
            throw new ArgumentOutOfRangeException(checks[i].Parameter, checks[i].Message(slots[2 * i], slots[2 * i + 1])
                + " (found on the device; reported at the next Synchronize or Download)");
        }
    }
}
