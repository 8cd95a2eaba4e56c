"""What an evaluation depends on, as plain JSON: the evaluation cache's keys are built from it.

A cached output and its reward may be reused only when everything that could change them is the same:
the pipeline (model, few-shot pool, seed, documents...), the grader (its spec, or its function's code)
and the configuration and example. :func:`fingerprint` turns such an object into JSON data:

- an object with a ``fingerprint()`` method: what that returns (the built-in pipelines say exactly what
  their outputs depend on);
- a grader spec, or a grader built from one (an object with a ``spec`` dict): the spec, and the files of
  a local judge or reward model it names;
- a function: its qualified name and code (bytecode, constants, names and defaults; not line numbers,
  not the values a closure captures: pass those in the configuration, or give the objective a ``name``);
- any other object: its class and its public attributes, to a few levels (then its ``repr``).

>>> def grade(item, sample):
...     return float(sample["output_text"] == item["answer"])
>>> fingerprint(grade)["function"]
'grade'
>>> fingerprint({"b": (1, 2.5), "a": None})
{'a': None, 'b': [1, 2.5]}
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from pathlib import Path
from typing import Any

MAX_DEPTH = 6


def digest(data: Any) -> str:
    """sha256 of JSON data (keys sorted)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def code_digest(code: types.CodeType) -> str:
    """The code's behaviour without its position: bytecode, constants (nested code too), names."""
    parts: list[Any] = [code.co_code.hex(), list(code.co_names), list(code.co_varnames)]
    for c in code.co_consts:
        parts.append(code_digest(c) if isinstance(c, types.CodeType) else repr(c))
    return digest(parts)


def path_fingerprint(path: str | Path) -> dict:
    """A file's content hash; a directory's files with sizes and modification times (weights can be
    gigabytes: a rewrite changes the time)."""
    p = Path(path)
    if p.is_file():
        return {"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    files = sorted(f for f in p.rglob("*") if f.is_file())
    return {
        "path": str(p),
        "files": [[str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns] for f in files],
    }


def fingerprint(obj: Any, depth: int = 0) -> Any:
    """JSON data that changes when ``obj``'s behaviour can (see the module docstring)."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, dict):
        return {str(k): fingerprint(v, depth + 1) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [fingerprint(v, depth + 1) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((fingerprint(v, depth + 1) for v in obj), key=lambda v: json.dumps(v, default=str))
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, types.FunctionType):
        return {
            "function": obj.__qualname__,
            "module": obj.__module__,
            "code": code_digest(obj.__code__),
            "defaults": fingerprint(obj.__defaults__, depth + 1),
        }
    if isinstance(obj, types.MethodType):
        return {"method": fingerprint(obj.__func__, depth + 1), "self": fingerprint(obj.__self__, depth + 1)}
    if isinstance(obj, types.BuiltinFunctionType | type):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if callable(getattr(obj, "fingerprint", None)):
        return {"class": kind, "fingerprint": obj.fingerprint()}
    if isinstance(getattr(obj, "spec", None), dict):  # a grader built from a spec (base_url: from the env)
        return {"class": kind, "spec": spec_fingerprint(obj.spec), "base_url": getattr(obj, "base_url", None)}
    if hasattr(obj, "__dict__") and depth < MAX_DEPTH:
        state = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        return {"class": kind, "state": fingerprint(state, depth + 1)}
    if hasattr(obj, "tobytes"):  # numpy arrays: their content
        return {"class": kind, "sha256": hashlib.sha256(obj.tobytes()).hexdigest()}
    return {"class": kind, "repr": repr(obj)}


def spec_fingerprint(spec: dict | str | Path) -> Any:
    """A grader spec (a dict, or a JSON/YAML file's content) plus, for every ``model`` in it that is a
    local directory, that directory's files; a model grader without ``base_url`` adds the environment's."""
    from reinforge.graders.registry import load_spec

    spec = load_spec(spec)
    local: list = []
    judge = False

    def walk(node: Any) -> None:
        nonlocal judge
        if isinstance(node, dict):
            model = node.get("model")
            if isinstance(model, str) and Path(model).is_dir():
                local.append(path_fingerprint(model))
            judge = judge or (node.get("type") in ("score_model", "label_model") and not node.get("base_url"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    env = [os.environ.get("REINFORGE_GRADER_BASE_URL"), os.environ.get("OPENAI_BASE_URL")] if judge else []
    return {"spec": fingerprint(spec), "local_models": local, "judge_env": env}
