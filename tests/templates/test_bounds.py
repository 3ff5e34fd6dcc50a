"""Hostile templates that grow memory fail cleanly and quickly, under a hard address-space limit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from precdiff.errors import InputError, TemplateSandboxError
from precdiff.templates import SandboxLimits, render_conversation
from precdiff.templates.bounds import flat_size
from precdiff.templates.sandbox import render_template

# Each case must stop with a TemplateSandboxError naming the limit it broke (never MemoryError).
MEMORY_HOSTILE = {
    "namespace_list_doubling": (
        "{% set ns = namespace(a=[1]) %}{% for i in range(40) %}{% set ns.a = ns.a + ns.a %}{% endfor %}",
        "tried to build a concatenation of 16,777,216 items",
    ),
    "list_repetition": (
        "{{ ([0] * 10**9) | length }}",
        "tried to build a repeated sequence of 1,000,000,000",
    ),
    "string_repetition": ("{{ 'x' * 10**9 }}", "tried to build a repeated sequence of 1,000,000,000"),
    "huge_join": ("{{ (['x' * 15000000] * 1000) | join('') }}", "the result of the 'join' filter of"),
    "huge_join_of_generator": (
        "{{ (['x' * 15000000] * 1000) | map('upper') | join('') }}",
        "the input of the 'join' filter of",
    ),
    "join_method": ("{{ ''.join(['x' * 15000000] * 1000) }}", "tried to build a joined string of"),
    "many_strings_under_the_cap": (
        "{% set ns = namespace(a=[]) %}{% for i in range(200) %}{% set ns.a = ns.a + ['x' * 15000000] %}"
        "{% endfor %}",
        "grew memory by",
    ),
    "many_lists_under_the_cap": (
        "{% set ns = namespace(a=[]) %}{% for i in range(60000) %}{% set ns.a = ns.a + [[i] * 20000] %}"
        "{% endfor %}",
        "grew memory by",
    ),
    "shared_nesting_serialised": (
        "{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
        "{{ ns.a | tojson }}",
        "the result of the 'tojson' filter of",
    ),
    "shared_nesting_printed": (
        "{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
        "{{ ns.a }}",
        "the text of an expression of",
    ),
    "shared_nesting_concatenated": (
        "{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
        "{{ 'x' ~ ns.a }}",
        "tried to build a string of",
    ),
    "namespace_attribute_set": (
        "{% set ns = namespace(a='') %}{% set ns.a = messages * 20000000 %}",
        "tried to build a repeated sequence of 20,000,000",
    ),
}

# Run in a fresh interpreter whose address space is capped at 1.5 GiB (about 0.8 GiB above what importing
# precdiff maps), with a 128 MiB memory budget so that the memory cases stop after little work: a bound
# that failed would end in MemoryError (reported as "ran out of memory"), not in the limit's own message.
_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    from precdiff.errors import TemplateSandboxError
    from precdiff.templates import SandboxLimits
    from precdiff.templates.sandbox import render_template
    limits = SandboxLimits(max_memory=128 * 2**20, max_seconds=600.0)
    out = {}
    for name, source in json.loads(sys.stdin.read()).items():
        try:
            render_template(source, {"messages": [{"role": "user", "content": "hi"}]}, limits)
            out[name] = ["rendered", ""]
        except TemplateSandboxError as exc:
            out[name] = ["TemplateSandboxError", str(exc)]
        except BaseException as exc:
            out[name] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def hostile_outcomes() -> dict[str, list[str]]:
    sources = {name: case[0] for name, case in MEMORY_HOSTILE.items()}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], input=json.dumps(sources), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("name", sorted(MEMORY_HOSTILE))
def test_memory_hostile_template_fails_cleanly_under_rlimit(
    hostile_outcomes: dict[str, list[str]], name: str
) -> None:
    kind, message = hostile_outcomes[name]
    assert kind == "TemplateSandboxError", (kind, message)
    assert MEMORY_HOSTILE[name][1] in message
    assert "ran out of memory" not in message


def test_memory_limit_message() -> None:
    source = MEMORY_HOSTILE["many_strings_under_the_cap"][0]
    with pytest.raises(TemplateSandboxError) as err:
        render_template(source, {"messages": []}, SandboxLimits(max_memory=64 * 2**20))
    assert str(err.value).startswith("chat template grew memory by ")
    assert str(err.value).endswith(
        " MiB while rendering, above the sandbox limit of 64 MiB; a chat template never needs this"
    )


def test_five_megabyte_message_is_refused_before_rendering(tokenizers: dict[str, object]) -> None:
    huge = [{"role": "user", "content": "y" * 5_000_000}]
    with pytest.raises(InputError) as err:
        render_conversation(tokenizers["qwen2"], huge)
    assert str(err.value) == (
        "the conversation (messages, tools and template kwargs as JSON) is more than 2,000,000 characters, "
        "precdiff's input limit; shorten it, or raise the limit (Python: "
        "limits=SandboxLimits(max_input_chars=...))"
    )


def test_flat_size_counts_shared_structure_once_per_occurrence_without_walking_it() -> None:
    nested: list[object] = [1]
    for _ in range(60):
        nested = [nested, nested]
    assert flat_size(nested, 10**6) > 10**6
    assert flat_size({"a": "xy", "b": [1, 2]}, 10**6) == 2 + 8 + 3 + 3 + 4 + 6 + 16
    assert flat_size("abc", 10) == 5


def test_real_templates_unaffected_by_serialisation_checks() -> None:
    out = render_template(
        "{{ messages | tojson }}|{{ messages[0] }}|{{ messages | map(attribute='role') | join(',') }}",
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    )
    assert out == (
        '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]|'
        "{'role': 'user', 'content': 'hi'}|user,assistant"
    )
