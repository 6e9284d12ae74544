"""``timing``: what one prediction costs, alone and in batches."""

from __future__ import annotations

import time

import numpy as np

from qp_evaluators.params import TimingParams
from qpcore.evaluation import EvalData, EvalOutput
from qpcore.html import Section, join, paragraph, table, tag
from qpcore.predictor import to_pixels


class Timing:
    """What one prediction costs: per image (features included, from decoded
    pixels, the way a pipeline asks before a conversion) and in batches."""

    def __init__(self, params: TimingParams) -> None:
        self.params = params

    def evaluate(self, data: EvalData) -> EvalOutput:
        out = EvalOutput()
        names = (
            "time_per_image_ms_p50",
            "time_per_image_ms_p95",
            "throughput_images_per_s",
            "avg_inference_time",
        )
        if data.predictor is None:
            for name in names:
                out.put(name, lambda: None, "no model to time (predictions given as arrays)")
            return out
        predictor = data.predictor
        paths = list(dict.fromkeys(s.image for s in data.samples))[: self.params.images]
        pixels = [to_pixels(p) for p in paths]
        predictor.predict(pixels[:1])  # warm-up: first calls allocate
        seconds = []
        for image in pixels:
            start = time.perf_counter()
            predictor.predict([image])
            seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.predict(pixels, batch_size=self.params.batch_size)
        batched = time.perf_counter() - start
        ms = np.asarray(seconds) * 1000
        out.metrics["timed_images"] = len(pixels)
        out.put(names[0], lambda: float(np.percentile(ms, 50)))
        out.put(names[1], lambda: float(np.percentile(ms, 95)))
        out.put(names[2], lambda: float(len(pixels) / batched))
        # The seed's key: mean seconds per image, one image at a time.
        out.put(names[3], lambda: float(np.mean(seconds)))
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        m = out.metrics
        if m["time_per_image_ms_p50"] is None:
            return [Section("Timing", paragraph(out.undefined["time_per_image_ms_p50"]))]
        rows = [
            ("per image, p50 (ms)", m["time_per_image_ms_p50"]),
            ("per image, p95 (ms)", m["time_per_image_ms_p95"]),
            (
                f"batched throughput (images/s, batch {self.params.batch_size})",
                m["throughput_images_per_s"],
            ),
        ]
        body = join(
            [
                paragraph(
                    f"{m['timed_images']} images, from decoded pixels, features included, on ",
                    tag("code", str(data.predictor.device) if data.predictor else "-"),
                    ".",
                ),
                table(["measure", "value"], rows, sortable=False),
            ]
        )
        return [Section("Timing", body)]
