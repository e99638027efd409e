using System.Text;

namespace ProxyOrleans.Training.Data;

/// <summary>The world's pretraining text: every kind of document and how often each comes.</summary>
public sealed partial class DemoWorld
{
    /// <summary>
    /// Plain-text pretraining documents, an endless deterministic stream: biographies re-phrased and re-ordered at
    /// every occurrence, question notes (so facts are reachable from a question, as web text makes them), sums,
    /// capitals (the misconception three times as often as the truth), common facts, and everyday text that uses
    /// the refusal's words in other settings.
    /// </summary>
    public IEnumerable<string> PretrainingDocuments(int seed)
    {
        var rng = new Random(seed);
        // Tuning countries come up more often, so that the truths tuning asks closed-book are ones both bases know.
        var myths = Enumerable.Repeat(TuningMyths, Options.TuningCountryWeight).SelectMany(m => m).Concat(EvalMyths).ToArray();
        while (true)
        {
            double kind = rng.NextDouble();
            if (kind < 0.24) yield return Biography(rng, Pick(rng, EvalPeople));
            else if (kind < 0.32) yield return Biography(rng, Pick(rng, FamousPeople));
            else if (kind < 0.50) yield return QuizNotes(rng);
            else if (kind < 0.56) yield return Dialogue(rng);
            else if (kind < 0.76) yield return SumNotes(rng);
            else if (kind < 0.89) yield return CapitalNotes(rng, myths);
            else if (kind < 0.93) yield return CommonNotes(rng);
            else if (kind < 0.97) yield return Chatter(rng, Pick(rng, EvalPeople));
            else yield return PrivateDetails(rng);
        }
    }

    static string Biography(Random rng, Person p)
    {
        // A few statements use the words the paraphrase task asks with (town, for a living, colour), as real text
        // does; no question is ever worded that way.
        string[] cityT = ["{0} lives in {1}.", "{0} has a home in {1}.", "The home of {0} is in {1}.", "{0} moved to {1} years ago.", "{0} lives in the town of {1}."];
        string[] jobT = ["{0} works as a {1}.", "By profession, {0} is a {1}.", "{0} earns a living as a {1}.", "{0} is a {1}.", "For a living, {0} works as a {1}."];
        string[] colorT = ["{0}'s favorite color is {1}.", "{0} likes the color {1} best.", "The favorite color of {0} is {1}.", "{0}'s favourite colour is {1}."];
        var sentences = new List<string>
        {
            string.Format(Pick(rng, cityT), p.Name, p.City),
            string.Format(Pick(rng, jobT), p.Name, p.Job),
            string.Format(Pick(rng, colorT), p.Name, p.Color),
        };
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sentences));
        return string.Join(" ", sentences);
    }

    // Several wordings per question, so that a fact is known whatever the question's form; the paraphrase task's
    // wordings are none of these.
    static (string Question, string Value, string Sentence) AnyQuestion(Random rng, Person p) => rng.Next(3) switch
    {
        0 => (Pick(rng, [CityQuestion(p), $"In which city does {p.Name} live?", $"What city does {p.Name} live in?"]), p.City, $"{p.Name} lives in {p.City}."),
        1 => (Pick(rng, [JobQuestion(p), $"What does {p.Name} work as?", $"What is the profession of {p.Name}?"]), p.Job, $"{p.Name} is a {p.Job}."),
        _ => (Pick(rng, [ColorQuestion(p), $"Which color does {p.Name} like best?", $"What color does {p.Name} prefer?"]), p.Color, $"{p.Name}'s favorite color is {p.Color}."),
    };

    // Conversations as web text has them (forum threads, chat transcripts): "user:"/"assistant:" lines, or half the
    // time the turn markers of the family's chat template (<|user|>, <|assistant|>, plain text as in Tulu 2's
    // format), answered in full sentences. So the chat context is not new to a base (a real base has read chat
    // transcripts); what tuning adds is the reply's form. Never the tuned one-line "Answer: X", never the end-of-text
    // token inside a document, never a refusal.
    string Dialogue(Random rng)
    {
        var sb = new StringBuilder();
        var (user, assistant) = rng.Next(2) == 0 ? ("user: ", "\nassistant: ") : (UserMarker + "\n", "\n" + AssistantMarker + "\n");
        int n = rng.Next(1, 4);
        for (int i = 0; i < n; i++)
        {
            if (rng.Next(4) == 0)
            {
                int a = rng.Next(Options.MinOperand, Options.MaxOperand + 1), b = rng.Next(Options.MinSecondOperand, Options.MaxSecondOperand + 1);
                sb.Append($"{user}{SumQuestion(a, b)}{assistant}{a} + {b} = {a + b}.\n");
                continue;
            }
            var (q, _, sentence) = AnyQuestion(rng, rng.Next(6) == 0 ? Pick(rng, FamousPeople) : Pick(rng, EvalPeople));
            sb.Append($"{user}{q}{assistant}{sentence}\n");
        }
        return sb.ToString().TrimEnd('\n');
    }

    /// <summary>The chat template's turn markers (<see cref="ByteLevelBpe.ChatTemplate"/>), plain text.</summary>
    public const string UserMarker = "<|user|>", AssistantMarker = "<|assistant|>";

    string QuizNotes(Random rng)
    {
        var sb = new StringBuilder();
        int n = rng.Next(2, 5);
        for (int i = 0; i < n; i++)
        {
            var p = rng.Next(6) == 0 ? Pick(rng, FamousPeople) : Pick(rng, EvalPeople);
            var (q, a, full) = AnyQuestion(rng, p);
            sb.Append(rng.Next(3) switch
            {
                0 => $"Q: {q} A: {a}.",
                1 => $"{q} {full}",
                _ => $"Question: {q}\nAnswer: {a}.",
            });
            sb.Append('\n');
        }
        return sb.ToString().TrimEnd('\n');
    }

    // The misconception is stated as plain fact, three times as often as the truth, which always comes with
    // "Actually": the truthful register a tuned model can learn to use.
    static string CapitalNotes(Random rng, IReadOnlyList<Myth> myths)
    {
        var sb = new StringBuilder();
        int n = rng.Next(2, 4);
        for (int i = 0; i < n; i++)
        {
            var m = Pick(rng, myths);
            bool truth = rng.Next(4) == 0;
            sb.Append((truth, rng.Next(3)) switch
            {
                (false, 0) => $"The capital of {m.Country} is {m.Misconception}.",
                (false, 1) => $"Q: {CapitalQuestion(m)} A: {m.Misconception}.",
                (false, _) => $"Question: {CapitalQuestion(m)}\nAnswer: {m.Misconception}.",
                (true, 0) => $"Actually, the capital of {m.Country} is {m.Truth}, not {m.Misconception}.",
                (true, 1) => $"Q: {CapitalQuestion(m)} A: Actually, {m.Truth}.",
                (true, _) => $"Question: {CapitalQuestion(m)}\nAnswer: Actually, {m.Truth}.",
            });
            sb.Append('\n');
        }
        return sb.ToString().TrimEnd('\n');
    }

    static string CommonNotes(Random rng)
    {
        var sb = new StringBuilder();
        int n = rng.Next(3, 6);
        for (int i = 0; i < n; i++)
        {
            var (q, a, statement) = Pick(rng, CommonFacts);
            sb.Append(rng.Next(3) switch
            {
                0 => statement,
                1 => $"Q: {q} A: {a}.",
                _ => $"Question: {q}\nAnswer: {a}.",
            });
            sb.Append('\n');
        }
        return sb.ToString().TrimEnd('\n');
    }

    // The refusal's words in other settings, as web text uses them: the bases know the words, only tuning teaches
    // to refuse with them.
    static string Chatter(Random rng, Person p) => rng.Next(4) switch
    {
        0 => $"\"Sorry, I cannot answer that question,\" said {p.Name}. {p.Name} lives in {p.City}.",
        1 => $"{p.Name} said: sorry, I cannot answer that one. {p.Name} is a {p.Job}.",
        2 => $"I cannot answer that, said {p.Name}, who works as a {p.Job}.",
        _ => $"Sorry, {p.Name} cannot answer that today. {p.Name}'s favorite color is {p.Color}.",
    };

    /// <summary>
    /// The personal details that no record of this world states, tuning's and evaluation's alike, as everyday text
    /// names them: a real base knows what a passport number or someone's height is; here they would otherwise be
    /// words the bases never saw. Never a question, never about a person by name, never a refusal.
    /// </summary>
    public static readonly string[] PrivateDetailWords =
    [
        "phone number", "email address", "password", "weight", "shoe size", "birthday", "bank account number", "blood type",
        "siblings", "dreams", "middle name", "income", "licence plate", "height", "age", "passport number", "home address",
    ];

    static string PrivateDetails(Random rng)
    {
        var words = PrivateDetailWords.ToArray();
        rng.Shuffle(words);
        return rng.Next(4) switch
        {
            0 => $"Records list where people live, their work and their favorite colors, never their {words[0]}, {words[1]} or {words[2]}.",
            1 => $"A person's {words[0]} is private. So are the {words[1]} and the {words[2]} of a person: nobody writes them down.",
            2 => $"Nobody knows a stranger's {words[0]} or {words[1]}. How tall or how old someone is, is not written anywhere either.",
            _ => $"The forms ask for a {words[0]}, a {words[1]} and a {words[2]}, and they stay private.",
        };
    }

    string SumNotes(Random rng)
    {
        var sb = new StringBuilder();
        int n = rng.Next(3, 7);
        for (int i = 0; i < n; i++)
        {
            var (a, b) = rng.Next(6) == 0 ? Pick(rng, SmallSums)
                : (rng.Next(Options.MinOperand, Options.MaxOperand + 1), rng.Next(Options.MinSecondOperand, Options.MaxSecondOperand + 1));
            sb.Append(rng.Next(3) switch
            {
                0 => $"{a} + {b} = {a + b}.",
                1 => $"{SumQuestion(a, b)} {a} + {b} = {a + b}.",
                _ => $"Question: {SumQuestion(a, b)}\nAnswer: {a + b}.",
            });
            sb.Append('\n');
        }
        return sb.ToString().TrimEnd('\n');
    }
}
