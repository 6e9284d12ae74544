"""Export a checkpoint's tensor part for serving without qpcore's Python loop.

The exported module takes what :meth:`QualityModel.preprocess` makes (one batched
tensor per backbone, then the encoded params for random-track models) and returns
the predicted SSIM. Hand-made features are computed in numpy during
preprocessing, so a server still runs the backbones' ``preprocess``; what the
export removes is torch's Python overhead and, quantized to int8, most of a
CNN's cost. An ONNX export carries the checkpoint's metadata, so
:func:`qpcore.load_predictor` serves it like the checkpoint it came from.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from qpcore.errors import QPError
from qpcore.model import QualityModel
from qpcore.predictor import Predictor, to_pixels

ExportFormat = Literal["torchscript", "onnx"]
Quantize = Literal["none", "int8"]

#: Keys of the ONNX model's metadata that hold the checkpoint's.
META_KEY = "qpcore_meta"
FORMAT_KEY = "qpcore_format"
ONNX_FORMAT = "qpcore-onnx/1"
#: Operators int8 quantization rounds, and the node-name prefix of the head
#: (as torch names the exported graph), which stays in float.
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
HEAD_NODES = "/model/head/"
#: Calibration images used when none are given.
CALIBRATION_COUNT = 64


class _Flat(nn.Module):
    """Positional tensors in, predictions out: what tracers and ONNX want."""

    def __init__(self, model: QualityModel) -> None:
        super().__init__()
        self.model = model
        self.count = len(model.backbones)

    def forward(self, *inputs: Tensor) -> Tensor:
        images = list(inputs[: self.count])
        params = inputs[self.count] if self.model.params_input else None
        return self.model(images, params)


def model_inputs(
    model: QualityModel, pixels: Sequence[np.ndarray], params: np.ndarray | None
) -> tuple[Tensor, ...]:
    """The export's inputs for decoded images (and their encoded params)."""
    columns = zip(*(model.preprocess(p) for p in pixels), strict=True)
    tensors = [torch.stack(c) for c in columns]
    if model.params_input:
        assert params is not None
        tensors.append(torch.from_numpy(np.asarray(params, np.float32)))
    return tuple(tensors)


def _draw_params(count: int, seed: int) -> np.ndarray:
    """Varied settings for random-track calibration: the track's own draws."""
    from qpcore.data.protocol import encode_params, random_params

    rng = np.random.default_rng(seed)
    return np.stack([encode_params(random_params(rng)) for _ in range(count)])


def sample_inputs(model: QualityModel, batch: int = 2) -> tuple[Tensor, ...]:
    """Real preprocessed inputs of ``batch`` generated images, with drawn settings
    for random-track models (tracing and precision checks need some)."""
    from qpcore.data.protocol import composite_white
    from qpcore.data.synth import generate

    pixels = [composite_white(generate(0, i, 128).image) for i in range(batch)]
    return model_inputs(model, pixels, _draw_params(batch, 0))


def calibration_images(config: dict[str, Any], source: Path | None, count: int) -> list[Path]:
    """Images to calibrate int8 ranges on: ``source`` (a manifest or a folder), else
    the run's own training data when it is on disk.

    Raises:
        QPError: When neither gives images (a synthetic run: pass ``--calibration``,
            or its images are generated again, see :func:`calibration_pixels`).
    """
    from qpcore.data.jobs import collect_inputs
    from qpcore.data.manifest import read_manifest

    data = config.get("data") or {}
    if source is None and data.get("name") in ("manifest", "folder") and data.get("path"):
        source = Path(str(data["path"]))
    if source is None:
        return []
    if source.is_file():
        images = sorted({s.image for s in read_manifest(source).samples})
    else:
        images = collect_inputs([str(source)])
    if not images:
        raise QPError(f"{source}: no images to calibrate on")
    rng = np.random.default_rng(0)
    picked = rng.permutation(len(images))[:count]
    return [Path(images[i]) for i in sorted(picked)]


def calibration_pixels(config: dict[str, Any], source: Path | None, count: int) -> list[np.ndarray]:
    """Decoded calibration images; a synthetic run's are generated again (same
    generator, seed and size as its training images)."""
    paths = calibration_images(config, source, count)
    if paths:
        return [to_pixels(p) for p in paths]
    from qpcore.data.protocol import composite_white
    from qpcore.data.synth import generate

    data = config.get("data") or {}
    size = int(data.get("size", 256))
    seed = int(data.get("seed", 0))
    return [composite_white(generate(seed, i, size).image) for i in range(count)]


def export(
    predictor: Predictor,
    out: Path,
    fmt: ExportFormat,
    quantize: Quantize = "none",
    calibration: Sequence[np.ndarray] = (),
) -> float:
    """Write the export; returns the largest difference between the export's and
    the model's predictions (on the calibration images when quantizing, else on
    two synthetic ones).

    torch now marks both TorchScript and the TorchScript-based ONNX exporter as
    deprecated; they remain what serving stacks load today, so their warnings are
    silenced here rather than shown on every export.
    """
    if quantize != "none" and fmt != "onnx":
        raise QPError("--quantize needs --format onnx")
    if quantize != "none" and not calibration:
        raise QPError("int8 quantization needs calibration images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return _export(predictor, out, fmt, quantize, calibration)


def _export(
    predictor: Predictor,
    out: Path,
    fmt: ExportFormat,
    quantize: Quantize,
    calibration: Sequence[np.ndarray],
) -> float:
    # A copy: moving the predictor's own model to the CPU would strand its device.
    flat = _Flat(copy.deepcopy(predictor.model).cpu().eval()).eval()
    inputs = sample_inputs(predictor.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            expected = flat(*inputs)
            traced = torch.jit.trace(flat, inputs, check_trace=False)
        traced.save(str(out))
        with torch.no_grad():
            got = torch.jit.load(str(out))(*inputs)
        _write_record(predictor, out)
        return float((got - expected).abs().max())
    _require_onnx()
    if quantize == "none":
        _onnx(flat, inputs, out)
    else:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            plain = Path(tmp) / "fp32.onnx"
            _onnx(flat, inputs, plain)
            batches = list(_calibration_batches(predictor.model, calibration))
            _quantize_int8(plain, out, batches)
        inputs = tuple(torch.cat(column) for column in zip(*batches, strict=True))
    _embed_meta(out, predictor)
    _write_record(predictor, out)
    with torch.no_grad():
        expected = flat(*inputs)
    return float((_run_onnx(out, inputs) - expected).abs().max())


def _write_record(predictor: Predictor, out: Path) -> None:
    """The preprocessing beside the export, for servers that do not use qpcore."""
    record = {
        "inputs": [b.describe() for b in predictor.model.backbones],
        "params_input": predictor.takes_params,
        "label_protocol": predictor.meta.label_protocol,
        "versions": predictor.meta.versions,
    }
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(record, indent=2) + "\n")


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise QPError("ONNX export needs the optional extra: pip install 'qpcore[onnx]'") from exc


def _onnx(flat: nn.Module, inputs: tuple[Tensor, ...], out: Path) -> None:
    names = [f"input_{i}" for i in range(len(inputs))]
    torch.onnx.export(
        flat,
        inputs,
        str(out),
        input_names=names,
        output_names=["ssim"],
        dynamic_axes={**{n: {0: "batch"} for n in names}, "ssim": {0: "batch"}},
        dynamo=False,
    )


def _calibration_batches(
    model: QualityModel, pixels: Sequence[np.ndarray], batch: int = 8
) -> Iterator[tuple[Tensor, ...]]:
    params = _draw_params(len(pixels), 1)
    for start in range(0, len(pixels), batch):
        end = start + batch
        yield model_inputs(model, pixels[start:end], params[start:end])


def _quantize_int8(plain: Path, out: Path, batches: list[tuple[Tensor, ...]]) -> None:
    """ONNX Runtime's static quantization: int8 weights per channel, uint8
    activations whose ranges come from the calibration batches.

    Only the backbones' convolutions and matrix products are quantized: they are
    the cost. The head stays in float: it costs a fraction of a millisecond, and
    rounding the standardised features it reads moved the default model's
    predictions by up to 0.07 on dev-icons (8 bits over their full range).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    names = [f"input_{i}" for i in range(len(batches[0]))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(
                [{n: x.numpy() for n, x in zip(names, b, strict=True)} for b in batches]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    import onnx

    prepared = plain.with_name("prepared.onnx")
    quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
    nodes = onnx.load(str(prepared)).graph.node
    head = [n.name for n in nodes if n.name.startswith(HEAD_NODES)]
    if not [n for n in nodes if n.op_type in QUANTIZED_OPS and n.name not in head]:
        raise QPError(
            "nothing to quantize: int8 applies to a CNN backbone's layers, and this "
            "model's backbones compute their features in numpy (its cost); export it "
            "with --format onnx and no --quantize"
        )
    quantize_static(
        str(prepared),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        op_types_to_quantize=list(QUANTIZED_OPS),
        nodes_to_exclude=head,
    )


def _embed_meta(path: Path, predictor: Predictor) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in ((FORMAT_KEY, ONNX_FORMAT), (META_KEY, predictor.meta.model_dump_json())):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _run_onnx(path: Path, inputs: tuple[Tensor, ...]) -> Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: x.numpy() for n, x in zip(names, inputs, strict=True)}
    return torch.from_numpy(session.run(None, feeds)[0])
