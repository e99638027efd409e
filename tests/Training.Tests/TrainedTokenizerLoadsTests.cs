using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Training.Data;
using Xunit;

namespace ProxyOrleans.Training.Tests;

/// <summary>
/// The trainer's own byte-level BPE (src/Training) and the serving loader (Inference.Tokenization, on
/// Microsoft.ML.Tokenizers) are two implementations of one HF format: the ids must agree text by text.
/// </summary>
public class TrainedTokenizerLoadsTests
{
    [Fact]
    public void Serving_loader_encodes_and_decodes_like_the_trainer()
    {
        var world = new DemoWorld(new WorldOptions { People = 20 });
        var docs = world.PretrainingDocuments(seed: 1).Take(300).ToList();
        var bpe = ByteLevelBpe.Train(docs, vocabSize: 600);

        string dir = Directory.CreateTempSubdirectory("proxyorleans-bpe-").FullName;
        try
        {
            bpe.Save(dir);
            var tok = TokenizerLoader.Load(dir);
            Assert.Equal("bpe", tok.Kind);
            Assert.Equal(bpe.VocabSize, tok.VocabSize);
            Assert.Equal(bpe.Id(ByteLevelBpe.ImEnd), tok.EosTokenId);
            Assert.Equal(ChatTemplates.ChatMl, tok.ChatTemplate!.Name);

            var texts = docs.Concat(world.EvalExamples(5).Select(q => q.Question + " " + q.Answer))
                .Append("naïve café 北京 🚀  12345\n\n\tx").Append("<|im_start|>user\nWhat is 12 + 34?<|im_end|>\n");
            int compared = 0;
            foreach (string text in texts)
            {
                int[] expected = bpe.Encode(text); // the trainer always parses special tokens, as HF does
                Assert.Equal(expected, tok.Encode(text, addBos: true, parseSpecialTokens: true));
                Assert.Equal(bpe.Decode(expected), tok.Decode(expected));
                compared++;
            }
            Assert.True(compared > 300);

            var chat = new[] { new ChatMessage("user", "What is 12 + 34?") };
            Assert.Equal(bpe.Encode(tok.ChatTemplate.Render(chat)), tok.EncodeChat(chat));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
