using System.Text.Json.Nodes;
using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Inference.Tokenization.Jinja;
using Xunit;
using static ProxyOrleans.Inference.Tests.Tokenization.References;

namespace ProxyOrleans.Inference.Tests.Tokenization;

/// <summary>
/// Our Jinja renderer against jinja2 with transformers' settings, character for character, on the real
/// chat_template of each reference family (Llama-2's from Meta's reference text, as its package ships none)
/// and on a battery of the constructs chat templates use.
/// </summary>
public class ChatTemplateReferenceTests
{
    private static ChatMessage S(string c) => new("system", c);
    private static ChatMessage U(string c) => new("user", c);
    private static ChatMessage A(string c) => new("assistant", c);

    private static readonly ChatMessage[][] Conversations =
    [
        [U("Hello!")],
        [S("You are a helpful assistant."), U("Hi")],
        [S("Be brief."), U("Hi"), A("Hello! How can I help?"), U("What is 2+2?")],
        [U("Hi"), A("Hello")],
        [U("  spaced \n\t"), A(" answer with trailing space  \n"), U("\n\nnext\n")],
        [S("Tu es un assistant. 日本語 🚀"), U("Ça va? 👍🏽 \"double\" 'single' {{ braces }} {% tags %} \\n literal")],
        [U("line1\nline2\n\nline3")],
        [U("")],
        [S("only a system prompt")],
        [A("an assistant first")],
        [U("a"), U("b")],
        [S("s"), U("q"), A("<think>\nsome reasoning\n</think>\n\nthe answer"), U("and then?")],
        [U("q1"), A("a1"), U("q2"), A("a2"), U("q3")],
    ];

    public static TheoryData<string> TemplateFamilies => new() { "llama2", "llama3", "llama3_1", "qwen3", "gemma3", "chatml", "qwen2" };

    // The family's template and special tokens: the package's own where it ships one.
    private static (string Jinja, string? Bos, string? Eos) Template(string family) => family switch
    {
        "llama2" => (ChatTemplates.Llama2Jinja, TokenString(FamilyConfig("llama2"), "bos_token"), TokenString(FamilyConfig("llama2"), "eos_token")),
        "chatml" => (ChatTemplates.ChatMlJinja, null, "<|im_end|>"),
        "qwen2" => (ChatTemplates.Qwen2Jinja, null, "<|im_end|>"),
        _ => ((string)FamilyConfig(family)["chat_template"]!, TokenString(FamilyConfig(family), "bos_token"), TokenString(FamilyConfig(family), "eos_token")),
    };

    [Theory]
    [MemberData(nameof(TemplateFamilies))]
    public void Family_template_renders_every_conversation_as_jinja2(string family)
    {
        var (jinja, bos, eos) = Template(family);
        var template = new JinjaChatTemplate(jinja, bos, eos);
        var cases = new List<RenderCase>();
        var ours = new List<string>();
        foreach (var conversation in Conversations)
            foreach (bool generationPrompt in new[] { true, false })
            {
                var variables = new JsonObject
                {
                    ["messages"] = Messages(conversation), ["add_generation_prompt"] = generationPrompt, ["tools"] = null, ["documents"] = null,
                };
                if (bos is not null) variables["bos_token"] = bos;
                if (eos is not null) variables["eos_token"] = eos;
                cases.Add(new RenderCase(jinja, variables));
                ours.Add(Outcome(() => template.Render(conversation, generationPrompt)));
            }
        var reference = RenderWithJinja2(cases);
        for (int i = 0; i < cases.Count; i++)
            Assert.True(reference[i] == ours[i],
                $"{family}, case {Describe(cases[i].Variables)}:\n jinja2: {Show(reference[i])}\n ours:   {Show(ours[i])}");
        Assert.Contains(reference, r => !r.StartsWith("error:", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("llama2")]
    [InlineData("llama3")]
    [InlineData("chatml")]
    public void Built_in_family_override_renders_as_jinja2_renders_its_reference_template(string family)
    {
        var (jinja, bos, eos) = family switch
        {
            "llama2" => (ChatTemplates.Llama2Jinja, "<s>", "</s>"),
            "llama3" => (ChatTemplates.Llama3Jinja, "<|begin_of_text|>", "<|eot_id|>"),
            _ => (ChatTemplates.ChatMlJinja, (string?)null, "<|im_end|>"),
        };
        var builtIn = ChatTemplates.ByName(family, bos, eos);
        var cases = new List<RenderCase>();
        var ours = new List<string>();
        foreach (var conversation in Conversations)
            foreach (bool generationPrompt in new[] { true, false })
            {
                var variables = new JsonObject { ["messages"] = Messages(conversation), ["add_generation_prompt"] = generationPrompt, ["eos_token"] = eos };
                if (bos is not null) variables["bos_token"] = bos;
                cases.Add(new RenderCase(jinja, variables));
                ours.Add(OutcomeOfBuiltIn(() => builtIn.Render(conversation, generationPrompt)));
            }
        var reference = RenderWithJinja2(cases);
        for (int i = 0; i < cases.Count; i++)
            Assert.True(reference[i] == ours[i], $"{family}, case {Describe(cases[i].Variables)}:\n jinja2: {Show(reference[i])}\n ours:   {Show(ours[i])}");
    }

    // The built-in classes refuse misordered roles with an ArgumentException carrying the template's message.
    private static string OutcomeOfBuiltIn(Func<string> render)
    {
        try { return render(); }
        catch (ArgumentException e) { return "error: TemplateError: " + e.Message.Split(" (Parameter")[0]; }
    }

    [Fact]
    public void Qwen3_tools_tool_calls_reasoning_and_thinking_switch_render_as_jinja2()
    {
        string jinja = (string)FamilyConfig("qwen3")["chat_template"]!;
        var tools = JsonNode.Parse("""
            [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city — °C",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
              "required": ["city"]}}}]
            """)!;
        var messages = JsonNode.Parse("""
            [{"role": "system", "content": "You are Qwen."},
             {"role": "user", "content": "Weather in Zürich?"},
             {"role": "assistant", "content": "", "reasoning_content": "Need the tool.",
              "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}},
                             {"function": {"name": "get_weather", "arguments": "{\"city\": \"Bern\"}"}}]},
             {"role": "tool", "content": "{\"temp\": 21.5}"},
             {"role": "tool", "content": "sunny"},
             {"role": "assistant", "content": "<think>\nlooked it up\n</think>\n\nIt is 21.5 °C."},
             {"role": "user", "content": "<tool_response>x</tool_response>"}]
            """)!;
        var variants = new List<JsonObject>();
        foreach (bool withTools in new[] { true, false })
            foreach (JsonNode? thinking in new JsonNode?[] { null, JsonValue.Create(false), JsonValue.Create(true) })
            {
                var v = new JsonObject
                {
                    ["messages"] = messages.DeepClone(), ["add_generation_prompt"] = true, ["eos_token"] = "<|im_end|>",
                    ["tools"] = withTools ? tools.DeepClone() : null, ["documents"] = null,
                };
                if (thinking is not null) v["enable_thinking"] = thinking.DeepClone();
                variants.Add(v);
            }
        AssertSameAsJinja2(variants.Select(v => new RenderCase(jinja, v)).ToList());
    }

    /// <summary>Constructs real templates use, each checked against jinja2 (HF settings).</summary>
    public static readonly (string Template, string Variables)[] Constructs =
    [
        // Whitespace control, trim_blocks, lstrip_blocks and their "+" opt-outs.
        ("{% for m in messages %}\n  {{ m.role }}\n  {% if m.content %}\n    [{{ m.content }}]\n  {% endif %}\n{% endfor %}\ntail\n", Msgs),
        ("a  {%- if true -%}  b  {%- endif -%}  c\n\n{#- comment -#}\n  d {# kept #}  e\n  {# own line #}\nf", "{}"),
        ("  {%+ if true %}x{% endif +%}\ny\n  {{ 'v' }}  {% if true %}z{% endif %}\n", "{}"),
        ("{% if true %}\r\nwindows\r\n{% endif %}\r\nend\n\n", "{}"),
        ("{%- set x = 1 -%}\n\n   {{- x -}}   \n\n{{ x }}", "{}"),
        // loop.* and for/else, filters on the iterable, break/continue, unpacking.
        ("{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}|{% endfor %}", Msgs),
        ("{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}{{ ',' if not loop.last }}{% else %}none{% endfor %}", Msgs),
        ("{% for x in [] %}x{% else %}empty{% endfor %}{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}", "{}"),
        ("{% for k, v in {'b': 1, 'a': [1, 2]}.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", """{"d": {"z": true, "y": null}}"""),
        ("{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.nextitem.role if loop.nextitem is defined else '-' }} {{ loop.cycle('odd', 'even') }} {% endfor %}", Msgs),
        ("{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}{% endfor %}", "{}"),
        // Scoping: set inside a loop stays there; namespace() carries out.
        ("{% set x = 'outer' %}{% for m in messages %}{% set x = m.role %}{{ x }} {% endfor %}{{ x }}", Msgs),
        ("{% set x = 'o' %}{% for i in [1, 2, 3] %}{% if i == 1 %}{% set x = 'a' %}{% endif %}{{ x }}|{% endfor %}{{ x }}{% for i in [1, 2] %}{{ y }}{% set y = i %}|{% endfor %}", "{}"),
        ("{% for a in [1] %}{% set q = 1 %}{% for b in [2] %}{{ q }}{% set q = 3 %}{{ q }}{% endfor %}{{ q }}{% endfor %}{% macro m() %}{{ z }}{% endmacro %}{% set z = 5 %}{{ m() }}", "{}"),
        ("{% set ns = namespace(found=false, last=-1, items=[]) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.last = loop.index0 %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.last }} {{ ns.items }}", Msgs),
        ("{% set block %}inner {{ 1 + 2 }}\n{% endset %}[{{ block }}]{% set a, b = 1, 'two' %}{{ a }}{{ b }}", "{}"),
        // Macros.
        ("{% macro render(m, prefix='>') %}{{ prefix }}{{ m.role | upper }}: {{ m.content | trim }}{% endmacro %}{% for m in messages %}{{ render(m) }}|{{ render(m, prefix='#') }}\n{% endfor %}", Msgs),
        // Expressions: operators, precedence, comparisons, membership, conditionals, literals.
        ("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 - -1 }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }}", "{}"),
        ("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'b' > 'a' }} {{ 'x' in 'xyz' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ not 1 == 2 }} {{ true and 'yes' }} {{ false or 0 or '' }} {{ none is none }}", "{}"),
        ("{{ 'y' if messages else 'n' }} {{ messages[0]['role'] }} {{ messages[-1].content }} {{ messages | length - 1 }} {{ messages[1:] | length }} {{ messages[::-1][0].role }}", Msgs),
        ("{{ [1, 'a', none, true, 1.5, [2], {'k': 'v'}] }} {{ {'a': 1, 'b': 'x'} }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 3.0 * 2 }} {{ 10 / 4 }} {{ \"it's\" }} {{ ['it\\'s'] }}", "{}"),
        ("{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ [1, 2, 3, 4][::2] }} {{ 'h\u00e9llo 🚀'[1] }}{{ 'h\u00e9llo 🚀' | length }}", "{}"),
        // Tests.
        ("{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ x is string }} {{ d is mapping }} {{ l is iterable }} {{ x is iterable }} {{ 3 is number }} {{ 3 is integer }} {{ 3.5 is float }} {{ true is boolean }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ l is sequence }} {{ 1 is eq 1 }} {{ n is not none }} {{ x is not string }} {{ false is false }} {{ 1 is true }}",
            """{"x": "s", "n": null, "d": {"a": 1}, "l": [1]}"""),
        // Filters.
        ("{{ '  hi  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ messages | length }}|{{ 'Hi' | upper }}{{ 'Hi' | lower }}|{{ y | default('dflt') }}|{{ '' | default('e', true) }}|{{ none | default('n') }}|{{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}|{{ 'abc' | first }}", Msgs),
        ("{{ messages | map(attribute='role') | join(', ') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='content') | join('/') }}|{{ messages | selectattr('content') | list | length }}", Msgs),
        ("{{ [1, 2, 3] | join }}|{{ [1, 2] | string }}|{{ 42 | string }}{{ none | string }}|{{ [1, 2, 3] | reverse | list }}|{{ 'abc' | reverse }}|{{ 'a-b-c' | replace('-', '+') }}|{{ '3' | int + 1 }}|{{ 'x' | int }}|{{ '2.5' | float }}|{{ -3 | abs }}|{{ [3, 1, 2] | sort }}|{{ 'hello world' | title }}{{ 'hELLO' | capitalize }}", "{}"),
        ("{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ [] | tojson }}|{{ {} | tojson }}|{{ 'é\"\\\n\t' | tojson }}|{{ [1.5, none, true] | tojson }}|{{ d | tojson(sort_keys=true) }}",
            """{"d": {"name": "f", "params": {"b": [1, {"c": "ü🚀"}], "a": null}, "ok": false, "n": 2.0}}"""),
        ("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(4, true) }}|{{ '<b>&' | e }}|{{ '<b>' | safe }}|{% filter upper %}shout {{ 'this' }}{% endfilter %}", "{}"),
        ("{{ ['a', 'b'] | map('upper') | join }}|{{ [1, 0, 2] | select | list }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3] | reject('even') | list }}|{{ d | items | list }}", """{"d": {"k": "v"}}"""),
        ("{{ ['b', 'A', 'a', 'B', 'c'] | unique | list }}|{{ ['b', 'A', 'a'] | unique(true) | list }}|{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}|{{ ['b', 'A', 'c'] | min }}|{{ [] | max }}|{{ [1, 2, 3] | sum }}|{{ messages | map(attribute='content') | map('length') | sum }}|{{ {'b': 1, 'A': 3, 'c': 2} | dictsort }}|{{ {'b': 1, 'A': 3, 'c': 2} | dictsort(by='value', reverse=true) }}|{{ messages | max(attribute='content') }}", Msgs),
        // String and dict methods.
        ("{{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\n\nhi'.lstrip('\n') }}|{{ 'hi  '.rstrip() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'aXbX'.replace('X', '-') }}|{{ 'abcb'.find('b') }}{{ 'abcb'.count('b') }}|{{ '-'.join(['x', 'y']) }}|{{ 'hello world'.title() }}|{{ 'hello'.capitalize() }}", "{}"),
        ("{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 'dz') }}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d['a'] }}{{ d.a }}|{{ d.missing is defined }}", """{"d": {"a": 1, "b": 2}}"""),
        ("{% if m.content.split('</think>')[-1].lstrip('\n') %}{{ m.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }}{% endif %}",
            """{"m": {"content": "<think>\n\nplan\n\n</think>\n\nanswer"}}"""),
        // Globals: raise_exception, strftime_now, dict(), range().
        ("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %j %p %I %y') }}|{{ strftime_now('%-d') }}|{{ dict(a=1, b='x') }}|{{ range(3) | list }}{{ range(1, 7, 2) | list }}", "{}"),
        ("{% if messages | length > 1 %}{{ raise_exception('Only one message, please: ' ~ messages | length) }}{% endif %}", Msgs),
        ("{{ none.x }}|{{ 4 / 2 }}|{{ 10 ** -1 }}|{{ 1 == true }}|{{ [1, 2] + [3] }}|{{ not messages | length }}|{{ x | default('d') }}|{{ 21.5 }}|{{ 1e-5 }}|{{ -2 ** 2 }}|{{ 'a' ~ 'b' | upper }}|{{ [1, 2, 3][-1:] }}|{{ 'x' * 0 }}|{{ {'a': none} | tojson }}|{{ y is none }}|{{ messages[1].content[:2] }}",
            """{"x": null, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo!"}]}"""),
        ("{% if true %}  \n{% endif %}|\n\t{% if true %}\t{{ 'in' }}\n\t{% endif %}\n  {{- 'v' }}\n  {%- if true %} {% endif %}\n{% for i in [1, 2] -%}\n  {{ i }}\n{%- endfor %}\n", "{}"),
        ("{% set x = 1 %}{% for m in messages %}{%- if m.role == 'assistant' %}\n  {% generation %}{{ m.content }}{% set x = 2 %}{{ x }}{% endgeneration %}\n{% endif %}{% endfor %}{{ x }}", Msgs),
        // Undefined renders empty, iterates empty and compares falsy.
        ("[{{ nothing }}][{% for x in nothing %}x{% endfor %}][{{ nothing == none }}][{{ not nothing }}][{{ messages[10] is defined }}][{{ {}.a is defined }}]", Msgs),
        ("{{ '{{' }} {{ \"{% raw %}\" }} {% raw %}{{ not rendered }}{% endraw %} done", "{}"),
    ];

    private const string Msgs = """{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": " U1 "}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]}""";

    [Fact]
    public void Constructs_render_as_jinja2()
    {
        AssertSameAsJinja2(Constructs.Select(c => new RenderCase(c.Template, (JsonObject)JsonNode.Parse(c.Variables)!)).ToList());
    }

    [Fact]
    public void The_comparison_sees_a_single_whitespace_difference()
    {
        // Rendering without HF's trim_blocks changes one newline: the reference check must notice it.
        const string jinja = "{% if true %}\nx{% endif %}";
        var reference = RenderWithJinja2([new RenderCase(jinja, new JsonObject())]);
        Assert.Equal("x", reference[0]);
        Assert.Equal(reference[0], JinjaTemplate.Parse(jinja).Render(new Dictionary<string, object?>()));
        Assert.NotEqual(reference[0], JinjaTemplate.Parse(jinja, new JinjaOptions { TrimBlocks = false }).Render(new Dictionary<string, object?>()));
    }

    [Theory]
    [InlineData("{% include 'header.jinja' %}", "'{% include %}'")]
    [InlineData("{{ messages | wordwrap(10) }}", "the filter 'wordwrap'")]
    [InlineData("{% if x is escaped %}{% endif %}", "the test 'escaped'")]
    [InlineData("{% for m in messages recursive %}{% endfor %}", "recursive")]
    [InlineData("{{ '%s' % 'x' }}", "printf-style")]
    public void Unsupported_construct_is_named_with_the_override(string jinja, string construct)
    {
        var e = Assert.Throws<InvalidDataException>(() =>
        {
            var t = new JinjaChatTemplate(jinja, "<s>", "</s>", "model/tokenizer_config.json");
            t.Render([U("Hi")]);
        });
        Assert.Contains(construct, e.Message);
        Assert.Contains("model/tokenizer_config.json", e.Message);
        Assert.Contains("llama2, llama3, chatml", e.Message);
        Assert.Contains("--chat-template", e.Message);
        Assert.IsAssignableFrom<JinjaException>(e.InnerException);
    }

    [Fact]
    public void Syntax_errors_name_the_line()
    {
        var e = Assert.Throws<InvalidDataException>(() => new JinjaChatTemplate("ok\n{% if x %}\nno end", null, null));
        Assert.Contains("endif", e.Message);
        var e2 = Assert.Throws<InvalidDataException>(() => new JinjaChatTemplate("a\n\n{{ 1 + }}", null, null));
        Assert.Contains("line 3", e2.Message);
    }

    private static void AssertSameAsJinja2(IReadOnlyList<RenderCase> cases)
    {
        var reference = RenderWithJinja2(cases);
        var failures = new List<string>();
        for (int i = 0; i < cases.Count; i++)
        {
            var variables = cases[i].Variables.ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
            string ours = Outcome(() => JinjaTemplate.Parse(cases[i].Template, new JinjaOptions { Now = () => new DateTime(2026, 1, 2, 3, 4, 5) }).Render(variables));
            if (ours != reference[i])
                failures.Add($"template {Show(cases[i].Template)}\n jinja2: {Show(reference[i])}\n ours:   {Show(ours)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} differ:\n" + string.Join("\n", failures));
    }

    // The text, or the failure in the reference's words for raise_exception (the one error both must agree on).
    private static string Outcome(Func<string> render)
    {
        try { return render(); }
        catch (JinjaRaisedException e) { return "error: TemplateError: " + e.Message; }
        catch (Exception e) { return "error: ours: " + e.GetType().Name + ": " + e.Message; }
    }

    private static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s,
        new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
