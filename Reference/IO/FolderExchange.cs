using System.Runtime.InteropServices;

namespace Llm.IO;

/// <summary>
/// Swaps two folders' names in one atomic step with Linux's renameat2(RENAME_EXCHANGE) (kernel 3.15, glibc 2.28):
/// both names exist at every instant, which two renames in a row cannot give. .NET has no such call.
/// </summary>
public static partial class FolderExchange
{
    /// <summary>Set on a thread to make <see cref="TryExchange"/> answer "unavailable" there, as on a system without
    /// the call, so that the fallback path can be exercised on one that has it.</summary>
    [ThreadStatic] internal static bool Disabled;

    private const int AtFdCwd = -100, RenameExchange = 2; // <fcntl.h> AT_FDCWD, <linux/fs.h> RENAME_EXCHANGE
    private const int ENOSYS = 38;                         // Linux: the kernel predates renameat2
    private static volatile bool _unavailable;             // learned once, so later calls skip the attempt

    /// <summary>Swaps <paramref name="a"/> and <paramref name="b"/> (both must exist) and returns true; returns false,
    /// touching nothing, where the system cannot (not Linux, glibc before 2.28, a kernel without renameat2, a file
    /// system without RENAME_EXCHANGE); any other failure is an <see cref="IOException"/> naming both.</summary>
    public static bool TryExchange(string a, string b)
    {
        if (Disabled || _unavailable || !OperatingSystem.IsLinux()) return false;
        int rc;
        try { rc = RenameAt2(AtFdCwd, a, AtFdCwd, b, RenameExchange); }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            _unavailable = true;
            return false;
        }
        if (rc < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == ENOSYS) { _unavailable = true; return false; }
            if (errno == FileSync.EINVAL) return false; // this file system lacks RENAME_EXCHANGE; another may have it
            throw new IOException($"{a} <-> {b}: renameat2(RENAME_EXCHANGE) failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
        FileSync.Traced($"exchange {a} <-> {b}");
        return true;
    }

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameAt2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);
}
