"""Issue 22 (H): every figure README.md and docs/cost.md quote is the tool's own output
(tests/doc_figures.py computes them). Stale? `PGHOME_UPDATE_FIGURES=1` rewrites the docs; read the diff."""

from __future__ import annotations

import os
import re

from tests.doc_figures import BLOCK, ROOT, blocks, patterns, render


def test_the_quoted_figures_are_the_tools_output() -> None:
    generated = blocks()
    singles = patterns()
    stale = []
    for name in ("README.md", "docs/cost.md"):
        path = ROOT / name
        text = path.read_text()
        mine = [(p, v) for f, p, v in singles if f == name]
        assert all(re.search(p, text, flags=re.M) for p, _ in mine), f"{name}: a quoted figure's sentence is gone"
        assert BLOCK.search(text), f"{name} has no generated figures block"
        fresh = render(text, generated, mine)
        if fresh != text:
            if os.environ.get("PGHOME_UPDATE_FIGURES"):
                path.write_text(fresh)
            else:
                stale.append(name)
    assert not stale, f"figures in {', '.join(stale)} differ from the tool's output; run PGHOME_UPDATE_FIGURES=1 pytest {__file__} and read the diff"
