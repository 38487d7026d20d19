// Tokenizers read from a model folder's files: Fixtures/tokenizers/ (rerun: /usr/bin/python3
// Tools/fixtures/tokenizer_fixtures.py) holds a byte-level BPE tokenizer.json (GPT-2's layout, 14 merges; the expected
// ids are the script's reference BPE and were checked by hand) and a SentencePiece tokenizer.model (BPE with byte
// fallback, LLaMA's normalizer settings; its expected ids are derived by hand in the comments below). Variants (BLOOM's
// Split, NeoX's NFC, BOS/EOS settings, refused types) are made by editing the JSON in a temporary folder.
using System.Text.Json.Nodes;
using Llm.Conformance.Training;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Text;
using Xunit;

namespace Llm.Conformance.Text;

public sealed class HfTokenizerTests : IDisposable
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers");
    private static readonly string JsonFixture = Path.Combine(Fixtures, "bytebpe", Tokenizers.HfJsonFile);
    private static readonly string ModelFixture = Path.Combine(Fixtures, "sentencepiece", Tokenizers.SentencePieceFile);
    private const int EndOfText = 270;   // <|endoftext|>, the json's added token

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-hf-tok-" + Guid.NewGuid().ToString("N"));

    public HfTokenizerTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>A folder holding the json fixture edited by <paramref name="edit"/>, and tokenizer_config.json when given.</summary>
    private string JsonFolder(Action<JsonNode>? edit = null, string? tokenizerConfig = null, string name = "json")
    {
        string folder = Path.Combine(_dir, name);
        Directory.CreateDirectory(folder);
        var root = JsonNode.Parse(File.ReadAllText(JsonFixture))!;
        edit?.Invoke(root);
        File.WriteAllText(Path.Combine(folder, Tokenizers.HfJsonFile), root.ToJsonString());
        if (tokenizerConfig is not null) File.WriteAllText(Path.Combine(folder, TokenizerConfig.FileName), tokenizerConfig);
        return folder;
    }

    // ---- tokenizer.json: byte-level BPE ----------------------------------------------------------------------------

    [Theory]
    [InlineData("the cat sat on the mat", new[] { 267, 261, 264, 266, 258, 32, 109, 259 })]
    [InlineData("café<|endoftext|>cat", new[] { 269, 102, 268, EndOfText, 99, 259 })]   // "Ã ©" (rank 12) before "c a" (13)
    [InlineData("a  b", new[] { 97, 32, 32, 98 })]                                         // \s+(?!\S) leaves " b" whole
    [InlineData("the cat, sat", new[] { 267, 261, 44, 264 })]
    public void Byte_level_BPE_encodes_as_the_reference_BPE_and_decodes_back(string text, int[] expected)
    {
        var t = Tokenizers.Open(JsonFixture);
        Assert.Equal(expected, t.Encode(text));
        Assert.Equal(text, t.Decode(expected));
        Assert.Equal(271, t.VocabSize);
        Assert.Null(t.BeginOfText);
    }

    [Fact]
    public void Bytes_cut_by_a_token_boundary_decode_to_the_replacement_character()
    {
        var t = Tokenizers.Open(JsonFixture);
        Assert.Equal("caf\uFFFD", t.Decode([269, 102, 0xC3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Decode([271]));
    }

    /// <summary>BLOOM's pre-tokenizer: a Split (Rust regex with a nested class, behavior Isolated) then ByteLevel without
    /// its own split. "1cat" stays one piece (GPT-2's split would cut it after the digit, so the added merge "1 c"
    /// could not apply) and the comma between matches is kept as a piece of its own.</summary>
    [Fact]
    public void Bloom_split_keeps_the_text_between_matches_and_translates_nested_classes()
    {
        string folder = JsonFolder(root =>
        {
            root["pre_tokenizer"] = JsonNode.Parse("""
                {"type":"Sequence","pretokenizers":[
                  {"type":"Split","pattern":{"Regex":" ?[^(\\s|[.,!?…。，、।۔،])]+"},"behavior":"Isolated","invert":false},
                  {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}
                """);
            root["model"]!["vocab"]!["1c"] = 271;
            root["model"]!["merges"]!.AsArray().Add("1 c");
        });
        var t = Tokenizers.Open(folder);
        Assert.Equal([271, 259], t.Encode("1cat"));
        Assert.Equal([99, 259, 44, 264], t.Encode("cat, sat"));
        Assert.Equal([97, 40, 98], t.Encode("a(b"));   // '(' is in the excluded set, not a group
        Assert.Equal(@" ?[^(\s|.,!?…)]+", HfJsonTokenizer.RustToDotNet(@" ?[^(\s|[.,!?…])]+", "f", "p"));
        Assert.Equal(@"[\]a]", HfJsonTokenizer.RustToDotNet(@"[]a]", "f", "p"));
    }

    [Fact]
    public void Merges_as_pairs_and_ignore_merges_are_honoured()
    {
        var pairs = Tokenizers.Open(JsonFolder(root =>
        {
            var merges = root["model"]!["merges"]!.AsArray();
            var asPairs = new JsonArray([.. merges.Select(m => (JsonNode)new JsonArray([.. m!.GetValue<string>().Split(' ').Select(s => (JsonNode)JsonValue.Create(s)!)]))]);
            root["model"]!["merges"] = asPairs;
        }, name: "pairs"));
        Assert.Equal([267, 261, 264, 266, 258, 32, 109, 259], pairs.Encode("the cat sat on the mat"));
        // with ignore_merges a whole pre-token in the vocabulary is one id even where the merges would not reach it
        var ignoring = Tokenizers.Open(JsonFolder(root =>
        {
            root["model"]!["ignore_merges"] = true;
            root["model"]!["vocab"]!["cat"] = 271;
        }, name: "ignore"));
        Assert.Equal([271], ignoring.Encode("cat"));
        Assert.Equal([99, 259], Tokenizers.Open(JsonFixture).Encode("cat"));
    }

    /// <summary>NeoX's NFC normalizer is accepted; NFC text encodes as without it. (Decomposed text is not composed:
    /// the project's invariant globalization mode leaves non-ASCII text to .NET's Normalize unchanged.)</summary>
    [Fact]
    public void NFC_normalizer_is_accepted_and_leaves_NFC_text_as_it_is()
    {
        var nfc = Tokenizers.Open(JsonFolder(root => root["normalizer"] = JsonNode.Parse("""{"type":"NFC"}""")));
        Assert.Equal([269, 102, 268], nfc.Encode("café"));
        Assert.Equal(Tokenizers.Open(JsonFixture).Encode("the cat sat on the mat"), nfc.Encode("the cat sat on the mat"));
    }

    // ---- BOS / EOS ----------------------------------------------------------------------------------------------------

    [Fact]
    public void Byte_level_BOS_and_EOS_follow_tokenizer_config_and_default_to_none()
    {
        var plain = Tokenizers.Open(JsonFolder(tokenizerConfig: """{"eos_token": "<|endoftext|>"}""", name: "plain"));
        Assert.Equal([99, 259], plain.Encode("cat"));
        Assert.Equal(EndOfText, plain.EndOfText);

        var both = Tokenizers.Open(JsonFolder(tokenizerConfig: """
            {"add_bos_token": true, "add_eos_token": true,
             "bos_token": {"content": "<|endoftext|>", "lstrip": false}, "eos_token": "<|endoftext|>"}
            """, name: "both"));
        Assert.Equal([EndOfText, 99, 259, EndOfText], both.Encode("cat"));
        Assert.Equal(EndOfText, both.BeginOfText);
    }

    [Fact]
    public void A_TemplateProcessing_BOS_applies_unless_tokenizer_config_says_otherwise()
    {
        void Template(JsonNode root) => root["post_processor"] = JsonNode.Parse("""
            {"type":"TemplateProcessing",
             "single":[{"SpecialToken":{"id":"<|endoftext|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
             "pair":[], "special_tokens":{"<|endoftext|>":{"id":"<|endoftext|>","ids":[270],"tokens":["<|endoftext|>"]}}}
            """);
        Assert.Equal([EndOfText, 99, 259], Tokenizers.Open(JsonFolder(Template, name: "template")).Encode("cat"));
        Assert.Equal([99, 259], Tokenizers.Open(JsonFolder(Template, """{"add_bos_token": false}""", name: "off")).Encode("cat"));
    }

    // ---- refusals -----------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("model.type \"Unigram\"", "model", """{"type":"Unigram","vocab":[["a",0.0]]}""")]
    [InlineData("model.type \"WordPiece\"", "model", """{"type":"WordPiece","vocab":{"a":0}}""")]
    [InlineData("pre_tokenizer.type \"Metaspace\"", "pre_tokenizer", """{"type":"Metaspace","replacement":"▁"}""")]
    [InlineData("pre_tokenizer.add_prefix_space", "pre_tokenizer", """{"type":"ByteLevel","add_prefix_space":true}""")]
    [InlineData("normalizer.type \"Lowercase\"", "normalizer", """{"type":"Lowercase"}""")]
    [InlineData("decoder.type \"Metaspace\"", "decoder", """{"type":"Metaspace"}""")]
    public void Unsupported_tokenizer_json_is_refused_naming_the_field(string mention, string field, string value)
    {
        string folder = JsonFolder(root => root[field] = JsonNode.Parse(value));
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Open(folder));
        Assert.Contains(mention, e.Message);
        Assert.Contains(Tokenizers.HfJsonFile, e.Message);
    }

    [Fact]
    public void SentencePiece_style_BPE_in_tokenizer_json_is_refused_pointing_to_tokenizer_model()
    {
        string folder = JsonFolder(root => root["model"]!["byte_fallback"] = true);
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Open(folder));
        Assert.Contains("model.byte_fallback", e.Message);
        Assert.Contains("tokenizer.model", e.Message);
    }

    // ---- tokenizer.model: SentencePiece BPE ---------------------------------------------------------------------------

    // Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then ▁t 259, he 260, ▁the 261, at 262, ▁c 263, ▁cat 264,
    // ▁ 265, t 266, h 267, e 268, c 269, a 270, s 271 with descending scores (SentencePiece merges the best-scoring
    // piece first). "the cat" → ▁the▁cat: ▁t, he, ▁the, at, ▁c, ▁cat → [261, 264]. "sat" → ▁ s a t: only "at" is a
    // piece → [265, 271, 262]. "x" and "é" are no pieces: byte fallback, 3 + byte.
    [Theory]
    [InlineData("the cat", new[] { 1, 261, 264 })]
    [InlineData("sat", new[] { 1, 265, 271, 262 })]
    [InlineData("x", new[] { 1, 265, 3 + 0x78 })]
    [InlineData("é", new[] { 1, 265, 3 + 0xC3, 3 + 0xA9 })]
    public void SentencePiece_model_encodes_with_BOS_by_default(string text, int[] expected)
    {
        var t = Tokenizers.Open(ModelFixture);
        Assert.Equal(expected, t.Encode(text));
        Assert.Equal(text, t.Decode(expected.AsSpan(1)));
        Assert.Equal(272, t.VocabSize);
        Assert.Equal(1, t.BeginOfText);
        Assert.Equal(2, t.EndOfText);
    }

    [Fact]
    public void SentencePiece_BOS_and_EOS_follow_tokenizer_config()
    {
        string folder = Path.Combine(_dir, "sp");
        Directory.CreateDirectory(folder);
        File.Copy(ModelFixture, Path.Combine(folder, Tokenizers.SentencePieceFile));
        File.WriteAllText(Path.Combine(folder, TokenizerConfig.FileName), """{"add_bos_token": false, "add_eos_token": true, "eos_token": {"content": "</s>"}}""");
        Assert.Equal([261, 264, 2], Tokenizers.Open(folder).Encode("the cat"));
        File.WriteAllText(Path.Combine(folder, TokenizerConfig.FileName), """{"eos_token": "nope"}""");
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Open(folder));
        Assert.Contains("eos_token \"nope\"", e.Message);
    }

    // ---- resolution ---------------------------------------------------------------------------------------------------

    [Fact]
    public void A_folder_prefers_tokenizer_model_then_tokenizer_json_then_llm_tokenizer_then_gpt2_for_GPT2_only()
    {
        string folder = Path.Combine(_dir, "both");
        Directory.CreateDirectory(folder);
        Assert.Equal("byte", Tokenizers.ForFolder(folder, "byte", WeightNaming.Llama));
        Assert.Equal("gpt2", Tokenizers.ForFolder(folder, null, WeightNaming.Gpt2));
        Assert.Null(Tokenizers.ForFolder(folder, null, WeightNaming.Llama));
        Assert.Null(Tokenizers.ForFolder(folder, null, WeightNaming.Bloom));
        File.Copy(JsonFixture, Path.Combine(folder, Tokenizers.HfJsonFile));
        Assert.Equal(Path.Combine(folder, Tokenizers.HfJsonFile), Tokenizers.ForFolder(folder, "byte", WeightNaming.Gpt2));
        File.Copy(ModelFixture, Path.Combine(folder, Tokenizers.SentencePieceFile));
        Assert.Equal(Path.Combine(folder, Tokenizers.SentencePieceFile), Tokenizers.ForFolder(folder, "byte", WeightNaming.Llama));
        Assert.IsType<SentencePieceFileTokenizer>(Tokenizers.Open(folder));

        var model = DecoderConfig.FromPreset("llama-tiny") with { VocabSize = 300 };
        Assert.IsType<ByteTokenizer>(Tokenizers.ForModel("byte", folder, Tokenizers.ForFolder(folder, null, model.Naming), model));
        Assert.IsType<HfJsonTokenizer>(Tokenizers.ForModel(Path.Combine(folder, Tokenizers.HfJsonFile), folder, null, model));

        var none = Assert.Throws<FileNotFoundException>(() => Tokenizers.ForModel(null, _dir, null, model));
        Assert.Contains(_dir, none.Message);
        Assert.Contains("tokenizer.model", none.Message);
        Assert.Contains("tokenizer.json", none.Message);

        var small = model with { VocabSize = 100 };
        var big = Assert.Throws<InvalidDataException>(() => Tokenizers.ForModel(null, folder, Path.Combine(folder, Tokenizers.SentencePieceFile), small));
        Assert.Contains("272", big.Message);
        Assert.Contains("vocab_size 100", big.Message);

        var unknown = Assert.Throws<ArgumentException>(() => Tokenizers.Open("morse"));
        Assert.Contains("unknown tokenizer 'morse'", unknown.Message);
    }

    // ---- CLI ----------------------------------------------------------------------------------------------------------

    /// <summary>A random llama-tiny with 272 ids (the SentencePiece fixture's), saved as a Hugging Face folder with no
    /// llm_tokenizer, and a text file to score.</summary>
    private (string Folder, string Text) TinyLlama(string? tokenizerFile)
    {
        string folder = Path.Combine(_dir, "llama");
        var config = DecoderConfig.FromPreset("llama-tiny") with { VocabSize = 272 };
        var model = new Decoder(new CpuBackend(fastPaths: true), config);
        model.InitializeWeights(5);
        Checkpoint.SaveModel(folder, new HfConfig(config, null), model.Parameters);
        if (tokenizerFile is not null) File.Copy(tokenizerFile, Path.Combine(folder, Path.GetFileName(tokenizerFile)));
        string text = Path.Combine(_dir, "text.txt");
        File.WriteAllText(text, "the cat sat on the mat. the cat sat.");
        return (folder, text);
    }

    [Fact]
    public void Eval_and_sample_use_the_folders_tokenizer_model_or_the_one_given()
    {
        var (folder, text) = TinyLlama(ModelFixture);
        var r = CliRun.Run("eval", "--backend", "cpu", "--checkpoint", folder, "--data", text, "--seq", "8", "--json");
        Assert.True(r.Code == 0, r.Err);
        var own = JsonNode.Parse(r.Out)!;
        // "the cat sat on the mat. the cat sat." with BOS: scored tokens are all but the first
        int count = Tokenizers.Open(ModelFixture).Encode(File.ReadAllText(text)).Length;
        Assert.Equal(count - 1, own["tokens"]!.GetValue<int>());

        r = CliRun.Run("eval", "--backend", "cpu", "--checkpoint", folder, "--data", text, "--seq", "8", "--json", "--tokenizer", "byte");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(File.ReadAllText(text).Length - 1, JsonNode.Parse(r.Out)!["tokens"]!.GetValue<int>());

        r = CliRun.Run("sample", "--backend", "cpu", "--checkpoint", folder, "--prompt", "the cat", "--tokens", "4", "--temperature", "0", "--tokenizer", JsonFixture);
        Assert.True(r.Code == 0, r.Err);
        Assert.StartsWith("the cat", r.Out);

        r = CliRun.Run("sample", "--backend", "cpu", "--checkpoint", folder, "--prompt", "the cat", "--tokens", "4", "--temperature", "0");
        Assert.True(r.Code == 0, r.Err);
        Assert.StartsWith("the cat", r.Out);
    }

    [Fact]
    public void Eval_of_a_LLaMA_folder_without_tokenizer_files_fails_naming_the_folder_and_files()
    {
        var (folder, text) = TinyLlama(null);
        var r = CliRun.Run("eval", "--backend", "cpu", "--checkpoint", folder, "--data", text, "--seq", "8");
        string line = CliRun.AssertOneLineError(r, "tokenizer.model");
        Assert.Contains("tokenizer.json", line);
        Assert.Contains(folder, line);

        r = CliRun.Run("eval", "--backend", "cpu", "--checkpoint", folder, "--data", text, "--json", "--tokenizer", "gpt2");
        CliRun.AssertOneLineError(r, "vocab_size 272");
    }
}
