"""The extern "C" entry points that kernels/entry_points.cuh's GC_ENTRY* macros generate, read without
a C preprocessor.

A kernel file declares its entry points one line per kernel (``GC_ENTRY_F(name, (params), call)``);
the macros stamp out one ``extern "C" __global__`` function per suffix (``_f32``, ``_i32_f64``, ...).
The argument checker (:mod:`.signature`) needs those functions' parameter lists on every machine, also
where no C compiler exists (a GPU machine with only NVRTC, which has no preprocess-only mode), so
this module expands the invocations itself, from the definitions in ``entry_points.cuh``: the
suffix namespaces' typedefs (what ``T`` and ``I`` mean for each suffix) and the family macros'
bodies (which suffixes a macro generates). It understands only the form that header documents and
refuses anything else with an error naming the file and line; tests/test_nvrtc.py checks that what
it reads equals the entry symbols of every compiled kernel file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .kernel_source import kernels_dir, strip_comments

HEADER = "entry_points.cuh"
_INVOCATION = re.compile(r"\b(?P<macro>GC_ENTRY\w*)\s*\(")
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(?P<macro>GC_ENTRY\w*)\((?P<formals>[^)]*)\)(?P<body>.*)$",
                     re.MULTILINE)
_NAMESPACE = re.compile(r"\bnamespace\s+(?P<suffix>\w+)\s*\{(?P<typedefs>(?:\s*typedef\s+[^;{}]+;)+)\s*\}")
_TYPEDEF = re.compile(r"typedef\s+(?P<type>[^;]+?)\s+(?P<alias>\w+)\s*;")
# The primitive macros' function head: `void [__launch_bounds__ bounds] name##_##suffix params`.
_HEAD = re.compile(r"\bvoid\s+(?:__launch_bounds__\s+\w+\s+)?"
                   r"(?P<name>\w+)\s*##\s*_\s*##\s*(?P<suffix>\w+)\s+(?P<params>\w+)")
_DIRECTIVE = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.MULTILINE)


@dataclass(frozen=True)
class _Primitive:
    """A macro that defines one function: which formal parameters hold its suffix, name and parameters."""

    formals: tuple[str, ...]
    suffix: int
    name: int
    params: int


@dataclass(frozen=True)
class _Family:
    """A macro whose body invokes other GC_ENTRY macros, with argument lists of formal names or literals."""

    formals: tuple[str, ...]
    calls: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class EntryMacros:
    """What entry_points.cuh defines: each suffix's type names, and each GC_ENTRY macro."""

    suffix_types: dict[str, dict[str, str]]
    macros: dict[str, _Primitive | _Family]


def _arguments(text: str, open_paren: int, where: str) -> tuple[list[str], int]:
    """The comma-separated arguments of the parenthesis at ``open_paren`` (commas inside nested
    parentheses do not split, as in the C preprocessor) and the index after the closing one."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(text)):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:i].strip())
                return args, i + 1
        elif char == "," and depth == 1:
            args.append(text[start:i].strip())
            start = i + 1
    raise ValueError(f"{where}: unbalanced parentheses in a GC_ENTRY invocation")


def parse_header(text: str, filename: str = HEADER) -> EntryMacros:
    """Reads the suffix namespaces and GC_ENTRY* macro definitions of entry_points.cuh's text."""
    text = strip_comments(text).replace("\\\n", " ")
    suffix_types = {m["suffix"]: {t["alias"]: " ".join(t["type"].split()) for t in _TYPEDEF.finditer(m["typedefs"])}
                    for m in _NAMESPACE.finditer(text)}
    macros: dict[str, _Primitive | _Family] = {}
    for match in _DEFINE.finditer(text):
        macro, body = match["macro"], match["body"]
        formals = tuple(f.strip() for f in match["formals"].split(","))
        where = f"{filename}: #define {macro}"
        if "extern" in body:
            head = _HEAD.search(body)
            if head is None or not {head["suffix"], head["name"], head["params"]} <= set(formals):
                raise ValueError(f"{where}: a defining macro must end its head with 'name##_##suffix params'")
            macros[macro] = _Primitive(formals, formals.index(head["suffix"]), formals.index(head["name"]),
                                       formals.index(head["params"]))
            continue
        calls, rest, end = [], [], 0
        for call in _INVOCATION.finditer(body):
            if call.start() < end:
                continue
            args, end_of_call = _arguments(body, call.end() - 1, where)
            rest.append(body[end:call.start()])
            calls.append((call["macro"], tuple(args)))
            end = end_of_call
        rest.append(body[end:])
        if "".join(rest).strip() or not calls:
            raise ValueError(f"{where}: a family macro's body must be GC_ENTRY invocations only")
        macros[macro] = _Family(formals, tuple(calls))
    if not suffix_types or not macros:
        raise ValueError(f"{filename}: no suffix namespaces or GC_ENTRY macros found")
    return EntryMacros(suffix_types, macros)


@functools.lru_cache(maxsize=None)
def header_macros() -> EntryMacros:
    """The macros of the kernels folder's entry_points.cuh."""
    return parse_header((kernels_dir() / HEADER).read_text())


def _expand(macros: EntryMacros, macro: str, args: list[str], where: str) -> list[tuple[str, str]]:
    """(function name, parameter list) of each function an invocation defines."""
    definition = macros.macros.get(macro)
    if definition is None:
        raise ValueError(f"{where}: unknown entry-point macro {macro} (entry_points.cuh defines "
                         f"{', '.join(sorted(macros.macros))})")
    named = [f for f in definition.formals if f != "..."]
    variadic = len(named) < len(definition.formals)
    if len(args) < len(named) or (not variadic and len(args) > len(named)):
        raise ValueError(f"{where}: {macro} takes {'at least ' if variadic else ''}{len(named)} arguments "
                         f"({', '.join(definition.formals)}), got {len(args)}")
    if isinstance(definition, _Primitive):
        suffix, name, params = (args[definition.suffix], args[definition.name], args[definition.params])
        types = macros.suffix_types.get(suffix)
        if types is None:
            raise ValueError(f"{where}: {macro}: unknown suffix {suffix!r} (entry_points.cuh has namespaces "
                             f"for {', '.join(sorted(macros.suffix_types))})")
        if not re.fullmatch(r"\w+", name) or not (params.startswith("(") and params.endswith(")")):
            raise ValueError(f"{where}: {macro} needs a kernel name and a parenthesized parameter list, "
                             f"got {name!r} and {params!r}")
        typed = re.sub(r"\b\w+\b", lambda m: types.get(m.group(0), m.group(0)), params)
        return [(f"{name}_{suffix}", typed)]
    values = dict(zip(named, args))
    values["__VA_ARGS__"] = ", ".join(args[len(named):])
    functions = []
    for callee, callee_args in definition.calls:
        functions += _expand(macros, callee, [values.get(a, a) for a in callee_args], where)
    return functions


def expand_entry_points(text: str, filename: str = "<source>", macros: EntryMacros | None = None) -> str:
    """``text`` (comments already removed) with each GC_ENTRY invocation replaced by the
    ``extern "C" __global__ void name(params) {}`` definitions it generates, with its types spelled
    out; newlines are kept, so positions keep their line numbers. Invocations inside preprocessor
    directives (a #define of the file's own) are left alone."""
    macros = header_macros() if macros is None else macros
    # Directive lines blanked out (offsets kept) so that only the file's own code is scanned.
    scanned = _DIRECTIVE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    pieces, end = [], 0
    for match in _INVOCATION.finditer(scanned):
        if match.start() < end:
            continue
        where = f"{filename}:{text.count(chr(10), 0, match.start()) + 1}"
        args, end_of_call = _arguments(scanned, match.end() - 1, where)
        functions = _expand(macros, match["macro"], args, where)
        pieces.append(text[end:match.start()])
        pieces.append(" ".join(f'extern "C" __global__ void {name}{params} {{}}' for name, params in functions))
        pieces.append("\n" * text.count("\n", match.start(), end_of_call))
        end = end_of_call
    pieces.append(text[end:])
    return "".join(pieces)
