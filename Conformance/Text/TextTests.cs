using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Llm.Text;
using Xunit;

namespace Llm.Conformance.Text;

public class TextTests
{
    // Well-formed Unicode strings (no lone surrogates, which UTF-8 cannot represent): ASCII, Latin-1, CJK, emoji,
    // control characters and the GPT-2 separator, mixed.
    static readonly Arbitrary<string> UnicodeText = Gen.ArrayOf(Gen.OneOf(
            Gen.Choose(0, 0x7F),
            Gen.Choose(0x80, 0x7FF),
            Gen.Choose(0x800, 0xD7FF),
            Gen.Choose(0xE000, 0xFFFF),
            Gen.Choose(0x10000, 0x10FFFF)))
        .Select(codePoints => string.Concat(codePoints.Select(char.ConvertFromUtf32)))
        .Select(s => s.Length > 6 && s[0] < 0x20 ? "<|endoftext|>" + s : s)
        .ToArbitrary();

    // ---- factory ----

    [Fact]
    public void Factory_creates_both_tokenizers_by_name()
    {
        Assert.IsType<ByteTokenizer>(Tokenizers.Create("byte"));
        Assert.IsType<Gpt2Tokenizer>(Tokenizers.Create("gpt2"));
        Assert.IsType<Gpt2Tokenizer>(Tokenizers.Create("GPT2"));
        foreach (string name in Tokenizers.Names) Assert.Equal(name, Tokenizers.Create(name).Name);
    }

    [Fact]
    public void Factory_rejects_unknown_names_listing_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => Tokenizers.Create("sentencepiece"));
        Assert.Contains("sentencepiece", e.Message);
        Assert.Contains("byte", e.Message);
        Assert.Contains("gpt2", e.Message);
    }

    // ---- byte tokenizer ----

    [Fact]
    public void Byte_tokenizer_emits_utf8_bytes()
    {
        var tok = new ByteTokenizer();
        Assert.Equal(256, tok.VocabSize);
        Assert.Null(tok.EndOfText);
        Assert.Equal([72, 105], tok.Encode("Hi"));
        Assert.Equal([0x68, 0xC3, 0xA9], tok.Encode("hé"));                 // é = C3 A9
        Assert.Equal([0xF0, 0x9F, 0x8E, 0x89], tok.Encode("\U0001F389"));   // 🎉, 4 bytes
        Assert.Empty(tok.Encode(""));
    }

    [Property(MaxTest = 200)]
    public Property Byte_tokenizer_round_trips_any_unicode_text() =>
        Prop.ForAll(UnicodeText, text =>
        {
            var tok = new ByteTokenizer();
            int[] ids = tok.Encode(text);
            return tok.Decode(ids) == text
                && ids.Length == Encoding.UTF8.GetByteCount(text)
                && ids.All(id => id is >= 0 and < 256);
        });

    [Property(MaxTest = 200)]
    public Property Byte_tokenizer_decodes_any_byte_sequence_without_throwing() =>
        Prop.ForAll(Gen.ArrayOf(Gen.Choose(0, 255)).ToArbitrary(), ids =>
        {
            string text = new ByteTokenizer().Decode(ids);
            // every byte contributes to at most one UTF-16 code unit pair; invalid ones become U+FFFD
            return text.Length <= 2 * ids.Length;
        });

    [Fact]
    public void Byte_tokenizer_decodes_invalid_utf8_leniently()
    {
        var tok = new ByteTokenizer();
        Assert.Equal("\uFFFD", tok.Decode([0xFF]));           // never valid in UTF-8
        Assert.Equal("a\uFFFD", tok.Decode([0x61, 0xC3]));    // truncated 2-byte character
        Assert.Equal("\uFFFDb", tok.Decode([0x80, 0x62]));    // lone continuation byte
    }

    [Fact]
    public void Byte_tokenizer_rejects_ids_outside_the_vocabulary()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ByteTokenizer().Decode([65, 256]));
        Assert.Contains("256", e.Message);
        Assert.Contains("position 1", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ByteTokenizer().Decode([-1]));
    }

    // ---- GPT-2 tokenizer ----

    [Fact]
    public void Gpt2_tokenizer_has_the_gpt2_vocabulary()
    {
        var tok = Gpt2Tokenizer.Shared;
        Assert.Equal("gpt2", tok.Name);
        Assert.Equal(50257, tok.VocabSize);
        Assert.Equal(50256, tok.EndOfText);
        Assert.Equal([50256], tok.Encode("<|endoftext|>"));
        Assert.Equal("<|endoftext|>", tok.Decode([50256]));
    }

    [Theory]
    [InlineData("Hello world", new[] { 15496, 995 })]
    [InlineData("The quick brown fox", new[] { 464, 2068, 7586, 21831 })]
    [InlineData(" the", new[] { 262 })]
    [InlineData("!", new[] { 0 })]
    [InlineData("a<|endoftext|>b", new[] { 64, 50256, 65 })]
    public void Gpt2_tokenizer_produces_the_published_ids(string text, int[] expected)
    {
        Assert.Equal(expected, Gpt2Tokenizer.Shared.Encode(text));
        Assert.Equal(text, Gpt2Tokenizer.Shared.Decode(expected));
    }

    [Theory]
    [InlineData("It is a truth universally acknowledged, that a single man in possession of a good fortune")]
    [InlineData("héllo wörld, naïve café — “quotes” and 日本語のテキスト 🎉🎉")]
    [InlineData("  leading and trailing spaces \n\n\ttabs\r\n")]
    [InlineData("")]
    public void Gpt2_tokenizer_round_trips_ascii_and_non_ascii(string text)
    {
        int[] ids = Gpt2Tokenizer.Shared.Encode(text);
        Assert.All(ids, id => Assert.InRange(id, 0, 50256));
        Assert.Equal(text, Gpt2Tokenizer.Shared.Decode(ids));
    }

    [Property(MaxTest = 200)]
    public Property Gpt2_tokenizer_round_trips_any_unicode_text() =>
        Prop.ForAll(UnicodeText, text =>
        {
            int[] ids = Gpt2Tokenizer.Shared.Encode(text);
            return Gpt2Tokenizer.Shared.Decode(ids) == text && ids.All(id => id is >= 0 and < 50257);
        });

    [Fact]
    public void Gpt2_tokenizer_compresses_english_about_four_to_one()
    {
        // BPE's point: far fewer tokens than bytes on the text it was trained for
        string text = Corpus.PrideAndPrejudice[..20_000];
        double bytesPerToken = (double)Encoding.UTF8.GetByteCount(text) / Gpt2Tokenizer.Shared.Encode(text).Length;
        Assert.InRange(bytesPerToken, 3.5, 5.5);
    }

    [Fact]
    public void Gpt2_tokenizer_decodes_a_split_character_without_throwing()
    {
        // a rare CJK character takes several byte-level tokens; a prefix ends inside its UTF-8 encoding
        int[] ids = Gpt2Tokenizer.Shared.Encode("𠀋");
        Assert.True(ids.Length > 1, $"expected several tokens, got [{string.Join(", ", ids)}]");
        string prefix = Gpt2Tokenizer.Shared.Decode(ids.AsSpan(0, 1));
        Assert.DoesNotContain("𠀋", prefix);
    }

    [Fact]
    public void Gpt2_tokenizer_rejects_ids_outside_the_vocabulary()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Gpt2Tokenizer.Shared.Decode([15496, 50257]));
        Assert.Contains("50257", e.Message);
    }

    // ---- corpus ----

    [Fact]
    public void Embedded_corpus_is_pride_and_prejudice()
    {
        string text = Corpus.PrideAndPrejudice;
        Assert.StartsWith("PRIDE AND PREJUDICE", text);
        Assert.Contains("It is a truth universally acknowledged", text);
        Assert.InRange(text.Length, 600_000, 800_000);
        Assert.Same(text, Corpus.Load(null));
    }

    [Fact]
    public void Corpus_loads_a_file()
    {
        string path = Path.Combine(Path.GetTempPath(), $"llm-corpus-{Guid.NewGuid():N}.txt");
        try
        {
            File.WriteAllText(path, "naïve text\n", new UTF8Encoding(encoderShouldEmitUTF8Identifier: true));
            Assert.Equal("naïve text\n", Corpus.Load(path)); // BOM stripped
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Corpus_names_a_missing_file()
    {
        string path = Path.Combine(Path.GetTempPath(), $"no-such-corpus-{Guid.NewGuid():N}.txt");
        var e = Assert.Throws<FileNotFoundException>(() => Corpus.Load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Corpus_names_an_empty_file()
    {
        string path = Path.Combine(Path.GetTempPath(), $"llm-empty-{Guid.NewGuid():N}.txt");
        try
        {
            File.WriteAllText(path, "");
            var e = Assert.Throws<InvalidDataException>(() => Corpus.Load(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("empty", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Corpus_rejects_a_directory_naming_it()
    {
        var e = Assert.Throws<FileNotFoundException>(() => Corpus.Load(Path.GetTempPath()));
        Assert.Contains("is a directory, not a text file", e.Message);
    }

    // ---- token dataset ----

    static int[] Iota(int n) => Enumerable.Range(0, n).ToArray();

    [Fact]
    public void Dataset_holds_out_the_last_tenth_by_default()
    {
        var data = new TokenDataset(Iota(1000), batchSize: 2, sequenceLength: 4);
        Assert.Equal(900, data.TrainCount);
        Assert.Equal(100, data.ValidationCount);
        Assert.Equal(Iota(900), data.Train.ToArray());
        Assert.Equal(Enumerable.Range(900, 100), data.Validation.ToArray());

        var quarter = new TokenDataset(Iota(1000), 2, 4, validationFraction: 0.25);
        Assert.Equal(750, quarter.TrainCount);
        var none = new TokenDataset(Iota(1000), 2, 4, validationFraction: 0);
        Assert.Equal(1000, none.TrainCount);
        Assert.Equal(0, none.ValidationBatchCount);
    }

    [Fact]
    public void Batch_rows_are_consecutive_windows_and_targets_are_shifted_by_one()
    {
        const int B = 3, T = 5;
        var data = new TokenDataset(Iota(200).Select(i => i * 7 % 101).ToArray(), B, T);
        int[] stream = data.Train.ToArray();
        TokenBatch batch = data.NextTrainBatch();
        Assert.Equal((B, T), (batch.B, batch.T));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
            {
                Assert.Equal(stream[b * T + t], batch.Inputs[b * T + t]);
                Assert.Equal(stream[b * T + t + 1], batch.Targets[b * T + t]);
            }
        Assert.Equal(B * T, data.Position);
    }

    [Fact]
    public void Training_walk_advances_by_BT_and_wraps_before_running_past_the_train_split()
    {
        const int B = 2, T = 4; // window 9 tokens; train split 45 tokens holds windows at 0, 8, 16, 24, 32
        var data = new TokenDataset(Iota(54), B, T, validationFraction: 9.0 / 54);
        Assert.Equal(45, data.TrainCount);
        Assert.Equal(5, data.TrainBatchesPerEpoch);
        int[] starts = Enumerable.Range(0, 12).Select(_ => data.NextTrainBatch().Inputs[0]).ToArray();
        Assert.Equal([0, 8, 16, 24, 32, 0, 8, 16, 24, 32, 0, 8], starts);
    }

    [Property(MaxTest = 100)]
    public Property Training_batches_never_read_validation_tokens() =>
        Prop.ForAll(Gen.Choose(1, 4).Two().SelectMany(bt => Gen.Choose(4 * (bt.Item1 * bt.Item2 + 1), 400),
                (bt, n) => (B: bt.Item1, T: bt.Item2, N: n)).ToArbitrary(), c =>
        {
            var data = new TokenDataset(Iota(c.N), c.B, c.T, validationFraction: 0.3); // both splits hold >= 1 window
            for (int step = 0; step < 3 * data.TrainBatchesPerEpoch + 2; step++)
            {
                TokenBatch batch = data.NextTrainBatch();
                if (batch.Targets.Max() >= data.TrainCount) return false;
            }
            return true;
        });

    [Property(MaxTest = 50)]
    public Property Restoring_the_position_resumes_the_exact_batch_sequence() =>
        Prop.ForAll(Gen.Choose(0, 40).ToArbitrary(), warmup =>
        {
            int[] tokens = Iota(500).Select(i => (i * 31 + 7) % 97).ToArray();
            var original = new TokenDataset(tokens, 3, 7);
            for (int i = 0; i < warmup; i++) original.NextTrainBatch();
            long saved = original.Position;
            var resumed = new TokenDataset(tokens, 3, 7) { Position = saved };
            for (int i = 0; i < 30; i++)
            {
                TokenBatch a = original.NextTrainBatch(), b = resumed.NextTrainBatch();
                if (!a.Inputs.SequenceEqual(b.Inputs) || !a.Targets.SequenceEqual(b.Targets)) return false;
            }
            return original.Position == resumed.Position;
        });

    [Fact]
    public void Validation_batches_are_fixed_windows_of_the_held_out_split()
    {
        const int B = 2, T = 8;
        var data = new TokenDataset(Iota(1000), B, T); // validation = tokens 900..999: (100-1)/16 = 6 windows
        Assert.Equal(6, data.ValidationBatchCount);
        for (int k = 0; k < data.ValidationBatchCount; k++)
        {
            TokenBatch batch = data.ValidationBatch(k);
            Assert.Equal(Enumerable.Range(900 + k * B * T, B * T), batch.Inputs);
            Assert.Equal(Enumerable.Range(901 + k * B * T, B * T), batch.Targets);
            Assert.Equal(batch.Inputs, data.ValidationBatch(k).Inputs); // the same every time
        }
        data.NextTrainBatch();
        Assert.Equal(900, data.ValidationBatch(0).Inputs[0]); // training does not move validation
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => data.ValidationBatch(6));
        Assert.Contains("[0, 6)", e.Message);
    }

    [Fact]
    public void Too_short_text_names_the_token_count_and_window()
    {
        var e = Assert.Throws<ArgumentException>(() => new TokenDataset(Iota(100), batchSize: 4, sequenceLength: 32));
        Assert.Contains("90", e.Message);   // train tokens
        Assert.Contains("129", e.Message);  // B*T+1
        var v = Assert.Throws<ArgumentException>(() => new TokenDataset(Iota(300), batchSize: 4, sequenceLength: 32));
        Assert.Contains("validation split has 30 tokens", v.Message);
    }

    [Fact]
    public void Dataset_rejects_bad_arguments_and_out_of_vocabulary_tokens()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenDataset(Iota(100), 0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenDataset(Iota(100), 2, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenDataset(Iota(100), 2, 4, validationFraction: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenDataset(Iota(100), 2, 4, validationFraction: double.NaN));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TokenDataset(Iota(300), 2, 4, vocabSize: 256));
        Assert.Contains("token 256 at position 256", e.Message);
        var data = new TokenDataset(Iota(100), 2, 4);
        Assert.Throws<ArgumentException>(() => data.Position = -1);
        Assert.Throws<ArgumentException>(() => data.NextTrainBatch(new int[7], new int[8]));
    }

    [Fact]
    public void Unigram_entropy_matches_hand_computed_values()
    {
        Assert.Equal(0, TokenDataset.UnigramEntropy([5, 5, 5]), 12);
        Assert.Equal(Math.Log(4), TokenDataset.UnigramEntropy([0, 1, 2, 3, 3, 2, 1, 0]), 12);
        // p = (1/2, 1/4, 1/4): H = ½ ln 2 + ½ ln 4 = 1.5 ln 2
        Assert.Equal(1.5 * Math.Log(2), TokenDataset.UnigramEntropy([7, 7, 0, 300]), 12);
        Assert.Throws<ArgumentException>(() => TokenDataset.UnigramEntropy([]));
    }

    [Property(MaxTest = 200)]
    public Property Unigram_entropy_lies_between_zero_and_log_of_distinct_count() =>
        Prop.ForAll(Gen.NonEmptyListOf(Gen.Choose(0, 20)).Select(l => l.ToArray()).ToArbitrary(), tokens =>
        {
            double h = TokenDataset.UnigramEntropy(tokens);
            return h >= -1e-12 && h <= Math.Log(tokens.Distinct().Count()) + 1e-12;
        });

    [Fact]
    public void Train_unigram_entropy_of_the_novel_is_that_of_english_characters()
    {
        var data = new TokenDataset(new ByteTokenizer().Encode(Corpus.PrideAndPrejudice), 4, 64);
        Assert.Equal(TokenDataset.UnigramEntropy(data.Train), data.TrainUnigramEntropy);
        // English letters+space+punctuation: ≈ 4.1 bits ≈ 2.9 nats per character
        Assert.InRange(data.TrainUnigramEntropy, 2.6, 3.2);
    }
}
