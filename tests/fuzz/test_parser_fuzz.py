"""Parser + lowering fuzz: random mutations of valid programs give a kernel or a diagnostic, never a traceback.

Seeds: every ``examples/*.vm`` program, every ```` ```vm ```` block of docs/language.md, and random kernels
of the differential generator. Mutations (1 to 4 per program, shrunk by Hypothesis): delete, duplicate or
swap tokens, insert or substitute random tokens (keywords, punctuation, dtype and builtin names, extreme
numbers), rename an identifier to another one of the program, replace a number by an extreme one or an
operator by another, insert a statement `z = A OP B;` over names and extreme numbers,
truncate, and insert junk characters (control characters, NUL, non-ASCII).

Every mutant goes through ``vm.compile_source`` (parse *and* lower), so both the parser and the lowering
are covered. Allowed outcomes: a kernel, or a ``VMError`` (``VMSyntaxError``, ``VMTypeError``, ...) with a
source location inside the text that renders; the one location-less diagnostic allowed is "defines N
kernels: choose one". Anything else -- a Python exception, a hang (over ``HANG_SECONDS``) -- fails with
the mutated program.

Budget: ``DEFAULT_EXAMPLES`` fixed-seed examples in the default run; with ``--fuzz-long``,
``VMLANG_FUZZ_EXAMPLES`` with a random seed (``VMLANG_FUZZ_SEED`` to reproduce one).
"""
from __future__ import annotations

import os
import pathlib
import random
import re
import signal
import traceback

import pytest
from hypothesis import HealthCheck, given, seed as hseed, settings, strategies as st

import vmlang as vm
from vmlang.ir.dtypes import all_dtypes

from .strategies import cases

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_EXAMPLES = 400
LONG_EXAMPLES = int(os.environ.get("VMLANG_FUZZ_EXAMPLES", "2000"))
HANG_SECONDS = 20


def _seeds() -> list[str]:
    out = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.vm"))]
    doc = ROOT / "docs" / "language.md"
    if doc.exists():
        out += re.findall(r"```vm\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    return out


SEEDS = _seeds()
TOKEN = re.compile(r'//[^\n]*|"[^"\n]*"?|\d[\w.]*(?:[eE][+-]\d+)?|\w+|\s+|\S')
KEYWORDS = ["kernel", "grid", "warps", "for", "in", "range", "if", "else", "and", "or", "not", "true", "false",
            "None", "global", "shared", "register", "layout", "block", "block.x"]
PUNCT = list("(){}[]<>=+-*/%&|^~!:;,.") + ["==", "!=", "<=", ">=", "<<", ">>", "+=", "<<=", ": +", "//", '"']
BUILTINS = ["load", "store", "cast", "view", "lookup", "codebook", "where", "sum", "max", "min", "dot", "zeros",
            "full", "empty", "arange", "reshape", "permute", "trans", "broadcast", "insert", "atomic_add",
            "assume", "barrier", "exp", "log", "sqrt", "abs", "cdiv", "fill=", "masked=false", "saturate=true",
            "axis=-1", 'layout("(4,32):(32,1)")', 'layout("bad")']
NUMBERS = ["0", "-1", "1", "3", "7", "2147483647", "2147483648", "4294967296", "-2147483649", "1" + "0" * 30,
           "1e400", "1e-400", "0.0", "-0.0", "0x", "0b2", "0xffffffffffffffff", "1_", "65536", "128", "1e38",
           "100000000", "999999999999"]
OPERATORS = ["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "<", ">", "==", "!=", "<=", ">=", "and", "or"]
JUNK = ["\x00", "\t", "\r", "\x0b", "\x7f", "é", "λ", "\u200b", "\ufeff", "💥", "\\", "$", "@", "#", "`", "'"]
VOCAB = KEYWORDS + PUNCT + BUILTINS + NUMBERS + [d.name for d in all_dtypes()] + ["f16", "bf16", "i32", "u8"]


def tokens(text: str) -> list[str]:
    toks = TOKEN.findall(text)
    assert "".join(toks) == text
    return toks


@st.composite
def mutants(draw, sources=None):
    """(original, mutated) source texts."""
    if sources is None and draw(st.integers(0, 3)) == 3:
        text = draw(cases()).source
    else:
        text = draw(st.sampled_from(sources or SEEDS))
    original = text
    for _ in range(draw(st.integers(1, 4))):
        toks = tokens(text)
        if not toks:
            break
        nonspace = [i for i, t in enumerate(toks) if not t.isspace()] or [0]
        i = nonspace[draw(st.integers(0, len(nonspace) - 1))]
        j = nonspace[draw(st.integers(0, len(nonspace) - 1))]
        op = draw(st.sampled_from(("delete", "replace", "insert", "dup", "swap", "number", "rename", "truncate",
                                   "junk", "operator", "statement")))
        if op == "delete":
            toks[i] = ""
        elif op == "dup":
            toks[i] = toks[i] + " " + toks[i] if draw(st.booleans()) else toks[i] * 2
        elif op == "swap":
            toks[i], toks[j] = toks[j], toks[i]
        elif op in ("insert", "replace"):
            new = draw(st.sampled_from(VOCAB))
            toks[i] = (new + " " + toks[i]) if op == "insert" else new
        elif op == "number":
            nums = [k for k, t in enumerate(toks) if t[:1].isdigit()] or [i]
            toks[nums[draw(st.integers(0, len(nums) - 1))]] = draw(st.sampled_from(NUMBERS))
        elif op == "statement":      # a new statement after a ';' or '{': z = A OP B; over names and numbers
            ends = [k for k, t in enumerate(toks) if t in (";", "{")] or [i]
            names = [t for t in toks if re.fullmatch(r"[A-Za-z_]\w*", t)] or ["x"]
            operands = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(names))
            a, b = draw(operands), draw(operands)
            k = ends[draw(st.integers(0, len(ends) - 1))]
            toks[k] = toks[k] + f" z = {a} {draw(st.sampled_from(OPERATORS))} {b};"
        elif op == "operator":
            ops = [k for k, t in enumerate(toks) if t in OPERATORS or t in ("<", ">", "=")] or [i]
            toks[ops[draw(st.integers(0, len(ops) - 1))]] = draw(st.sampled_from(OPERATORS))
        elif op == "rename":
            names = [k for k, t in enumerate(toks) if re.fullmatch(r"[A-Za-z_]\w*", t)] or [i]
            a = names[draw(st.integers(0, len(names) - 1))]
            b = names[draw(st.integers(0, len(names) - 1))]
            toks[a] = toks[b]
        elif op == "truncate":
            text = "".join(toks)
            text = text[:draw(st.integers(0, len(text)))]
            continue
        else:
            text = "".join(toks)
            p = draw(st.integers(0, len(text)))
            text = text[:p] + draw(st.sampled_from(JUNK)) + text[p:]
            continue
        text = "".join(toks)
    return original, text


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def compile_or_diagnose(text: str) -> str:
    """Compile ``text``; return "kernel" or "diagnostic", or raise AssertionError explaining the failure."""
    old = signal.signal(signal.SIGALRM, _alarm) if hasattr(signal, "SIGALRM") else None
    if old is not None:
        signal.alarm(HANG_SECONDS)
    try:
        vm.compile_source(text, "m.vm")
        return "kernel"
    except vm.VMError as e:
        rendered = e.render()
        assert e.message, "a diagnostic without a message"
        if e.loc is None:
            assert re.search(r"defines \d+ kernels", e.message), f"a diagnostic without a location: {e.message!r}"
        else:
            n_lines = text.count("\n") + 1
            assert e.loc.file == "m.vm" and 1 <= e.loc.line <= n_lines + 1 and e.loc.column >= 1, \
                f"diagnostic at an impossible location {e.loc}: {rendered}"
        return "diagnostic"
    except _Hang:
        raise AssertionError(f"compiling took more than {HANG_SECONDS} s") from None
    except RecursionError:
        raise AssertionError("RecursionError instead of a diagnostic") from None
    except Exception:  # noqa: BLE001 - the point of the test
        raise AssertionError("a Python exception instead of a diagnostic:\n" + traceback.format_exc(limit=6)) \
            from None
    finally:
        if old is not None:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def _check(pair, tally):
    original, text = pair
    try:
        tally[compile_or_diagnose(text)] += 1
    except AssertionError as e:
        import difflib
        diff = "\n".join(difflib.unified_diff(original.splitlines(), text.splitlines(), "seed", "mutant",
                                               lineterm="", n=1))
        raise AssertionError(f"{e}\n\nthe mutation (diff from the seed program):\n{diff}\n\n"
                             f"mutated program (repr, so control characters show):\n{text!r}") from None


SETTINGS = dict(deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.large_base_example])


def test_seeds_compile():
    for text in SEEDS:
        assert compile_or_diagnose(text) == "kernel", text


def test_mutated_programs_give_kernels_or_diagnostics():
    import collections
    tally = collections.Counter()

    @settings(max_examples=DEFAULT_EXAMPLES, derandomize=True, **SETTINGS)
    @given(mutants())
    def fuzz(pair):
        _check(pair, tally)

    fuzz()
    assert tally["diagnostic"] > 0.3 * DEFAULT_EXAMPLES, dict(tally)
    assert tally["kernel"] > 0, dict(tally)


@pytest.mark.fuzz_long
def test_mutated_programs_long():
    import collections
    tally = collections.Counter()
    seed_value = int(os.environ.get("VMLANG_FUZZ_SEED") or random.SystemRandom().randrange(2 ** 32))
    print(f"\nparser fuzz campaign: examples={LONG_EXAMPLES} seed={seed_value} (VMLANG_FUZZ_SEED={seed_value} to repeat)")

    @hseed(seed_value)
    @settings(max_examples=LONG_EXAMPLES, **SETTINGS)
    @given(mutants())
    def fuzz(pair):
        _check(pair, tally)

    fuzz()
    print(f"parser fuzz result: {dict(tally)}")
