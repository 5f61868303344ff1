"""Source lint (msgspec's test_cpylint idea): every cx_* function of csrc/connectome.h is
declared in connectome/_core.pxd, with the same return type and parameter types.

The source tree is found relative to this file (tests/../csrc), so the test runs wherever
the tests directory sits inside a checkout; a missing tree there is a failure, not a skip.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "csrc" / "connectome.h"
PXD = ROOT / "connectome" / "_core.pxd"


def _strip_c_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", " ", text)


def _norm_type(t: str) -> str:
    t = t.replace("*", " * ")
    return " ".join(t.split())


def _param_types(params: str) -> list[str]:
    params = params.strip()
    if params in ("", "void"):
        return []
    out = []
    for p in params.split(","):
        p = _norm_type(p)
        # drop the parameter name (the last identifier, unless the param is only a type)
        toks = p.split()
        if (
            len(toks) >= 2
            and re.fullmatch(r"[A-Za-z_]\w*", toks[-1])
            and toks[-1] not in ("int", "float", "double")
        ):
            toks = toks[:-1]
        out.append(" ".join(toks))
    return out


def parse_header(text: str) -> dict:
    text = _strip_c_comments(text)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.MULTILINE)  # preprocessor lines
    flat = " ".join(text.split())
    decls = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\s*\b(cx_\w+)\s*\(([^;{}()]*)\)\s*;", flat):
        ret = m.group(1).split(";")[-1].split("}")[-1]
        ret = re.sub(r"^.*\b(typedef|extern)\b.*$", "", ret)
        decls[m.group(2)] = (_norm_type(ret), _param_types(m.group(3)))
    return decls


def parse_pxd(text: str) -> dict:
    decls = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].rstrip()
        m = re.match(
            r"\s*([A-Za-z_][\w\s\*]*?)\s*\b(cx_\w+)\s*\(([^()]*)\)\s*(?:except[^:]*|noexcept)?\s*$", line
        )
        if m:
            decls[m.group(2)] = (_norm_type(m.group(1)), _param_types(m.group(3)))
    return decls


def test_source_tree_is_present():
    assert HEADER.is_file(), f"{HEADER} not found (tests/ must sit next to csrc/)"
    assert PXD.is_file(), f"{PXD} not found"


def test_parsers_understand_both_files():
    hdr = parse_header(HEADER.read_text())
    pxd = parse_pxd(PXD.read_text())
    # sanity: the parsers find the well-known entry points with their arities
    assert hdr["cx_proj_forward"][1] == ["const cx_proj *", "cx_index", "const cx_real *", "cx_real *", "int"]
    assert hdr["cx_strerror"][0] == "const char *"
    assert hdr["cx_openmp_enabled"][1] == []
    assert len(hdr) >= 30
    assert "cx_proj_new" in pxd


def test_every_header_function_is_declared_in_pxd():
    hdr = parse_header(HEADER.read_text())
    pxd = parse_pxd(PXD.read_text())
    missing = sorted(set(hdr) - set(pxd))
    assert not missing, f"declared in connectome.h but not in _core.pxd: {missing}"
    mismatched = {name: (hdr[name], pxd[name]) for name in hdr if hdr[name] != pxd[name]}
    assert not mismatched, "signatures differ (header, pxd):\n" + "\n".join(
        f"  {k}: {v[0]} vs {v[1]}" for k, v in mismatched.items()
    )
    extra = sorted(set(pxd) - set(hdr))
    assert not extra, f"declared in _core.pxd but not in connectome.h: {extra}"


def test_lint_catches_a_missing_declaration():
    hdr = parse_header("cx_status cx_proj_frobnicate(cx_proj *p, int n);\nint cx_openmp_enabled(void);")
    pxd = parse_pxd("    int cx_openmp_enabled()\n")
    assert set(hdr) - set(pxd) == {"cx_proj_frobnicate"}
    assert hdr["cx_proj_frobnicate"] == ("cx_status", ["cx_proj *", "int"])
