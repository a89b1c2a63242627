"""The JSON report's schema (a JSON Schema subset), and a small validator for it.

A report is ``{"schema_version": 1, "header": {...}, "rows": [...], "summary": [...]}``. Each row
is one benchmarked op (or, for ``list``, one listed item); the fields a subcommand fills:

- conv: case, shape, direction (forward|backward_data|backward_weight), impl (an algorithm,
  ``auto``, ``tuned``), algo (what ``auto``/``tuned`` ran), status, max_error, median_ms, best_ms,
  gflops, torch_ms, ratio_torch (median time / PyTorch's median; < 1: gpuconv is faster).
- pool, bn, im2col, elementwise: case, op, status, max_error, median_ms, best_ms, gbps (each tensor read or
  written once), pct_copy (% of a copy's GB/s in the same run), torch_ms, ratio_torch.
- model: case (model name), mode (train|inference), impl (gpuconv|torch), status, median_ms,
  best_ms, images_per_s, peak_measured_bytes, peak_estimated_bytes; with the PyTorch twin (built from
  gpuconv's own module tree, timed in the same process), torch_ms, ratio_torch, torch_best_ms and
  ratio_torch_best (best time / PyTorch's best).
- memory: case, mode, status, peak_estimated_bytes, peak_measured_bytes, estimate_ratio.
- ddp: case (``N ranks``), ranks, impl (the engine: mpi|nccl), status, median_ms, best_ms (a training
  step of the slowest rank), images_per_s (all ranks), speedup (images_per_s / the first row's),
  allreduce_ms (per step, the gradient all-reduce time backward did not hide, on the last rank to get there).
- list: case (the item's name), kind, status (ok|unavailable), detail.
- warmup: case (load kernel files | first training and inference steps), kind ("warmup"), status,
  seconds, detail.

``status``: ok; FAILED (the correctness check against the numpy path failed: no time is given);
n/a (the algorithm does not apply: its argument check said why, in ``note``); error (it raised:
``note``); unavailable.
"""

from __future__ import annotations

from typing import Any

_NUMBER = {"type": "number"}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING = {"type": "string"}

ROW = {
    "type": "object",
    "required": ["case", "status"],
    "additionalProperties": False,
    "properties": {
        "case": _STRING,
        "shape": _STRING,
        "direction": {"enum": ["forward", "backward_data", "backward_weight"]},
        "impl": _STRING,
        "algo": _STRING,
        "op": _STRING,
        "mode": {"enum": ["train", "inference"]},
        "kind": _STRING,
        "status": {"enum": ["ok", "FAILED", "n/a", "error", "unavailable"]},
        "max_error": _NUMBER_OR_NULL,
        "median_ms": {"type": "number", "minimum": 0},
        "best_ms": {"type": "number", "minimum": 0},
        "gflops": _NUMBER,
        "gbps": _NUMBER,
        "pct_copy": _NUMBER,
        "torch_ms": {"type": "number", "minimum": 0},
        "ratio_torch": _NUMBER,
        "torch_best_ms": {"type": "number", "minimum": 0},
        "ratio_torch_best": _NUMBER,
        "images_per_s": _NUMBER,
        "peak_measured_bytes": {"type": "integer", "minimum": 0},
        "peak_estimated_bytes": {"type": "integer", "minimum": 0},
        "estimate_ratio": _NUMBER,
        "ranks": {"type": "integer", "minimum": 1},
        "speedup": _NUMBER,
        "allreduce_ms": {"type": "number", "minimum": 0},
        "seconds": {"type": "number", "minimum": 0},
        "detail": _STRING,
        "note": _STRING,
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "gpuconv-bench report",
    "type": "object",
    "required": ["schema_version", "header", "rows", "summary"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"enum": [1]},
        "header": {
            "type": "object",
            "required": ["command", "machine", "cpu", "gpu", "backend", "versions", "date", "settings", "notes"],
            "additionalProperties": False,
            "properties": {
                "command": {"enum": ["conv", "pool", "bn", "im2col", "elementwise", "model", "memory", "ddp", "list", "warmup"]},
                "machine": _STRING,
                "cpu": _STRING,
                "gpu": {"type": ["string", "null"]},
                "backend": {"enum": ["numpy", "cupy", "emulated"]},
                "versions": {"type": "object", "additionalProperties": _STRING},
                "date": _STRING,
                "settings": {"type": "object"},
                "notes": {"type": "array", "items": _STRING},
                "copy_gbps": _NUMBER,  # conv on a GPU: a 256 MiB device-to-device copy (read + written)
            },
        },
        "rows": {"type": "array", "items": ROW},
        "summary": {"type": "array", "items": _STRING},
    },
}

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return name == "number" or isinstance(value, int)
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: dict[str, Any] = SCHEMA, path: str = "$") -> list[str]:
    """Errors of ``value`` against ``schema`` ([] when valid), each naming the JSON path.

    Supports the keywords the report's schema uses: type, enum, required, properties,
    additionalProperties (bool or schema), items, minimum.
    """
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(value, n) for n in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__} {value!r:.60}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: expected one of {schema['enum']}, got {value!r:.60}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        errors.append(f"{path}: expected >= {schema['minimum']}, got {value!r}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required key {key!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += validate(item, properties[key], f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                errors += validate(item, extra, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors
