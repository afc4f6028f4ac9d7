"""Real integer inference: export to ONNX, quantize with ONNX Runtime, and measure what it buys on a CPU."""

from __future__ import annotations

import copy
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from . import checks
from .quant import MinMax, QuantSpec

ONNX_INT8 = QuantSpec(8)  # symmetric int8 weights, one scale per tensor: ONNX Runtime's dynamic quantization default


def _median_ms(run, *, repeats: int, budget_s: float) -> tuple[float, int]:
    """Median wall time of ``run()`` in ms over at least 3 and at most ``repeats`` runs, stopping once
    ``budget_s`` seconds are spent (after one warm-up run); and the number of timed runs."""
    run()
    times, spent = [], 0.0
    while len(times) < repeats and (len(times) < 3 or spent < budget_s):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return 1e3 * statistics.median(times), len(times)


def onnx_benchmark(
    model: nn.Module, x: torch.Tensor, folder: str | os.PathLike[str], *, spec: QuantSpec = ONNX_INT8,
    threads: int = 2, batch: int = 64, n_agree: int = 500, repeats: int = 30, budget_s: float = 3.0,
) -> list[dict[str, float | str]]:
    """Export ``model`` to ONNX, quantize it with ONNX Runtime's dynamic quantization — weights on the grid
    ``spec`` (8 bits, min-max, round-to-nearest; symmetric → int8 codes, asymmetric → uint8; per tensor, ONNX
    Runtime's default, or per output channel), activations quantized on the fly — and measure for both
    models, on ``threads`` CPU threads: the file size, the median latency of one sample and of a batch of
    ``batch`` samples (at least 3 and at most ``repeats`` timed runs, within about ``budget_s`` seconds
    each), and how often the int8 model's prediction agrees with the float one's on the first ``n_agree``
    samples of x."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not isinstance(spec, QuantSpec):
        raise TypeError(f"spec must be a quant.QuantSpec, got {spec!r}")
    if spec.bits != 8 or spec.calibration != MinMax() or spec.rounding != "nearest":
        raise ValueError(f"ONNX Runtime's integer kernels take 8-bit min-max weights rounded to nearest; got {spec}")
    checks.model("model", model)
    checks.batch(x)
    threads, batch = checks.integer("threads", threads), checks.integer("batch", batch)
    n_agree, repeats = checks.integer("n_agree", n_agree), checks.integer("repeats", repeats, minimum=3)
    budget_s = checks.positive("budget_s", budget_s)
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a str or os.PathLike, got {type(folder).__name__}")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as err:
        raise PermissionError(f"cannot write the ONNX files in {folder} ({err.strerror or err}): pass a folder you "
                              "can write; the chapters use config.output_dir('onnx'), set by BOOK_ONNX") from None
    paths = {"float32": folder / "model.onnx", "prepared": folder / "prepared.onnx", "int8": folder / "int8.onnx"}
    cpu_model, xs = copy.deepcopy(model).cpu().eval(), x.detach().cpu()
    # dynamic batch size given by position, whatever the model's forward argument is called
    torch.onnx.export(cpu_model, (xs[:1],), paths["float32"], input_names=["x"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False)
    quant_pre_process(str(paths["float32"]), str(paths["prepared"]))
    quantize_dynamic(str(paths["prepared"]), str(paths["int8"]), per_channel=spec.per_channel,
                     weight_type=QuantType.QInt8 if spec.symmetric else QuantType.QUInt8,
                     extra_options={"WeightSymmetric": spec.symmetric})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sample = xs[:n_agree].numpy()
    with torch.no_grad():
        reference = cpu_model(xs[:n_agree]).argmax(1).numpy()
    rows = []
    for kind in ("float32", "int8"):
        session = ort.InferenceSession(str(paths[kind]), options, providers=["CPUExecutionProvider"])
        row = {"model": kind, "file size (kB)": paths[kind].stat().st_size / 1e3}
        for n in (1, min(batch, len(xs))):
            inputs = {"x": xs[:n].numpy()}
            run = lambda inputs=inputs, session=session: session.run(None, inputs)
            row[f"latency, {n} sample{'s' * (n > 1)} (ms)"] = _median_ms(run, repeats=repeats, budget_s=budget_s)[0]
        row["agrees with float"] = float((session.run(None, {"x": sample})[0].argmax(1) == reference).mean())
        rows.append(row)
    return rows
