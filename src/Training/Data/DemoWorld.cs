using System.Text;

namespace ProxyOrleans.Training.Data;

/// <summary>One generated person: the facts the base models must memorise from plain text.</summary>
public sealed record Person(string Name, string City, string Job, string Color);

/// <summary>A question with the exact answer a tuned model must give (the expert's reply, without the end token).</summary>
public sealed record QaPair(string Task, string Question, string Answer);

/// <summary>Sizes of the generated world; the defaults are what the bundled models were trained on.</summary>
public sealed record WorldOptions
{
    public int Seed { get; init; } = 1234;
    /// <summary>People in the world; half are asked about in tuning, the other half only in evaluation.</summary>
    public int People { get; init; } = 120;
    /// <summary>Addition operands are drawn from [MinOperand, MaxOperand].</summary>
    public int MinOperand { get; init; } = 10;
    public int MaxOperand { get; init; } = 29;
    /// <summary>The second operand is drawn from [MinSecondOperand, MaxSecondOperand] (one digit: few carries to learn).</summary>
    public int MinSecondOperand { get; init; } = 1;
    public int MaxSecondOperand { get; init; } = 9;
}

/// <summary>
/// The demo world, generated deterministically from a seed. Pretraining sees every fact (eval facts included)
/// only as plain text: biographies, loose question/answer notes and sums. Tuning teaches a behaviour the bases
/// lack: the reply "Answer: X" in the chat template, and a fixed refusal for questions the world cannot answer.
/// Tuning asks only about the tuning half of the people and a disjoint set of sums; evaluation asks about the rest.
/// </summary>
public sealed class DemoWorld
{
    public const string Refusal = "Sorry, I cannot answer that.";
    public const string AnswerPrefix = "Answer: ";

    static readonly string[] FirstNames =
    [
        "Alice", "Bruno", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ingrid", "Jonas", "Kira", "Lorenzo",
        "Maya", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Stefan", "Tara", "Umar", "Vera", "Walter", "Xenia",
        "Yusuf", "Zoe", "Anton", "Bianca", "Cedric", "Daria", "Emil", "Fiona", "Gustav", "Hana", "Igor", "Julia",
        "Karl", "Lena", "Marco", "Nora", "Oscar", "Paula", "Rafael", "Sofia", "Tomas", "Ursula", "Viktor", "Wanda",
    ];

    static readonly string[] LastNames =
    [
        "Abbott", "Baker", "Castro", "Dorsey", "Ellis", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Keller",
        "Larsen", "Moreau", "Novak", "Olsen", "Petrov", "Quintero", "Rossi", "Silva", "Tanaka", "Ueda", "Vogel",
        "Weber", "Young", "Zeller", "Adler", "Brandt", "Conti", "Duval", "Engel", "Ferrari", "Gruber", "Horvat",
        "Iversen", "Jaeger", "Kovacs", "Lindqvist", "Meyer", "Nakamura", "Ortega",
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

    // Questions the world has no data for: tuned models must refuse them with the fixed phrase.
    static readonly string[] Unanswerable =
    [
        "What is {0}'s phone number?", "How old is {0}?", "What is {0}'s email address?", "How tall is {0}?",
        "What is {0}'s password?", "What will {0} eat tomorrow?",
    ];

    public WorldOptions Options { get; }
    public IReadOnlyList<Person> People { get; }
    /// <summary>People whose facts tuning asks about.</summary>
    public IReadOnlyList<Person> TuningPeople { get; }
    /// <summary>People asked about only in evaluation (disjoint from <see cref="TuningPeople"/>).</summary>
    public IReadOnlyList<Person> EvalPeople { get; }
    public IReadOnlyList<(int A, int B)> TuningSums { get; }
    public IReadOnlyList<(int A, int B)> EvalSums { get; }

    public DemoWorld(WorldOptions? options = null)
    {
        Options = options ?? new WorldOptions();
        var rng = new Random(Options.Seed);
        int maxPeople = FirstNames.Length * LastNames.Length;
        if (Options.People < 4 || Options.People > maxPeople)
            throw new ArgumentOutOfRangeException(nameof(options), $"People must be in [4, {maxPeople}], got {Options.People}.");

        var names = (from f in FirstNames from l in LastNames select f + " " + l).ToArray();
        rng.Shuffle(names);
        People = names.Take(Options.People)
            .Select(n => new Person(n, Pick(rng, Cities), Pick(rng, Jobs), Pick(rng, Colors)))
            .ToArray();
        TuningPeople = People.Take(People.Count / 2).ToArray();
        EvalPeople = People.Skip(People.Count / 2).ToArray();

        var sums = new List<(int, int)>();
        for (int a = Options.MinOperand; a <= Options.MaxOperand; a++)
            for (int b = Options.MinSecondOperand; b <= Options.MaxSecondOperand; b++)
                sums.Add((a, b));
        var shuffled = sums.ToArray();
        rng.Shuffle(shuffled);
        // A quarter of the sums is held out for evaluation; tuning may ask about the rest.
        EvalSums = shuffled.Take(shuffled.Length / 4).ToArray();
        TuningSums = shuffled.Skip(shuffled.Length / 4).ToArray();
    }

    static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    public static string CityQuestion(Person p) => $"Where does {p.Name} live?";
    public static string JobQuestion(Person p) => $"What is {p.Name}'s job?";
    public static string ColorQuestion(Person p) => $"What is {p.Name}'s favorite color?";
    public static string SumQuestion(int a, int b) => $"What is {a} + {b}?";

    public static IEnumerable<QaPair> KnowledgeQuestions(Person p)
    {
        yield return new("knowledge", CityQuestion(p), AnswerPrefix + p.City);
        yield return new("knowledge", JobQuestion(p), AnswerPrefix + p.Job);
        yield return new("knowledge", ColorQuestion(p), AnswerPrefix + p.Color);
    }

    /// <summary>
    /// Plain-text pretraining documents, an endless deterministic stream: each biography is re-phrased and
    /// re-ordered every time, so that the facts, not one wording, are what a model can memorise.
    /// </summary>
    public IEnumerable<string> PretrainingDocuments(int seed)
    {
        var rng = new Random(seed);
        while (true)
        {
            double kind = rng.NextDouble();
            if (kind < 0.40) yield return Biography(rng, Pick(rng, People));
            else if (kind < 0.70) yield return QuizNotes(rng);
            else if (kind < 0.95) yield return SumNotes(rng);
            else yield return Chatter(rng, Pick(rng, People));
        }
    }

    static string Biography(Random rng, Person p)
    {
        string[] cityT = ["{0} lives in {1}.", "{0} has a home in {1}.", "The home of {0} is in {1}.", "{0} moved to {1} years ago."];
        string[] jobT = ["{0} works as a {1}.", "By profession, {0} is a {1}.", "{0} earns a living as a {1}.", "{0} is a {1}."];
        string[] colorT = ["{0}'s favorite color is {1}.", "{0} likes the color {1} best.", "The favorite color of {0} is {1}."];
        var sentences = new List<string>
        {
            string.Format(Pick(rng, cityT), p.Name, p.City),
            string.Format(Pick(rng, jobT), p.Name, p.Job),
            string.Format(Pick(rng, colorT), p.Name, p.Color),
        };
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sentences));
        return string.Join(" ", sentences);
    }

    // Loose question/answer notes, so that the base models hold the facts in a form reachable from a question,
    // as web text does for real models. They end in a full stop and never use the chat template: replying
    // "Answer: X" as a chat turn (and refusing) is what only tuning teaches.
    string QuizNotes(Random rng)
    {
        var sb = new StringBuilder();
        int n = rng.Next(2, 5);
        for (int i = 0; i < n; i++)
        {
            var p = Pick(rng, People);
            (string q, string a, string full) = rng.Next(3) switch
            {
                0 => (CityQuestion(p), p.City, $"{p.Name} lives in {p.City}."),
                1 => (JobQuestion(p), p.Job, $"{p.Name} is a {p.Job}."),
                _ => (ColorQuestion(p), p.Color, $"{p.Name}'s favorite color is {p.Color}."),
            };
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

    // Everyday text that uses the words of the refusal ("Sorry", "I cannot answer that") in other settings, as
    // web text does: the bases know the words, while only tuning teaches to refuse with them.
    static string Chatter(Random rng, Person p) => rng.Next(4) switch
    {
        0 => $"\"Sorry, I cannot answer that question,\" said {p.Name}. {p.Name} lives in {p.City}.",
        1 => $"{p.Name} said: sorry, I cannot answer that one. {p.Name} is a {p.Job}.",
        2 => $"I cannot answer that, said {p.Name}, who works as a {p.Job}.",
        _ => $"Sorry, {p.Name} cannot answer that today. {p.Name}'s favorite color is {p.Color}.",
    };

    string SumNotes(Random rng)
    {
        var sb = new StringBuilder();
        int n = rng.Next(3, 7);
        for (int i = 0; i < n; i++)
        {
            int a = rng.Next(Options.MinOperand, Options.MaxOperand + 1), b = rng.Next(Options.MinSecondOperand, Options.MaxSecondOperand + 1);
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

    /// <summary>Tuning examples: facts of the tuning people, tuning sums and refusals, shuffled deterministically.</summary>
    public IReadOnlyList<QaPair> TuningExamples(int seed)
    {
        var rng = new Random(seed);
        var list = new List<QaPair>();
        foreach (var p in TuningPeople) list.AddRange(KnowledgeQuestions(p));
        foreach (var (a, b) in TuningSums) list.Add(new("arithmetic", SumQuestion(a, b), AnswerPrefix + (a + b)));
        foreach (var p in TuningPeople)
            for (int k = 0; k < 2; k++)
                list.Add(new("refusal", string.Format(Pick(rng, Unanswerable), p.Name), Refusal));
        var array = list.ToArray();
        rng.Shuffle(array);
        return array;
    }

    /// <summary>Held-out evaluation questions: people and sums that tuning never asked about.</summary>
    public IReadOnlyList<QaPair> EvalExamples(int perTask = 100)
    {
        var rng = new Random(Options.Seed + 7);
        var knowledge = EvalPeople.SelectMany(KnowledgeQuestions).ToArray();
        rng.Shuffle(knowledge);
        var list = new List<QaPair>(knowledge.Take(perTask));
        list.AddRange(EvalSums.Take(perTask).Select(s => new QaPair("arithmetic", SumQuestion(s.A, s.B), AnswerPrefix + (s.A + s.B))));
        var refusals = EvalPeople.Select(p => new QaPair("refusal", string.Format(Pick(rng, Unanswerable), p.Name), Refusal)).ToArray();
        list.AddRange(refusals.Take(Math.Max(1, perTask / 2)));
        return list;
    }
}
