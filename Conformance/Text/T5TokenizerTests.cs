// T5's spiece.model: Fixtures/tokenizers/t5/spiece.model (rerun: /usr/bin/python3 Tools/fixtures/tokenizer_fixtures.py)
// is a SentencePiece Unigram model with T5's special ids (pad 0, eos 1, unk 2, no bos) and 15 pieces whose scores
// make the Viterbi segmentation the obvious one, so the expected ids below are derived by hand:
// 3 ▁the, 4 ▁cat, 5 ▁sat, 6 ▁on, 7 at, 8 ▁, 9 t, 10 h, 11 e, 12 c, 13 a, 14 s, 15 o, 16 n, 17 m; the 100 sentinels
// <extra_id_N> are ids 18 + 100 − 1 − N (117 … 18), above the pieces as T5Tokenizer puts them.
using Llm.Models;
using Llm.Text;
using Xunit;

namespace Llm.Conformance.Text;

public sealed class T5TokenizerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-t5-tok-" + Guid.NewGuid().ToString("N"));
    private static readonly string Fixture = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "t5", "spiece.model");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string FolderWith(params string[] files)
    {
        string folder = Path.Combine(_dir, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        foreach (string f in files) File.Copy(Fixture, Path.Combine(folder, f));
        return folder;
    }

    [Fact]
    public void A_Unigram_spiece_model_encodes_with_T5s_conventions()
    {
        var t = Tokenizers.Open(Path.Combine(FolderWith(Tokenizers.T5SentencePieceFile), Tokenizers.T5SentencePieceFile));
        Assert.IsType<SentencePieceFileTokenizer>(t);
        Assert.Equal(18 + 100, t.VocabSize);
        Assert.Equal(1, t.EndOfText);
        Assert.Null(t.BeginOfText);
        // no BOS; EOS (1) appended, as T5Tokenizer's build_inputs_with_special_tokens
        Assert.Equal([3, 4, 5, 6, 3, 8, 17, 7, 1], t.Encode("the cat sat on the mat"));
        Assert.Equal("the cat sat on the mat", t.Decode([3, 4, 5, 6, 3, 8, 17, 7]));
    }

    [Fact]
    public void Sentinels_are_the_top_ids_and_split_the_text()
    {
        var t = Tokenizers.Open(FolderWith(Tokenizers.T5SentencePieceFile));
        Assert.Equal([3, 117, 4, 1], t.Encode("the <extra_id_0> cat"));
        Assert.Equal([18, 5, 1], t.Encode("<extra_id_99>sat"));
        Assert.DoesNotContain(t.Encode("<extra_id_100>"), id => id >= 18);   // not a sentinel of this vocabulary: plain text
        string text = t.Decode([3, 117, 4, 18]);
        Assert.StartsWith("the<extra_id_0>", text);
        Assert.EndsWith("<extra_id_99>", text);
        Assert.Contains("cat", text);
        var e = Assert.ThrowsAny<ArgumentException>(() => t.Decode([118]));
        Assert.Contains("118", e.Message);
    }

    [Fact]
    public void Tokenizer_config_sets_the_number_of_sentinels_and_the_special_tokens()
    {
        string folder = FolderWith(Tokenizers.T5SentencePieceFile);
        File.WriteAllText(Path.Combine(folder, TokenizerConfig.FileName), """{"extra_ids": 3, "add_eos_token": false}""");
        var t = Tokenizers.Open(folder);
        Assert.Equal(21, t.VocabSize);
        Assert.Equal([3, 20, 4], t.Encode("the <extra_id_0> cat"));
        Assert.Equal([3, 18], t.Encode("the <extra_id_2>"));
        File.WriteAllText(Path.Combine(folder, TokenizerConfig.FileName), """{"extra_ids": -1}""");
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Open(folder));
        Assert.Contains("extra_ids", e.Message);
    }

    [Fact]
    public void A_folder_uses_spiece_model_before_tokenizer_json_and_after_tokenizer_model()
    {
        string folder = FolderWith(Tokenizers.T5SentencePieceFile);
        Assert.Equal(Path.Combine(folder, Tokenizers.T5SentencePieceFile), Tokenizers.ForFolder(folder, "byte"));
        Assert.Equal(Path.Combine(folder, Tokenizers.T5SentencePieceFile), Tokenizers.ForFolder(folder, null, WeightNaming.Llama));
        File.WriteAllText(Path.Combine(folder, Tokenizers.HfJsonFile), "{}");   // T5's Unigram tokenizer.json, which HfJsonTokenizer does not read
        Assert.Equal(Path.Combine(folder, Tokenizers.T5SentencePieceFile), Tokenizers.InFolder(folder));
        File.Copy(Fixture, Path.Combine(folder, Tokenizers.SentencePieceFile));
        Assert.Equal(Path.Combine(folder, Tokenizers.SentencePieceFile), Tokenizers.InFolder(folder));
        // tokenizer.model takes LLaMA's conventions (BOS), which this model lacks: refused, not mis-tokenized
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Open(folder));
        Assert.Contains("no bos piece", e.Message);

        string empty = FolderWith();
        Assert.Equal("byte", Tokenizers.ForFolder(empty, "byte"));
        Assert.Null(Tokenizers.ForFolder(empty, null));
        var none = Assert.Throws<FileNotFoundException>(() => Tokenizers.ForModel(null, empty, null, 128));
        Assert.Contains("spiece.model", none.Message);
    }

    [Fact]
    public void An_encoder_decoder_takes_the_spiece_tokenizer_when_its_ids_fit_the_vocabulary()
    {
        string folder = FolderWith(Tokenizers.T5SentencePieceFile);
        string? found = Tokenizers.ForFolder(folder, null);
        Assert.Equal(118, Tokenizers.ForModel(null, folder, found, 128).VocabSize);   // padded rows above the sentinels, as t5's 32,128
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.ForModel(null, folder, found, 100));
        Assert.Contains("118 ids, more than the model's vocab_size 100", e.Message);
    }
}
