"""Run by test_tensorrt_bindings.py in a fresh interpreter: load one version's real TensorRT
bindings (scripts/fetch_tensorrt_bindings.sh) as ``tensorrt`` and report, as JSON, what the
backend's own functions make of them and whether the attributes and call signatures it uses
exist there. Reads classes, enums and docstrings only; nothing calls into libnvinfer.

Usage: python trt_bindings_probe.py PACKAGE_DIR
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

BACKEND = Path(__file__).resolve().parents[1] / "asymtrack_ros" / "backends" / "tensorrt_backend.py"


def _split_params(text: str) -> List[str]:
    params, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[(" and 1 or (-1 if ch in "])" else 0)
        if ch == "," and depth == 0:
            params.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        params.append(current.strip())
    return params


def signatures(func: Any, name: str) -> List[Tuple[int, Optional[int]]]:
    """(required, maximum or None) positional arguments after ``self``, one per overload, from the
    pybind11 docstring's signature lines."""
    result = []
    for line in (getattr(func, "__doc__", None) or "").splitlines():
        match = re.match(rf"^\s*(?:\d+\.\s*)?{re.escape(name)}\((.*)\)\s*(?:->.*)?$", line)
        if not match:
            continue
        params = _split_params(match.group(1))
        if params and params[0].startswith("self"):
            params = params[1:]
        if params == ["*args", "**kwargs"]:
            continue
        required = sum(1 for p in params if "=" not in p and not p.startswith("*"))
        unlimited = any(p.startswith("*") and not p.startswith("**") for p in params)
        result.append((required, None if unlimited else len(params)))
    return result


# Passed as a callable rather than called in the module: (attribute, arguments it gets).
CALLBACKS = [("deserialize_cuda_engine", 1)]


def backend_calls() -> List[Tuple[str, int]]:
    """(attribute, positional argument count) of every method call in the backend module."""
    tree = ast.parse(BACKEND.read_text())
    return [(node.func.attr, len(node.args)) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)] + CALLBACKS


def backend_attributes() -> List[str]:
    """Attributes the backend reads, less its own (methods, fields, ``self.x``)."""
    tree = ast.parse(BACKEND.read_text())
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    own |= {n.target.id for n in ast.walk(tree)
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    own |= {t.attr for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            for t in ([t] if not isinstance(t, ast.Tuple) else t.elts) if isinstance(t, ast.Attribute)}
    return sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} - own)


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def probe(trt: Any) -> Dict[str, Any]:
    from asymtrack_ros.backends import tensorrt_backend as tb

    owner = {attr: cls for api in tb.API_USED.values() for cls, attrs in api.items() for attr in attrs if cls}
    missing = {api: [f"{cls or 'tensorrt'}.{a}" for cls, attrs in table.items() for a in attrs
                     if not hasattr(getattr(trt, cls) if cls else trt, a)]
               for api, table in tb.API_USED.items()}
    calls = {}
    for attr, nargs in backend_calls():
        cls = owner.get(attr) or (attr if attr in tb.API_USED["common"][""] else None)
        if cls is None or not hasattr(trt, cls):
            continue
        target = getattr(trt, cls)
        func = getattr(target, attr, None) if attr != cls else getattr(target, "__init__", None)
        if func is None:
            continue
        sigs = signatures(func, "__init__" if attr == cls else attr)
        ok = any(req <= nargs and (most is None or nargs <= most) for req, most in sigs)
        calls[f"{cls}.{attr}({nargs} args)"] = ok if sigs else "no signature in the docstring"
    api_names = set()
    for cls in ("Builder", "IBuilderConfig", "OnnxParser", "Runtime", "ICudaEngine", "IExecutionContext",
                "Logger"):
        api_names.update(n for n in dir(getattr(trt, cls)) if not n.startswith("_"))
    declared = {a for api in tb.API_USED.values() for attrs in api.values() for a in attrs}
    return {
        "version": trt.__version__,
        "missing": missing,
        "calls": calls,
        "undeclared": sorted(api_names & set(backend_attributes()) - declared),
        "plans": {p: _try(lambda p=p: asdict(tb.network_plan(trt, p))) for p in ("fp32", "fp16")},
        "flag_bits": {n: int(v) for n, v in trt.NetworkDefinitionCreationFlag.__members__.items()},
        "io_api": {r: _try(lambda r=r: tb.resolve_io_api(trt, r)) for r in ("auto", "tensors", "bindings")},
        "dtypes": {n: _try(lambda n=n: str(tb.numpy_dtype(getattr(trt.DataType, n))))
                   for n in trt.DataType.__members__},
        "uses_nptype": "nptype" in backend_attributes(),
    }


def main(package_dir: str) -> None:
    sys.path.insert(0, package_dir)
    import tensorrt_bindings

    sys.modules["tensorrt"] = tensorrt_bindings  # what `import tensorrt` gives with the libs wheel
    print(json.dumps(probe(tensorrt_bindings)))


if __name__ == "__main__":
    main(sys.argv[1])
