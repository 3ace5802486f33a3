"""One fp32 matrix product through each CPU GEMM this project can reach, timed in the same run.

    .venv/bin/python benchmarks/matmul_backends.py [--threads 1] [--rows 500] [--repeats 7]

Why `model/linear.Linear` runs inference linears on oneDNN: on the AMD EPYC machine torch's default
fp32 product (MKL sgemm) ran well below oneDNN, OpenBLAS (numpy) and ONNX Runtime's MLAS. The shape is
a base-size feed-forward layer on 10 s of audio ([rows, 768] x [768, 3072]); GFLOP/s, median of repeats.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

DIM, FFN = 768, 3072


def median_seconds(job, repeats: int) -> float:
    job()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def onnxruntime_job(x: np.ndarray, w: np.ndarray, threads: int):
    try:
        import onnxruntime
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x.shape[0], w.shape[1]])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x": x})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, weight, bias = torch.randn(args.rows, DIM), torch.randn(FFN, DIM), torch.randn(FFN)
    x_np, w_np = x.numpy(), weight.numpy().T.copy()
    jobs = {"torch F.linear (MKL sgemm)": lambda: F.linear(x, weight, bias),
            "oneDNN (torch.ops.mkldnn._linear_pointwise)":
                lambda: torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], ""),
            "numpy (its BLAS)": lambda: x_np @ w_np}
    ort = onnxruntime_job(x_np, w_np, args.threads)
    if ort is not None:
        jobs["ONNX Runtime MatMul (MLAS)"] = ort
    flops = 2 * args.rows * DIM * FFN
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"[{args.rows}, {DIM}] x [{DIM}, {FFN}], median of {args.repeats}")
    print("| GEMM | ms | GFLOP/s |\n|---|---|---|")
    for name, job in jobs.items():
        seconds = median_seconds(job, args.repeats)
        print(f"| {name} | {seconds * 1000:.1f} | {flops / seconds / 1e9:.1f} |")


if __name__ == "__main__":
    main()
