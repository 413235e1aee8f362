"""Operator inventory of a `.tflite` file, with GPU-delegate and NNAPI support from their docs.

Why: one operator an accelerator cannot take splits the graph, and the CPU<->accelerator hand-offs
often make the split model slower than the CPU alone. This report says, before anyone reaches for a
phone, which ops the model uses (count, versions, tensor dtypes) and whether the documented
supported-op lists cover them. The lists are data below, each citing its source; anything they do
not cover is reported as "unsure", never guessed. `benchmark_model --use_gpu=true` (see
export.bench --android) logs how many nodes a delegate really took.

    python -m export.ops_report model.tflite [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ai_edge_litert import schema_py_generated as _tfl

# LiteRT GPU delegate, "GPU ML operations support": https://ai.google.dev/edge/litert/performance/gpu
# (formerly tensorflow/lite/g3doc/performance/gpu.md). Ops supported in 16- and 32-bit float, with
# the highest documented op version; "by default, all ops are only supported at version 1", and
# the delegate's quantization support enables the quantized versions (e.g. ADD v2).
GPU_DOCUMENTED_MAX_VERSION: dict[str, int] = {
    "ADD": 1,
    "AVERAGE_POOL_2D": 1,
    "CONCATENATION": 1,
    "CONV_2D": 1,
    "DEPTHWISE_CONV_2D": 2,
    "EXP": 1,
    "FULLY_CONNECTED": 1,
    "LOGICAL_AND": 1,
    "LOGISTIC": 1,
    "LSTM": 2,  # basic LSTM only
    "MAX_POOL_2D": 1,
    "MAXIMUM": 1,
    "MINIMUM": 1,
    "MUL": 1,
    "PAD": 1,
    "PRELU": 1,
    "RELU": 1,
    "RELU6": 1,
    "RESHAPE": 1,
    "RESIZE_BILINEAR": 3,
    "SOFTMAX": 1,
    "STRIDED_SLICE": 1,
    "SUB": 1,
    "TRANSPOSE_CONV": 1,
}

# Android NDK Neural Networks API reference, OperationCode ("available since" Android API level):
# https://developer.android.com/ndk/reference/group/neural-networks . The API level from which NNAPI
# defines the operation TFLite's NNAPI delegate maps each builtin onto. The delegate adds its own
# per-op constraints (tensorflow/lite/delegates/nnapi/nnapi_delegate.cc) and the vendor driver
# decides what is really accelerated, so "yes" means "NNAPI can express it", not "fast".
NNAPI_SINCE_API: dict[str, int] = {
    **dict.fromkeys(
        "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
        "FLOOR FULLY_CONNECTED L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC "
        "MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR SOFTMAX SPACE_TO_DEPTH "
        "TANH".split(),
        27,
    ),
    **dict.fromkeys(
        "BATCH_TO_SPACE_ND DIV MEAN PAD SPACE_TO_BATCH_ND SQUEEZE STRIDED_SLICE SUB "
        "TRANSPOSE".split(),
        28,
    ),
    **dict.fromkeys(
        "ABS ARG_MAX ARG_MIN CAST EQUAL EXP EXPAND_DIMS GATHER GREATER GREATER_EQUAL LESS "
        "LESS_EQUAL LOG LOG_SOFTMAX LOGICAL_AND LOGICAL_NOT LOGICAL_OR MAXIMUM MINIMUM NEG "
        "NOT_EQUAL PADV2 POW PRELU QUANTIZE REDUCE_ANY REDUCE_MAX REDUCE_MIN REDUCE_PROD "
        "RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SIN SLICE SPLIT SQRT SUM TILE TOPK_V2 "
        "TRANSPOSE_CONV".split(),
        29,
    ),
    **dict.fromkeys("ELU FILL HARD_SWISH".split(), 30),
}

NOTES = (
    "NNAPI is deprecated from Android 15 (API 35): the GPU delegate, or a vendor NPU delegate, is "
    "the way forward; NNAPI rows matter only for older phones.",
    "NNAPI has native signed int8 tensors (TENSOR_QUANT8_ASYMM_SIGNED) only from Android 11 "
    "(API 30).",
    "GPU 'likely': the op is documented for float at a lower version; its quantized version needs "
    "the delegate's quantization support. 'unsure': not in the documented list (the delegate may "
    "still take it).",
    "Check on a device: benchmark_model --use_gpu=true / --use_nnapi=true logs how many nodes "
    "the delegate replaced (python -m export.bench --android writes the script).",
)

_OP_NAMES = {v: k for k, v in vars(_tfl.BuiltinOperator).items() if not k.startswith("_")}
_DTYPE_NAMES = {v: k.lower() for k, v in vars(_tfl.TensorType).items() if not k.startswith("_")}


@dataclass(frozen=True)
class OpUsage:
    """One operator type as used in the model, with accelerator support from the lists above."""

    name: str
    count: int
    versions: tuple[int, ...]
    input_dtypes: tuple[str, ...]
    output_dtypes: tuple[str, ...]
    gpu: str
    nnapi: str


@dataclass(frozen=True)
class OpsReport:
    """All operators of a model plus how many tensors of each dtype it holds."""

    ops: tuple[OpUsage, ...]
    tensor_dtypes: dict[str, int]


def _op_name(code: _tfl.OperatorCodeT) -> str:
    # The schema keeps small codes in deprecated_builtin_code; the real one is the larger.
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == _tfl.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{(code.customCode or b'?').decode()}"
    return _OP_NAMES.get(builtin, f"UNKNOWN_{builtin}")


def _gpu_support(name: str, versions: tuple[int, ...]) -> str:
    documented = GPU_DOCUMENTED_MAX_VERSION.get(name)
    if documented is None:
        return "unsure"
    return "yes" if max(versions) <= documented else f"likely (v{max(versions)})"


def _nnapi_support(name: str) -> str:
    since = NNAPI_SINCE_API.get(name)
    return f"yes (API {since}+)" if since else "unsure"


def analyse(tflite_model: bytes) -> OpsReport:
    """Count operators (all subgraphs) and tensor dtypes; ValueError if not a TFLite model."""
    if len(tflite_model) < 8 or not _tfl.Model.ModelBufferHasIdentifier(tflite_model, 0):
        raise ValueError("not a TFLite model: the flatbuffer file identifier is not 'TFL3'")
    try:
        model = _tfl.ModelT.InitFromObj(_tfl.Model.GetRootAs(tflite_model, 0))
    except Exception as error:  # a truncated flatbuffer fails anywhere inside
        raise ValueError(f"not a readable TFLite model: {error}") from error

    names = [_op_name(code) for code in model.operatorCodes or []]
    counts: Counter[str] = Counter()
    versions: dict[str, set[int]] = {}
    inputs: dict[str, set[str]] = {}
    outputs: dict[str, set[str]] = {}
    tensor_dtypes: Counter[str] = Counter()
    for graph in model.subgraphs or []:
        tensors = graph.tensors or []
        tensor_dtypes.update(_DTYPE_NAMES.get(t.type, str(t.type)) for t in tensors)
        for op in graph.operators or []:
            name = names[op.opcodeIndex]
            counts[name] += 1
            versions.setdefault(name, set()).add(model.operatorCodes[op.opcodeIndex].version)
            for indices, seen in ((op.inputs, inputs), (op.outputs, outputs)):
                seen.setdefault(name, set()).update(
                    _DTYPE_NAMES.get(tensors[i].type, str(tensors[i].type))
                    for i in (indices if indices is not None else [])
                    if i >= 0
                )
    ops = []
    for name, count in counts.most_common():
        op_versions = tuple(sorted(versions[name]))
        ops.append(
            OpUsage(
                name=name,
                count=count,
                versions=op_versions,
                input_dtypes=tuple(sorted(inputs[name])),
                output_dtypes=tuple(sorted(outputs[name])),
                gpu=_gpu_support(name, op_versions),
                nnapi=_nnapi_support(name),
            )
        )
    return OpsReport(ops=tuple(ops), tensor_dtypes=dict(tensor_dtypes.most_common()))


def markdown(report: OpsReport, title: str) -> str:
    """The report as Markdown: one row per operator, then the dtype summary and the notes."""
    lines = [
        f"# Operators of {title}",
        "",
        "| op | count | versions | input dtypes | output dtypes | GPU delegate | NNAPI |",
        "|---|---|---|---|---|---|---|",
    ]
    for op in report.ops:
        cells = [
            op.name,
            str(op.count),
            ", ".join(map(str, op.versions)),
            ", ".join(op.input_dtypes),
            ", ".join(op.output_dtypes),
            op.gpu,
            op.nnapi,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    dtypes = ", ".join(f"{name} x{count}" for name, count in report.tensor_dtypes.items())
    lines += ["", f"Tensors by dtype: {dtypes}.", "", *(f"- {note}" for note in NOTES), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.ops_report",
        description="List a .tflite model's operators and their GPU-delegate / NNAPI support.",
    )
    parser.add_argument("model", type=Path, metavar="MODEL.tflite")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"no such model file: {args.model}")
    try:
        report = analyse(args.model.read_bytes())
    except ValueError as error:
        parser.error(f"{args.model}: {error}")
    if args.json:
        payload = {"model": args.model.name, **asdict(report), "notes": list(NOTES)}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(markdown(report, args.model.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
