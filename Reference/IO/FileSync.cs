using System.Runtime.InteropServices;

namespace Llm.IO;

/// <summary>
/// Flushing a folder to the disk, which .NET cannot do: fsync(file) makes a file's bytes durable, but its name (a new
/// file, a rename) is part of the folder and survives a power cut only once the folder is fsynced too. On Linux and
/// macOS this is libc's open(folder, O_RDONLY | O_DIRECTORY), fsync, close. On Windows (and other systems) it does
/// nothing: Windows has no folder flush that .NET can call, and NTFS records renames in its metadata journal.
/// </summary>
public static partial class FileSync
{
    /// <summary>
    /// Called after each durable step of a write ("fsync file P", "rename A -> B", "fsync folder F",
    /// "exchange A <-> B", "delete F") with that description, on the thread doing the write; null in normal use. It
    /// lets a test look at the disk between the real steps (is <c>latest</c> valid at every point?) without faking any.
    /// Per thread, so an observer sees only its own writes.
    /// </summary>
    [ThreadStatic] internal static Action<string>? Trace;

    internal static void Traced(string step) => Trace?.Invoke(step);

    /// <summary>Sets <see cref="Trace"/> for the calling thread (null: off). The CLI's LLM_TRACE_IO=1 prints each step, so
    /// that a crash test can kill a real process between two chosen steps.</summary>
    public static void TraceTo(Action<string>? trace) => Trace = trace;

    /// <summary>fsyncs <paramref name="folder"/> (see the class); <see cref="IOException"/> naming it on failure.</summary>
    public static void SyncFolder(string folder)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            int fd;
            while ((fd = Open(folder, ODirectory)) < 0 && Marshal.GetLastPInvokeError() == EINTR) { }
            if (fd < 0) throw Failure(folder, "open");
            try
            {
                int rc;
                while ((rc = Fsync(fd)) < 0 && Marshal.GetLastPInvokeError() == EINTR) { }
                // EINVAL: a file system that cannot sync a folder (some FUSE and network mounts); nothing stronger exists there.
                if (rc < 0 && Marshal.GetLastPInvokeError() != EINVAL) throw Failure(folder, "fsync");
            }
            finally { Close(fd); }
        }
        Traced($"fsync folder {folder}");
    }

    /// <summary>Creates <paramref name="folder"/> and any missing parents, fsyncing each new one's parent so that
    /// the new names are durable too.</summary>
    public static void CreateFolder(string folder)
    {
        string full = Path.GetFullPath(folder);
        if (Directory.Exists(full)) return;
        string? parent = Path.GetDirectoryName(full);
        if (parent is not null) CreateFolder(parent);
        Directory.CreateDirectory(full);
        if (parent is not null) SyncFolder(parent);
    }

    internal static IOException Failure(string path, string call)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{path}: {call} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
    }

    internal const int EINTR = 4, EINVAL = 22; // the same on Linux and macOS

    /// <summary>O_DIRECTORY differs between systems and architectures (O_RDONLY is 0 everywhere).</summary>
    private static int ODirectory =>
        OperatingSystem.IsMacOS() ? 0x100000
        : RuntimeInformation.ProcessArchitecture is Architecture.Arm or Architecture.Armv6 or Architecture.Arm64 or Architecture.Ppc64le ? 0x4000
        : 0x10000; // Linux's generic value: x86, x64, RISC-V, LoongArch, s390x

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
