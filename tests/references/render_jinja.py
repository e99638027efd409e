"""Renders chat templates the way Hugging Face transformers does (apply_chat_template), as the tests' reference.

Reads a JSON list of cases from stdin: {"template": str, "variables": {...}, "now": "YYYY-MM-DDTHH:MM:SS"}.
Writes a JSON list of {"text": str} or {"error": "ExceptionType: message"}, one per case.
The environment is transformers' own: ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, the
loopcontrols extension and the {% generation %} tag, its tojson filter (json.dumps without HTML escaping) and the raise_exception and
strftime_now globals. Run with Debian's python3 (python3-jinja2), which scripts/install-test-deps.sh installs.
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(Extension):
    """transformers' {% generation %} tag when no assistant mask is asked for: the body is called like a macro."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def render(case):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    now = datetime.fromisoformat(case.get("now", "2026-01-02T03:04:05"))
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    try:
        return {"text": env.from_string(case["template"]).render(**case["variables"])}
    except Exception as e:  # the tests compare the kind of failure too
        return {"error": f"{type(e).__name__}: {e}"}


if __name__ == "__main__":
    cases = json.load(sys.stdin)
    json.dump([render(c) for c in cases], sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
