"""Export a checkpoint's tensor part for serving without qpcore's Python loop.

The exported module takes what :meth:`QualityModel.preprocess` makes (one batched
tensor per backbone, then the encoded params for random-track models) and returns
the predicted SSIM. Hand-made features are computed in numpy during
preprocessing, so a server still calls ``Predictor.model.preprocess``; what the
export removes is torch's Python overhead and the need for the plugins' code at
inference time. A JSON file beside the export records the preprocessing.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from qpcore.errors import QPError
from qpcore.model import QualityModel
from qpcore.predictor import Predictor

ExportFormat = Literal["torchscript", "onnx"]


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


def example_inputs(predictor: Predictor, batch: int = 2) -> tuple[Tensor, ...]:
    """Real preprocessed inputs of ``batch`` synthetic images (tracing needs some)."""
    from qpcore.data.protocol import DEFAULT_PARAMS, composite_white, encode_params
    from qpcore.data.synth import generate

    pixels = [composite_white(generate(0, i, 128).image) for i in range(batch)]
    columns = zip(*(predictor.model.preprocess(p) for p in pixels), strict=True)
    tensors = [torch.stack(c) for c in columns]
    if predictor.takes_params:
        tensors.append(torch.from_numpy(np.stack([encode_params(DEFAULT_PARAMS)] * batch)))
    return tuple(tensors)


def export(predictor: Predictor, out: Path, fmt: ExportFormat) -> float:
    """Write the export and its preprocessing record; returns the largest difference
    between the export's and the model's predictions on real inputs.

    torch now marks both TorchScript and the TorchScript-based ONNX exporter as
    deprecated; they remain what serving stacks load today, so their warnings are
    silenced here rather than shown on every export.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return _export(predictor, out, fmt)


def _export(predictor: Predictor, out: Path, fmt: ExportFormat) -> float:
    # A copy: moving the predictor's own model to the CPU would strand its device.
    flat = _Flat(copy.deepcopy(predictor.model).cpu().eval()).eval()
    inputs = example_inputs(predictor)
    with torch.no_grad():
        expected = flat(*inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(flat, inputs, check_trace=False)
        traced.save(str(out))
        with torch.no_grad():
            got = torch.jit.load(str(out))(*inputs)
    else:
        got = _onnx(flat, inputs, out)
    record = {
        "inputs": [b.describe() for b in predictor.model.backbones],
        "params_input": predictor.takes_params,
        "label_protocol": predictor.meta.label_protocol,
        "versions": predictor.meta.versions,
    }
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(record, indent=2) + "\n")
    return float((got - expected).abs().max())


def _onnx(flat: nn.Module, inputs: tuple[Tensor, ...], out: Path) -> Tensor:
    try:
        import onnxruntime
    except ImportError as exc:
        raise QPError("ONNX export needs the optional extra: pip install 'qpcore[onnx]'") from exc
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
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {n: x.numpy() for n, x in zip(names, inputs, strict=True)}
    return torch.from_numpy(session.run(None, feeds)[0])
