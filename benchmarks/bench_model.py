"""Speed and size of the model: what the seed's targets and a predictor's users ask.

Sections (``--sections a b c d e``, default all but ``c``):

a. Epoch time with a frozen ``resnet50`` on N images: the feature cache (head on
   cached features) against the seed's design (backbone recomputed every batch).
b. Single-image prediction latency, p50/p95, from a decoded image: ``resnet50``
   at 224 px, and the default model (features included).
c. Wall time of the default run, cold (``qp train`` in a fresh cache folder).
d. Checkpoint sizes: the default model, and ``resnet50`` frozen with its weights
   stored by reference or embedded.
f. Serving formats of a ResNet-50 + MLP checkpoint (``--checkpoint``, else one
   trained here on generated images with a frozen random-weight ResNet-50):
   p50/p95 of one 224 px prediction from a decoded image for fp32 eager,
   TorchScript, ONNX fp32 and ONNX int8, file sizes, and the int8 accuracy
   guard on ``--data`` (dev-icons): max |int8 - fp32| <= 0.01, Pearson >= 0.999.
e. What a predictor saves: its cost against converting and scoring (vtracer +
   resvg + SSIM) at 256 and 1024 px, and 100 settings of one image (features
   once, the head batched) against 100 conversions.

The CNNs use random weights (``weights: none``): the same cost as ImageNet's,
which cannot be downloaded here.

Run: ``.venv/bin/python benchmarks/bench_model.py [--sections a b d e f] [--images 2000]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import ROOT, import_qpcore, percentile_ms

import_qpcore()

from qpcore.build import build_model  # noqa: E402
from qpcore.data.protocol import (  # noqa: E402
    DEFAULT_PARAMS,
    composite_white,
    encode_params,
    label_pixels,
    random_params,
)
from qpcore.data.synth import generate  # noqa: E402
from qpcore.model import QualityModel  # noqa: E402
from qpcore.registry import default_registry  # noqa: E402
from qpcore.validate import resolve_config  # noqa: E402

REGISTRY = default_registry()
DEFAULT_MODEL = {"backbone": {"name": "vectorizer"}, "features": [{"name": "image_stats"}]}
RANDOM_MODEL = {
    "backbone": {"name": "vectorizer", "precisions": [1, 2, 3, 4, 5, 6, 7, 8], "binary": True},
    "features": [{"name": "image_stats"}],
    "head": {"params_input": True},
}
RESNET = {"backbone": {"name": "resnet50", "weights": "none"}}


def model_of(section: dict[str, Any]) -> QualityModel:
    cfg = resolve_config({"data": "synthetic", "model": section}, REGISTRY)
    return build_model(cfg).eval()


def images(count: int, size: int = 256) -> list[np.ndarray]:
    return [composite_white(generate(7, i, size).image) for i in range(count)]


def timed_each(fn: Any, items: list[Any]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


def timed(fn: Any, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


# --- a --------------------------------------------------------------------------


def epoch_times(count: int, batch: int = 16) -> dict[str, float]:
    model = model_of(RESNET)
    pixels = images(count)
    head_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(head_params, 1e-3)
    targets = torch.rand(count)
    params = None

    def head_step(features: torch.Tensor, target: torch.Tensor) -> None:
        loss = ((model.predict_features(features, params) - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.head.train()
    start = time.perf_counter()  # the seed's design: the backbone on every batch
    for i in range(0, count, batch):
        x = torch.stack([model.backbones[0].preprocess(p) for p in pixels[i : i + batch]])
        with torch.no_grad():
            features = model.features([x])
        head_step(features, targets[i : i + batch])
    recomputed = time.perf_counter() - start
    with torch.no_grad():
        cached = torch.cat(
            [
                model.features(
                    [torch.stack([model.backbones[0].preprocess(p) for p in pixels[i : i + 64]])]
                )
                for i in range(0, count, 64)
            ]
        )
    start = time.perf_counter()  # the cache: the head on stored features
    order = torch.randperm(count)
    for i in range(0, count, batch):
        index = order[i : i + batch]
        head_step(cached[index], targets[index])
    head_only = time.perf_counter() - start
    return {
        "images": count,
        "recomputed_s": recomputed,
        "cached_s": head_only,
        "ratio": recomputed / head_only,
    }


# --- b --------------------------------------------------------------------------


def latency(section: dict[str, Any], rounds: int) -> dict[str, float]:
    model = model_of(section)
    pixels = images(rounds)
    params = torch.from_numpy(encode_params(DEFAULT_PARAMS))[None]
    use = params if model.params_input else None

    def one(image: np.ndarray) -> None:
        inputs = [x[None] for x in model.preprocess(image)]
        with torch.no_grad():
            model(inputs, use)

    one(pixels[0])  # warm-up
    seconds = timed_each(one, pixels)
    return {"p50_ms": percentile_ms(seconds, 50), "p95_ms": percentile_ms(seconds, 95)}


# --- c --------------------------------------------------------------------------


def default_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QP_CACHE_DIR": str(Path(tmp) / "cache")}
        qp = Path(sys.executable).with_name("qp")
        start = time.perf_counter()
        subprocess.run(
            [str(qp), "train", "--quiet", "--set", f"output.dir={tmp}/runs"],
            env=env,
            check=True,
            cwd=ROOT,
        )
        return {"wall_s": time.perf_counter() - start}


# --- d --------------------------------------------------------------------------


def checkpoint_sizes(tmp: Path) -> dict[str, float]:
    from qpcore.checkpoint import BackboneRecord, CheckpointMeta, save_checkpoint

    weights = tmp / "resnet50.pth"
    torch.save(model_of(RESNET).backbones[0].net.state_dict(), weights)
    cases = {
        "default model": DEFAULT_MODEL,
        "resnet50 frozen, weights by reference": {
            "backbone": {"name": "resnet50", "weights": str(weights)}
        },
        "resnet50 frozen, weights embedded": RESNET,
    }
    sizes = {}
    for name, section in cases.items():
        model = model_of(section)
        records = [
            BackboneRecord(
                describe=b.describe(), identity=b.identity(), reference=b.weights_reference()
            )
            for b in model.backbones
        ]
        skip = [f"backbones.{i}." for i, r in enumerate(records) if r.reference]
        state = {
            k: v for k, v in model.state_dict().items() if not any(k.startswith(s) for s in skip)
        }
        # Adam keeps two moments per trained weight: what a resumable file holds.
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trained)
        for p in trained:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        meta = CheckpointMeta(
            config={}, label_protocol=None, backbones=records, versions={}, epoch=0, metrics={}
        )
        path = tmp / "ckpt.pt"
        save_checkpoint(path, meta, state)
        sizes[f"{name}, best.pt (weights)"] = path.stat().st_size / 2**20
        save_checkpoint(path, meta, state, {"optimizer": optimizer.state_dict()})
        sizes[f"{name}, last.pt (resumable)"] = path.stat().st_size / 2**20
    return sizes


# --- e --------------------------------------------------------------------------


def predictor_vs_conversion(rounds: int) -> dict[str, Any]:
    model = model_of(DEFAULT_MODEL)
    out: dict[str, Any] = {}
    for size in (256, 1024):
        pixels = images(rounds, size)
        convert = timed_each(label_pixels, pixels)

        def predict(image: np.ndarray) -> None:
            inputs = [x[None] for x in model.preprocess(image)]
            with torch.no_grad():
                model(inputs)

        predict_s = timed_each(predict, pixels)
        out[f"{size}px"] = {
            "convert_ms": percentile_ms(convert, 50),
            "predict_ms": percentile_ms(predict_s, 50),
            "speed_up": float(np.median(convert) / np.median(predict_s)),
        }
    # 100 settings of one image: random-track model, features once, head batched.
    model = model_of(RANDOM_MODEL)
    rng = np.random.default_rng(0)
    settings = [random_params(rng) for _ in range(100)]
    image = images(1)[0]

    def hundred() -> None:
        inputs = [x[None] for x in model.preprocess(image)]
        with torch.no_grad():
            features = model.features(inputs).expand(100, -1)
            params = torch.from_numpy(np.stack([encode_params(s) for s in settings]))
            model.predict_features(features, params)

    predict_100 = float(np.median(timed(hundred, 5)))
    start = time.perf_counter()
    for setting in settings:
        label_pixels(image, setting)
    convert_100 = time.perf_counter() - start
    out["100 settings, 256px"] = {
        "convert_s": convert_100,
        "predict_s": predict_100,
        "speed_up": convert_100 / predict_100,
    }
    return out


# --- f --------------------------------------------------------------------------


def train_resnet(tmp: Path) -> Path:
    """A ResNet-50 + MLP (frozen, random weights: ImageNet's cannot be downloaded
    here) trained through ``qp train`` on 300 generated images."""
    import yaml

    cfg = {
        "data": {"name": "synthetic", "count": 300, "size": 128, "workers": 2},
        "model": {"backbone": {"name": "resnet50", "weights": "none"}},
        "trainer": {"epochs": 10, "batch_size": 32},
        "output": {"dir": str(tmp), "name": "r50"},
    }
    (tmp / "r50.yaml").write_text(yaml.safe_dump(cfg))
    qp = Path(sys.executable).with_name("qp")
    env = {**os.environ, "QP_CACHE_DIR": str(tmp / "cache")}
    subprocess.run([str(qp), "train", str(tmp / "r50.yaml"), "-q"], env=env, check=True)
    return tmp / "r50" / "best.pt"


def serving_formats(checkpoint: Path, data: Path | None, rounds: int) -> dict[str, Any]:
    from qpcore.export import calibration_pixels, export
    from qpcore.predictor import load_predictor, to_pixels

    predictor = load_predictor(checkpoint)
    files = {"checkpoint": checkpoint}
    for fmt, quantize, suffix in (
        ("torchscript", "none", ".ts.pt"),
        ("onnx", "none", ".onnx"),
        ("onnx", "int8", ".int8.onnx"),
    ):
        out = checkpoint.with_name("bench" + suffix)
        pixels = calibration_pixels(predictor.meta.config, None, 64) if quantize != "none" else []
        export(predictor, out, fmt, quantize, pixels)  # type: ignore[arg-type]
        files[f"{fmt} {quantize}"] = out
    pixels = images(rounds)
    scripted = torch.jit.load(str(files["torchscript none"]))
    model = predictor.model

    def torchscript(image: np.ndarray) -> None:
        with torch.no_grad():
            scripted(*[x[None] for x in model.preprocess(image)])

    runners = {
        "fp32 eager": lambda image: predictor.predict([image]),
        "TorchScript": torchscript,
    }
    served = {
        "ONNX fp32": load_predictor(files["onnx none"]),
        "ONNX int8": load_predictor(files["onnx int8"]),
    }
    for name, other in served.items():
        runners[name] = lambda image, other=other: other.predict([image])
    out: dict[str, Any] = {"latency": {}, "size_mb": {}}
    for name, run in runners.items():
        run(pixels[0])
        seconds = timed_each(run, pixels)
        out["latency"][name] = (percentile_ms(seconds, 50), percentile_ms(seconds, 95))
    for name, path in files.items():
        out["size_mb"][name] = path.stat().st_size / 1e6
    if data is not None and data.is_file():
        from qpcore.data.manifest import read_manifest

        rows = read_manifest(data).samples
        decoded = [to_pixels(s.image) for s in rows]
        fp32 = predictor.predict(decoded)
        int8 = served["ONNX int8"].predict(decoded)
        labels = np.array([s.ssim for s in rows])
        out["guard"] = {
            "rows": len(rows),
            "max_diff": float(np.abs(int8 - fp32).max()),
            "pearson_int8_fp32": float(np.corrcoef(int8, fp32)[0, 1]),
            "pearson_fp32_labels": float(np.corrcoef(fp32, labels)[0, 1]),
            "pearson_int8_labels": float(np.corrcoef(int8, labels)[0, 1]),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="*", default=["a", "b", "d", "e"])
    parser.add_argument("--images", type=int, default=2000, help="Images for section a.")
    parser.add_argument("--rounds", type=int, default=100, help="Timed predictions (b, e, f).")
    parser.add_argument("--checkpoint", type=Path, help="Section f's model (default: train one).")
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "dev-icons" / "manifest-default.csv",
        help="Section f's accuracy guard: a labelled manifest.",
    )
    args, _ = parser.parse_known_args()
    torch.manual_seed(0)
    failed = []
    if "a" in args.sections:
        a = epoch_times(args.images)
        print(
            f"a. epoch, frozen resnet50, {a['images']} images: recomputed "
            f"{a['recomputed_s']:.1f} s, cached {a['cached_s']:.2f} s, "
            f"ratio {a['ratio']:.0f}x (target >= 100x)",
            flush=True,
        )
        failed += [] if a["ratio"] >= 100 else ["a"]
    if "b" in args.sections:
        for name, section, target in (
            ("resnet50 at 224", RESNET, 20.0),
            ("default model", DEFAULT_MODEL, 10.0),
        ):
            b = latency(section, args.rounds)
            print(
                f"b. latency, {name}: p50 {b['p50_ms']:.1f} ms, p95 {b['p95_ms']:.1f} ms "
                f"(target p50 < {target:.0f} ms)",
                flush=True,
            )
            failed += [] if b["p50_ms"] < target else [f"b {name}"]
    if "c" in args.sections:
        c = default_run()
        print(f"c. default run, cold: {c['wall_s']:.0f} s (target < 600 s)", flush=True)
        failed += [] if c["wall_s"] < 600 else ["c"]
    if "d" in args.sections:
        with tempfile.TemporaryDirectory() as tmp:
            for name, mib in checkpoint_sizes(Path(tmp)).items():
                print(f"d. checkpoint, {name}: {mib:.1f} MiB (target < 100 MB)", flush=True)
                failed += [] if mib * 2**20 < 100e6 else [f"d {name}"]
    if "e" in args.sections:
        for name, row in predictor_vs_conversion(max(args.rounds // 5, 5)).items():
            parts = ", ".join(f"{k} {v:.3g}" for k, v in row.items())
            print(f"e. {name}: {parts}", flush=True)
    if "f" in args.sections:
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = args.checkpoint or train_resnet(Path(tmp))
            f = serving_formats(checkpoint, args.data, args.rounds)
            for name, (p50, p95) in f["latency"].items():
                print(f"f. latency, {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
            for name, mb in f["size_mb"].items():
                print(f"f. size, {name}: {mb:.1f} MB", flush=True)
            failed += [] if f["latency"]["ONNX int8"][0] < 50 else ["f int8 latency"]
            guard = f.get("guard")
            if guard:
                print(
                    f"f. int8 guard on {guard['rows']} rows: max |int8 - fp32| "
                    f"{guard['max_diff']:.4f} (<= 0.01), Pearson int8~fp32 "
                    f"{guard['pearson_int8_fp32']:.4f} (>= 0.999); Pearson with labels "
                    f"fp32 {guard['pearson_fp32_labels']:.3f}, "
                    f"int8 {guard['pearson_int8_labels']:.3f}",
                    flush=True,
                )
                ok = guard["max_diff"] <= 0.01 and guard["pearson_int8_fp32"] >= 0.999
                failed += [] if ok else ["f int8 guard"]
    if failed:
        print(f"targets missed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
