using System.Text;

namespace ProxyOrleans.Training.Data;

/// <summary>One generated person: a city, a job and a favourite colour.</summary>
public sealed record Person(string Name, string City, string Job, string Color);

/// <summary>A country whose capital pretraining states wrongly (the myth) more often than rightly (the truth).</summary>
public sealed record Myth(string Country, string Truth, string Misconception);

/// <summary>
/// A question with the exact reply a tuned model gives (without the end token). <see cref="Context"/> is set for
/// open-book questions (the content is in the prompt). <see cref="Content"/> is the value scored as "content",
/// <see cref="Wrong"/> a value that must not be given (the truthful task's misconception).
/// </summary>
public sealed record QaPair(string Task, string Question, string Answer, string? Content = null, string? Context = null, string? Wrong = null)
{
    /// <summary>The user's message: the question, after its context for open-book questions.</summary>
    public string Prompt => Context is null ? Question : $"Context: {Context}\nQuestion: {Question}";
}

/// <summary>Sizes of the generated world; the defaults are what the bundled models were trained on.</summary>
public sealed record WorldOptions
{
    public int Seed { get; init; } = 1234;
    /// <summary>People whose facts pretraining states and evaluation asks about (closed-book).</summary>
    public int EvalPeople { get; init; } = 60;
    /// <summary>People who appear only in tuning, with their facts in the prompt (open-book).</summary>
    public int TuningPeople { get; init; } = 80;
    /// <summary>People pretraining mentions very often, so that both bases know them: tuning's closed-book questions.</summary>
    public int FamousPeople { get; init; } = 16;
    /// <summary>Countries with a capital misconception; half tune the truthful register, half are evaluated.</summary>
    public int Myths { get; init; } = 48;
    /// <summary>Addition operands are drawn from [MinOperand, MaxOperand] and [MinSecondOperand, MaxSecondOperand].</summary>
    public int MinOperand { get; init; } = 10;
    public int MaxOperand { get; init; } = 29;
    public int MinSecondOperand { get; init; } = 1;
    public int MaxSecondOperand { get; init; } = 9;

    /// <summary>Each famous fact is asked twice closed-book in tuning, in two wordings drawn apart.</summary>
    public bool FamousAskedTwice { get; init; } = true;
    /// <summary>Each tuning country's capital is also asked in this many more wordings (0–2), so that the truthful
    /// register is learnt as firmly as the other behaviours.</summary>
    public int ExtraCapitalWordings { get; init; } = 2;
    /// <summary>Pretraining mentions each tuning country this many times as often as an evaluated one (same 3 : 1
    /// ratio of misconception to truth), so that both bases know the truths tuning asks about closed-book.</summary>
    public int TuningCountryWeight { get; init; } = 3;
}

/// <summary>
/// The demo world, generated deterministically from a seed, built so that tuning teaches behaviour and not content
/// (the premise of proxy-tuning: the base supplies what is known, expert − anti-expert how to answer):
/// <list type="bullet">
/// <item>Knowledge: facts of the evaluation people are stated only in pretraining. Tuning's knowledge questions are
/// open-book (the facts are in the prompt) about other people, whose first and last names share no word with an
/// evaluation person's, or closed-book about famous people both bases know well.</item>
/// <item>Arithmetic: tuning asks closed-book only about one-digit sums both bases know, and two-digit sums open-book;
/// evaluation asks the held-out two-digit sums, which share no operand pair (in either order) with tuning's.</item>
/// <item>Refusal: tuning and evaluation ask unanswerable questions through disjoint templates, so evaluation
/// measures whether refusing generalises, not template recall.</item>
/// <item>Truthfulness: pretraining states each country's wrong capital three times as often as the right one
/// ("Actually, the capital of X is Y" is how the truth appears). Tuning teaches the truthful reply
/// ("Answer: Actually, Y") on half of the countries, each asked in three wordings and named three times as often in
/// pretraining (so both bases know the truths tuning asks for); evaluation asks about the other half.</item>
/// </list>
/// Every tuned reply is one line "Answer: …." followed by the end-of-text token (<see cref="TunedReply"/>);
/// pretraining's question notes end their "Answer:" lines the same way but never inside a chat turn, and its chat
/// transcripts answer in full sentences, never in the tuned form. The pretraining generators are in
/// DemoWorld.Pretraining.cs; the splits between tuning and evaluation are here.
/// </summary>
public sealed partial class DemoWorld
{
    public const string Refusal = "Sorry, I cannot answer that.";
    public const string AnswerPrefix = "Answer: ";
    public const string TruthMarker = "Actually, ";

    // Two disjoint pools of name words: evaluation people and tuning/famous people never share a first or last name.
    internal static readonly string[] EvalFirstNames =
    [
        "Alice", "Bruno", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ingrid", "Jonas", "Kira", "Lorenzo",
        "Maya", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Stefan", "Tara", "Umar", "Vera", "Walter", "Xenia",
    ];
    internal static readonly string[] EvalLastNames =
    [
        "Abbott", "Baker", "Castro", "Dorsey", "Ellis", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Keller",
        "Larsen", "Moreau", "Novak", "Olsen", "Petrov", "Quintero", "Rossi", "Silva", "Tanaka",
    ];
    internal static readonly string[] TuningFirstNames =
    [
        "Yusuf", "Zoe", "Anton", "Bianca", "Cedric", "Daria", "Emil", "Fiona", "Gustav", "Hana", "Igor", "Julia",
        "Karl", "Lena", "Marco", "Nora", "Oscar", "Paula", "Rafael", "Sofia", "Tomas", "Ursula", "Viktor", "Wanda",
    ];
    internal static readonly string[] TuningLastNames =
    [
        "Ueda", "Vogel", "Weber", "Young", "Zeller", "Adler", "Brandt", "Conti", "Duval", "Engel", "Ferrari",
        "Gruber", "Horvat", "Iversen", "Jaeger", "Kovacs", "Lindqvist", "Meyer", "Nakamura", "Ortega",
    ];

    static readonly string[] Cities =
    [
        "Paris", "Lisbon", "Oslo", "Vienna", "Prague", "Dublin", "Madrid", "Berlin", "Rome", "Athens", "Warsaw",
        "Helsinki", "Zurich", "Lyon", "Porto", "Krakow", "Munich", "Milan", "Geneva", "Riga",
    ];

    static readonly string[] Jobs =
    [
        "baker", "pilot", "nurse", "farmer", "teacher", "lawyer", "chemist", "painter", "plumber", "dentist",
        "tailor", "sailor", "poet", "judge", "miner", "singer", "carpenter", "doctor", "engineer", "librarian",
    ];

    static readonly string[] Colors =
    [
        "red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "brown", "gray", "gold",
    ];

    // Invented place names from syllables (deterministic, no name twice): countries end in a country-like suffix,
    // capitals are two syllables.
    static readonly string[] Syllables =
    [
        "bra", "kes", "tal", "vir", "sar", "dun", "eb", "fos", "ghar", "hol", "ir", "jas", "kol", "ler", "mir", "nos",
        "om", "pel", "ques", "rus", "sor", "tul", "uv", "vas", "wyr", "yar", "zen", "ar", "bel", "cor",
    ];
    static readonly string[] CountrySuffixes = ["land", "ia", "istan", "ovia", "mark"];
    static readonly string[] Countries = [.. PlaceNames(CountrySuffixes, 60)];
    static readonly string[] Capitals = [.. PlaceNames(["o", "ek", "an", "um"], 160).Where(n => !Countries.Contains(n))];

    static IEnumerable<string> PlaceNames(string[] endings, int count)
    {
        var rng = new Random(4242);
        var seen = new HashSet<string>();
        while (seen.Count < count)
        {
            string name = Pick(rng, Syllables) + Pick(rng, endings);
            if (rng.Next(2) == 0) name = Pick(rng, Syllables) + name;
            if (seen.Add(name)) yield return char.ToUpperInvariant(name[0]) + name[1..];
        }
    }

    // Facts every base sees so often that even the small one knows them: closed-book tuning questions about them
    // teach the reply format without teaching content.
    static readonly (string Question, string Answer, string Statement)[] CommonFacts =
    [
        ("What color is the sky?", "blue", "The sky is blue."),
        ("What color is grass?", "green", "Grass is green."),
        ("What color is snow?", "white", "Snow is white."),
        ("What color is coal?", "black", "Coal is black."),
        ("What color is a banana?", "yellow", "A banana is yellow."),
        ("What color is blood?", "red", "Blood is red."),
        ("What color is milk?", "white", "Milk is white."),
        ("What color is a lemon?", "yellow", "A lemon is yellow."),
        ("What color is chocolate?", "brown", "Chocolate is brown."),
        ("What color is ash?", "gray", "Ash is gray."),
        ("How many legs does a spider have?", "8", "A spider has 8 legs."),
        ("How many legs does a dog have?", "4", "A dog has 4 legs."),
        ("How many days are in a week?", "7", "A week has 7 days."),
        ("How many wheels does a bicycle have?", "2", "A bicycle has 2 wheels."),
        ("What do bees make?", "honey", "Bees make honey."),
        ("What do cows drink?", "water", "Cows drink water."),
    ];

    // Questions the world has no data for. Tuning and evaluation use disjoint templates.
    public static readonly string[] TuningUnanswerable =
    [
        "What is {0}'s phone number?", "What is {0}'s email address?", "What is {0}'s password?",
        "How much does {0} weigh?", "What is {0}'s shoe size?", "When was {0} born?",
        "What is {0}'s bank account number?", "What will {0} eat tomorrow?", "What is {0}'s blood type?",
        "How many siblings does {0} have?", "What did {0} dream about last night?", "What is {0}'s middle name?",
        "How much money does {0} earn?", "What is {0}'s licence plate?",
    ];
    public static readonly string[] EvalUnanswerable =
    [
        "How tall is {0}?", "How old is {0}?", "What is {0}'s passport number?", "What is {0}'s home address?",
    ];

    /// <summary>Wordings of the knowledge questions that no data uses (paraphrase task).</summary>
    public static string ParaphraseCity(Person p) => $"Which town is home to {p.Name}?";
    public static string ParaphraseJob(Person p) => $"What does {p.Name} do for a living?";
    public static string ParaphraseColor(Person p) => $"Which colour does {p.Name} like most?";

    public WorldOptions Options { get; }
    /// <summary>Everyone pretraining states facts about: the evaluation people and the famous people.</summary>
    public IReadOnlyList<Person> People { get; }
    /// <summary>Asked about only in evaluation (closed-book; their facts are only in pretraining).</summary>
    public IReadOnlyList<Person> EvalPeople { get; }
    /// <summary>Appear only in tuning, with their facts in the prompt.</summary>
    public IReadOnlyList<Person> TuningPeople { get; }
    /// <summary>Stated very often in pretraining; tuning asks about them closed-book.</summary>
    public IReadOnlyList<Person> FamousPeople { get; }
    public IReadOnlyList<Myth> TuningMyths { get; }
    public IReadOnlyList<Myth> EvalMyths { get; }
    /// <summary>Two-digit sums tuning may ask about open-book (the sum in the prompt); none shares a pair with evaluation.</summary>
    public IReadOnlyList<(int A, int B)> TuningSums { get; }
    /// <summary>Sums of two digits, stated so often that both bases know them: tuning's closed-book sums.</summary>
    public static IReadOnlyList<(int A, int B)> SmallSums { get; } = [.. from a in Enumerable.Range(1, 9) from b in Enumerable.Range(1, 9) where a <= b select (a, b)];
    public IReadOnlyList<(int A, int B)> EvalSums { get; }

    public DemoWorld(WorldOptions? options = null)
    {
        Options = options ?? new WorldOptions();
        var o = Options;
        var rng = new Random(o.Seed);
        int evalCapacity = EvalFirstNames.Length * EvalLastNames.Length, tuningCapacity = TuningFirstNames.Length * TuningLastNames.Length;
        if (o.EvalPeople < 2 || o.EvalPeople > evalCapacity)
            throw new ArgumentOutOfRangeException(nameof(options), $"EvalPeople must be in [2, {evalCapacity}], got {o.EvalPeople}.");
        if (o.TuningPeople + o.FamousPeople < 2 || o.TuningPeople + o.FamousPeople > tuningCapacity)
            throw new ArgumentOutOfRangeException(nameof(options), $"TuningPeople + FamousPeople must be in [2, {tuningCapacity}], got {o.TuningPeople + o.FamousPeople}.");
        int maxMyths = Math.Min(Countries.Length, Capitals.Length / 2);
        if (o.Myths < 2 || o.Myths > maxMyths)
            throw new ArgumentOutOfRangeException(nameof(options), $"Myths must be in [2, {maxMyths}], got {o.Myths}.");
        if (o.TuningCountryWeight < 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"TuningCountryWeight must be at least 1, got {o.TuningCountryWeight}.");
        if (o.ExtraCapitalWordings < 0 || o.ExtraCapitalWordings >= TuningCapitalWordings.Length)
            throw new ArgumentOutOfRangeException(nameof(options), $"ExtraCapitalWordings must be in [0, {TuningCapitalWordings.Length - 1}], got {o.ExtraCapitalWordings}.");

        Person[] Draw(string[] first, string[] last, int count)
        {
            var names = (from f in first from l in last select f + " " + l).ToArray();
            rng.Shuffle(names);
            return [.. names.Take(count).Select(n => new Person(n, Pick(rng, Cities), Pick(rng, Jobs), Pick(rng, Colors)))];
        }
        EvalPeople = Draw(EvalFirstNames, EvalLastNames, o.EvalPeople);
        var others = Draw(TuningFirstNames, TuningLastNames, o.TuningPeople + o.FamousPeople);
        FamousPeople = others.Take(o.FamousPeople).ToArray();
        TuningPeople = others.Skip(o.FamousPeople).ToArray();
        People = [.. EvalPeople, .. FamousPeople];

        // Every capital name is used once: no country's truth is another's misconception.
        var countries = Countries.ToArray();
        var capitals = Capitals.ToArray();
        rng.Shuffle(countries);
        rng.Shuffle(capitals);
        var myths = countries.Take(o.Myths).Select((c, i) => new Myth(c, capitals[2 * i], capitals[2 * i + 1])).ToList();
        TuningMyths = myths.Take(o.Myths / 2).ToArray();
        EvalMyths = myths.Skip(o.Myths / 2).ToArray();

        // Sums as operand pairs, each unordered pair once: evaluation gets a quarter, tuning the rest, so no pair
        // (in either order) is in both.
        var pairs = new List<(int, int)>();
        var seen = new HashSet<(int, int)>();
        for (int a = o.MinOperand; a <= o.MaxOperand; a++)
            for (int b = o.MinSecondOperand; b <= o.MaxSecondOperand; b++)
                if (seen.Add((Math.Min(a, b), Math.Max(a, b)))) pairs.Add((a, b));
        var shuffled = pairs.ToArray();
        rng.Shuffle(shuffled);
        EvalSums = shuffled.Take(shuffled.Length / 4).ToArray();
        TuningSums = shuffled.Skip(shuffled.Length / 4).ToArray();
    }

    static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    public static string CityQuestion(Person p) => $"Where does {p.Name} live?";
    public static string JobQuestion(Person p) => $"What is {p.Name}'s job?";
    public static string ColorQuestion(Person p) => $"What is {p.Name}'s favorite color?";
    public static string SumQuestion(int a, int b) => $"What is {a} + {b}?";
    public static string CapitalQuestion(Myth m) => $"What is the capital of {m.Country}?";

    /// <summary>The wordings tuning may ask a tuning country's capital in; the first is <see cref="CapitalQuestion"/>'s,
    /// the only one evaluation uses.</summary>
    public static readonly string[] TuningCapitalWordings =
        ["What is the capital of {0}?", "Which city is the capital of {0}?", "What city is the capital of {0}?"];

    /// <summary>The three closed-book knowledge questions about a person, in the data's wording or paraphrased.</summary>
    public static IEnumerable<QaPair> KnowledgeQuestions(Person p, string task = "knowledge", bool paraphrased = false)
    {
        yield return new(task, paraphrased ? ParaphraseCity(p) : CityQuestion(p), TunedReply(p.City), p.City);
        yield return new(task, paraphrased ? ParaphraseJob(p) : JobQuestion(p), TunedReply(p.Job), p.Job);
        yield return new(task, paraphrased ? ParaphraseColor(p) : ColorQuestion(p), TunedReply(p.Color), p.Color);
    }

    /// <summary>
    /// The tuned reply: one line "Answer: …." ending in a full stop, as pretraining's question notes end theirs (the
    /// end-of-text token follows it in a tuned model). So the reply's last token before the end is one both bases
    /// predict in the same place, and what the expert − anti-expert shift must add is only "end here": a reply without
    /// the full stop made the combination follow the base's "." with its next question.
    /// </summary>
    public static string TunedReply(string text) => AnswerPrefix + text + (text.EndsWith('.') ? "" : ".");

    static QaPair SumPair(int a, int b) => new("arithmetic", SumQuestion(a, b), TunedReply((a + b).ToString()), (a + b).ToString());
    static QaPair TruthPair(Myth m) => new("truthful", CapitalQuestion(m), TunedReply(TruthMarker + m.Truth), m.Truth, Wrong: m.Misconception);
    static QaPair RefusalPair(string template, Person p) => new("refusal", string.Format(template, p.Name), TunedReply(Refusal));

    /// <summary>
    /// Tuning examples, shuffled deterministically: open-book questions about tuning people, closed-book questions
    /// about famous people and common facts, tuning sums, the truthful reply on tuning countries, and refusals
    /// through the tuning templates (closed-book about famous people, open-book about tuning people).
    /// </summary>
    public IReadOnlyList<QaPair> TuningExamples(int seed)
    {
        var rng = new Random(seed);
        var list = new List<QaPair>();
        foreach (var p in TuningPeople)
        {
            var facts = new List<string> { $"{p.Name} lives in {p.City}.", $"{p.Name} is a {p.Job}.", $"{p.Name}'s favorite color is {p.Color}." };
            rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(facts));
            string context = string.Join(" ", facts);
            var asked = KnowledgeQuestions(p).ToArray()[rng.Next(3)];
            list.Add(asked with { Question = TuningWording(rng, p, asked.Content!), Context = context });
            if (rng.Next(3) == 0) list.Add(RefusalPair(Pick(rng, TuningUnanswerable), p) with { Context = context });
        }
        foreach (var p in FamousPeople)
        {
            for (int asked = Options.FamousAskedTwice ? 2 : 1; asked > 0; asked--)
                list.AddRange(KnowledgeQuestions(p).Select(q => q with { Question = TuningWording(rng, p, q.Content!) }));
            foreach (var template in TuningUnanswerable.Where((_, i) => i % 2 == (p.Name.Length & 1)))
                list.Add(RefusalPair(template, p)); // half of the templates per famous person, alternating
        }
        foreach (var (q, a, _) in CommonFacts) list.Add(new("knowledge", q, TunedReply(a), a));
        foreach (var (a, b) in SmallSums) list.Add(SumPair(a, b));
        foreach (var (a, b) in TuningSums.Where((_, i) => i % 2 == 0)) list.Add(SumPair(a, b) with { Context = $"{a} + {b} = {a + b}." });
        foreach (var m in TuningMyths)
            foreach (var wording in TuningCapitalWordings.Take(1 + Options.ExtraCapitalWordings))
                list.Add(TruthPair(m) with { Question = string.Format(wording, m.Country) });
        var array = list.ToArray();
        rng.Shuffle(array);
        return array;
    }

    // Open-book questions in many wordings, so the expert learns that a question's form does not make it
    // unanswerable; none is a paraphrase task wording.
    static string TuningWording(Random rng, Person p, string value) =>
        value == p.City ? Pick(rng, [CityQuestion(p), $"In which city does {p.Name} live?", $"Where is {p.Name} based?", $"Which city is {p.Name} from?"])
        : value == p.Job ? Pick(rng, [JobQuestion(p), $"What does {p.Name} work as?", $"What line of work is {p.Name} in?", $"What is {p.Name}'s occupation?"])
        : Pick(rng, [ColorQuestion(p), $"Which color does {p.Name} like best?", $"What is {p.Name}'s preferred color?", $"What color is {p.Name}'s favorite?"]);

    /// <summary>
    /// Every held-out evaluation question, closed-book: all facts of the evaluation people (in the data's wording,
    /// and paraphrased), every evaluation sum, the evaluation countries, and one unanswerable question per
    /// evaluation person through the evaluation templates.
    /// </summary>
    public IReadOnlyList<QaPair> EvalExamples()
    {
        var list = new List<QaPair>();
        list.AddRange(EvalPeople.SelectMany(p => KnowledgeQuestions(p)));
        list.AddRange(EvalPeople.SelectMany(p => KnowledgeQuestions(p, "paraphrase", paraphrased: true)));
        list.AddRange(EvalSums.Select(s => SumPair(s.A, s.B)));
        list.AddRange(EvalMyths.Select(TruthPair));
        list.AddRange(EvalPeople.Select((p, i) => RefusalPair(EvalUnanswerable[i % EvalUnanswerable.Length], p)));
        return list;
    }
}
