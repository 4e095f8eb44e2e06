"""No code path in src/rnnkit can unpickle arbitrary objects: every ``torch.load`` passes
``weights_only=True``, ``np.load`` never ``allow_pickle=True``, and nothing imports pickle, dill,
cloudpickle, joblib or shelve. The source is parsed with ``ast`` (docstrings and comments that mention
pickle are fine); the checker is itself tested on small bad and good sources so that it can fail.

One narrow allowance: ``import pickle`` may stay when the module uses nothing of it but the exception
classes (``except pickle.UnpicklingError``, what ``torch.load(weights_only=True)`` raises on a refused
object); any other use (``pickle.load``, ``Unpickler``, passing the module on) is a finding.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rnnkit"

PICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}
PICKLE_EXCEPTIONS = {"PickleError", "PicklingError", "UnpicklingError"}
TORCH_LOADS = {"torch.load", "torch.serialization.load"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``a.b.c`` for an Attribute / Name chain, with the base name replaced by what it was imported as."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every unpickling risk in ``source``, as ``file:line: what``; [] when there is none."""
    tree = ast.parse(source, filename)
    findings: list[str] = []
    aliases: dict[str, str] = {}  # local name -> the module or object it was imported as
    pickler_imports: dict[str, ast.AST] = {}  # local name bound to a pickler module -> its import
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                local = a.asname or a.name.split(".")[0]
                aliases[local] = a.name if a.asname else local
                if a.name.split(".")[0] in PICKLERS:
                    pickler_imports[local] = node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                if node.module.split(".")[0] in PICKLERS and a.name not in PICKLE_EXCEPTIONS:
                    findings.append(f"{filename}:{node.lineno}: from {node.module} import {a.name}")
    calls = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}

    # a pickler module may be imported only to catch its exceptions: every use `name.<exception>`
    exception_uses = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                      and isinstance(node.value, ast.Name) and node.attr in PICKLE_EXCEPTIONS}
    for local, imported in pickler_imports.items():
        uses = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == local]
        other = [n for n in uses if id(n) not in exception_uses]
        if aliases[local].split(".")[0] not in ("pickle", "_pickle") or not uses:
            findings.append(f"{filename}:{imported.lineno}: import {aliases[local]}")
        for n in other:
            findings.append(f"{filename}:{n.lineno}: uses {aliases[local]} beyond its exception classes")

    # torch.load must say weights_only=True; np.load must not allow pickles
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        name = _dotted(node, aliases)
        call = calls.get(id(node))
        if name in TORCH_LOADS:
            if call is None:
                findings.append(f"{filename}:{node.lineno}: {name} referenced without being called "
                                "(its weights_only cannot be checked)")
                continue
            kw = {k.arg: k.value for k in call.keywords}
            if None in kw:
                findings.append(f"{filename}:{node.lineno}: {name}(**...) hides weights_only")
            elif not _is_true(kw.get("weights_only")):
                findings.append(f"{filename}:{node.lineno}: {ast.unparse(call)} lacks weights_only=True")
        elif name == "numpy.load" and call is not None:
            allow = {k.arg: k.value for k in call.keywords}.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                findings.append(f"{filename}:{node.lineno}: {ast.unparse(call)} may unpickle")
    return sorted(set(findings))


def source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_source_file_can_unpickle_arbitrary_objects():
    files = source_files()
    assert len(files) > 50, f"expected the rnnkit sources under {SRC}, found {len(files)} .py files"
    findings = [f for path in files for f in unsafe_uses(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)))]
    assert findings == [], "unsafe loading in src/rnnkit:\n" + "\n".join(findings)


def test_the_scan_sees_the_real_torch_load():
    """Not vacuous: checkpoint.py's torch.load(weights_only=True) is found (and passes), and flipping it fails."""
    source = (SRC / "train" / "checkpoint.py").read_text(encoding="utf-8")
    assert "weights_only=True)" in source and unsafe_uses(source) == []
    flipped = source.replace("weights_only=True)", "weights_only=False)")
    assert any("lacks weights_only=True" in f for f in unsafe_uses(flipped))


BAD = {
    "import pickle": "import pickle\ndef f(b):\n    return pickle.loads(b)\n",
    "import as": "import pickle as p\np.load(open('x', 'rb'))\n",
    "from pickle": "from pickle import loads\n",
    "from pickle Unpickler": "from pickle import Unpickler\n",
    "dill": "import dill\n",
    "pickle unused": "import pickle\n",
    "pickle dumps next to exception": "import pickle\ntry:\n    pickle.loads(b)\nexcept pickle.UnpicklingError:\n    pass\n",
    "cloudpickle": "import cloudpickle.cloudpickle\n",
    "pickle passed on": "import pickle, torch\ntorch.load('x', weights_only=True, pickle_module=pickle)\n",
    "torch.load bare": "import torch\ntorch.load('x')\n",
    "torch.load False": "import torch\ntorch.load('x', map_location='cpu', weights_only=False)\n",
    "torch.load variable": "import torch\ntorch.load('x', weights_only=flag)\n",
    "torch.load kwargs": "import torch\ntorch.load('x', **kw)\n",
    "torch alias": "import torch as T\nT.load('x')\n",
    "from torch import load": "from torch import load\nload('x')\n",
    "from torch import load as": "from torch import load as read\nread('x')\n",
    "serialization": "import torch.serialization\ntorch.serialization.load('x')\n",
    "torch.load escapes": "import torch\nloader = torch.load\n",
    "np.load pickle": "import numpy as np\nnp.load('x.npy', allow_pickle=True)\n",
}

GOOD = {
    "docstring": '"""Loading never unpickles: no pickle, no dill."""\n# import pickle (a comment)\nx = "pickle.loads"\n',
    "weights_only": "import torch\nstate = torch.load(path, map_location='cpu', weights_only=True)\n",
    "exception only": "import pickle\ntry:\n    pass\nexcept pickle.UnpicklingError:\n    pass\n",
    "from exception": "from pickle import UnpicklingError\n",
    "other load": "import json, numpy as np\njson.load(f)\nnp.load('x.npy')\nnp.load('x.npy', allow_pickle=False)\n",
    "unrelated attribute": "import torch\nmodel.load(x)\nself.torch.load(x)\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_checker_flags_unsafe_source(name):
    assert unsafe_uses(textwrap.dedent(BAD[name])), f"{name!r} was not flagged"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_checker_accepts_safe_source(name):
    assert unsafe_uses(textwrap.dedent(GOOD[name])) == []
