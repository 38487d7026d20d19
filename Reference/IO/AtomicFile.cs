namespace Llm.IO;

/// <summary>
/// Crash-safe file replacement: write to "name.tmp-&lt;random&gt;" in the same folder, flush it to the disk, rename it over
/// the target, then flush the folder (<see cref="FileSync"/>) so that the rename itself survives a power cut. A reader
/// therefore sees either the old complete file or the new complete one, never a torn write; on failure the temporary
/// file is deleted and the target is left untouched.
/// </summary>
public static class AtomicFile
{
    /// <summary>The marker in temporary names; anything containing it is an unfinished write.</summary>
    public const string TempMarker = ".tmp-";

    /// <summary>Creates or replaces <paramref name="path"/> with what <paramref name="write"/> puts in the stream.</summary>
    public static void Write(string path, Action<FileStream> write)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no parent folder");
        FileSync.CreateFolder(folder);
        // Same folder as the target: a rename within one file system is atomic, across file systems it is a copy.
        string temp = full + TempMarker + Convert.ToHexString(Guid.NewGuid().ToByteArray(), 0, 6).ToLowerInvariant();
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true); // the bytes are on the disk before the name points at them
            }
            FileSync.Traced($"fsync file {temp}");
            File.Move(temp, full, overwrite: true);
            FileSync.Traced($"rename {temp} -> {full}");
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
        FileSync.SyncFolder(folder); // the new name is durable
    }

    /// <summary>Creates or replaces a UTF-8 text file (no byte-order mark).</summary>
    public static void WriteAllText(string path, string text)
    {
        var bytes = new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
        Write(path, stream => stream.Write(bytes));
    }
}
