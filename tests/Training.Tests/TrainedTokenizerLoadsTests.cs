using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Training.Data;
using Xunit;

namespace ProxyOrleans.Training.Tests;

/// <summary>
/// The trainer writes its byte-level BPE as an HF tokenizer.json; the serving loader must read it back with the
/// same ids for the special tokens, round-trip every text exactly, and actually apply the learned merges.
/// </summary>
public class TrainedTokenizerLoadsTests
{
    [Fact]
    public void Serving_loader_encodes_and_decodes_like_the_trainer()
    {
        var world = new DemoWorld(new WorldOptions { EvalPeople = 20 });
        var docs = world.PretrainingDocuments(seed: 1).Take(300).ToList();
        var bpe = ByteLevelBpe.Train(docs, vocabSize: 600);

        string dir = Directory.CreateTempSubdirectory("proxyorleans-bpe-").FullName;
        try
        {
            bpe.Save(dir);
            var tok = TokenizerLoader.Load(dir);
            Assert.Equal("bpe", tok.Kind);
            Assert.Equal(bpe.VocabSize, tok.VocabSize);
            Assert.Equal(bpe.Id(ByteLevelBpe.EndOfText), tok.EosTokenId);
            Assert.Equal(ByteLevelBpe.ChatTemplate, Assert.IsType<JinjaChatTemplate>(tok.ChatTemplate).Source);

            var texts = docs.Concat(world.EvalExamples().Take(20).Select(q => q.Prompt + " " + q.Answer))
                .Append("naïve café 北京 🚀  12345\n\n\tx").Append("<|user|>\nWhat is 12 + 34?\n<|assistant|>\nAnswer: 46<|endoftext|>\n");
            int compared = 0, tokens = 0, bytes = 0;
            foreach (string text in texts)
            {
                int[] ids = tok.Encode(text, addBos: true, parseSpecialTokens: true);
                Assert.Equal(text, tok.Decode(ids, skipSpecialTokens: false));
                tokens += ids.Length;
                bytes += System.Text.Encoding.UTF8.GetByteCount(text);
                compared++;
            }
            Assert.True(compared > 300);
            Assert.True(tokens < bytes / 2, $"merges barely applied: {tokens} tokens for {bytes} bytes");

            var chat = new[] { new ChatMessage("user", "What is 12 + 34?") };
            int[] chatIds = tok.EncodeChat(chat);
            Assert.StartsWith("<|user|>\n", tok.Decode(chatIds, skipSpecialTokens: false));
            Assert.Equal(tok.ChatTemplate.Render(chat), tok.Decode(chatIds, skipSpecialTokens: false));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
