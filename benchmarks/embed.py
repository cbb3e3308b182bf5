"""Images per second of `visfeed embed`: the plain local path vs 1 and 2 local Ray Data workers (issue 17).

    python benchmarks/embed.py --images 2600 --out benchmarks/results/embed.json

Renders the market world's test split (the same images for every mode), then embeds them with the
embedded visfeed-market backbone into a fresh, empty cache four ways: in this process (`visfeed embed`) with
torch's default threads and with one thread, and on a local Ray instance with 1 and with 2 `map_batches`
actors (one thread each). Each mode's wall time includes loading
the model in its workers (a real cost of the job); "busy" time runs from the first batch's start to the last
one's end (throughput once the workers are up); starting Ray is timed apart. Ratios come from one run,
so they compare like with like on a shared machine; the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from visfeed.fileio import sha256_file, write_json_atomic
from visfeed.state.config import RunConfig
from visfeed.tools.embedding.builtin_models import shipped_checkpoint, visfeed_cache_dir
from visfeed.tools.embedding.job import EmbedJob, embed_split, split_paths

N_CLASSES = 26  # the shipped market world


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--images", type=int, default=2600, help="about this many test images (whole classes)")
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--workers", default="1,2", help="Ray actor counts to time, comma-separated")
    args = ap.parse_args()
    cfg = RunConfig(
        data={"name": "world", "k_shot": 1, "n_val": 0, "n_test": max(1, args.images // N_CLASSES)},
        backbone={"device": "cpu"},
    )
    t0 = time.perf_counter()
    paths = split_paths(cfg, "test", visfeed_cache_dir(os.environ))
    render_s = time.perf_counter() - t0
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def run(name: str, workers: int | None) -> None:
            job = EmbedJob(
                device="cpu", cache=Path(tmp) / name / "embeddings.sqlite", cache_dir=visfeed_cache_dir(os.environ)
            )
            report = embed_split(job, paths, shard_size=args.shard_size, ray_workers=workers)
            results[name] = report.model_dump(exclude={"folder"})
            print(f"{name}: {report.embedded} images in {report.wall_s:.1f} s = {report.images_per_s:.0f} images/s; "
                  f"busy {report.busy_s:.1f} s = {report.busy_images_per_s:.0f} images/s")  # fmt: skip

        threads = torch.get_num_threads()
        run("local", None)
        torch.set_num_threads(1)  # like one Ray actor (Ray gives a 1-CPU actor one thread)
        run("local_1thread", None)
        torch.set_num_threads(threads)
        import ray

        t_ray = time.perf_counter()
        src = Path(__file__).resolve().parents[1] / "src"
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}})  # fmt: skip
        ray_start_s = time.perf_counter() - t_ray
        try:
            for n in (int(x) for x in args.workers.split(",")):
                run(f"ray_{n}", n)
        finally:
            ray.shutdown()
    ratios: dict[str, float] = {}
    for rate in ("images_per_s", "busy_images_per_s"):
        local = results["local"][rate]
        ratios |= {f"{k}/local ({rate})": round(v[rate] / local, 3) for k, v in results.items() if k.startswith("ray")}
        if "ray_1" in results:
            ratios[f"ray_1/local_1thread ({rate})"] = round(results["ray_1"][rate] / results["local_1thread"][rate], 3)
        if "ray_1" in results and "ray_2" in results:
            ratios[f"ray_2/ray_1 ({rate})"] = round(results["ray_2"][rate] / results["ray_1"][rate], 3)
    out = {
        "images": len(paths),
        "shard_size": args.shard_size,
        "backbone": "visfeed-market",
        "tower_sha256": sha256_file(shipped_checkpoint())[:12],
        "render_s": round(render_s, 1),
        "ray_start_s": round(ray_start_s, 1),
        "modes": results,
        "ratios": ratios,
        "cpu_count": os.cpu_count(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "local_threads": threads,
        "note": "local: one process, torch's default threads; local_1thread: one torch thread; ray_N: N actors, "
        "1 CPU (one thread) each; wall includes loading the model in the workers, busy excludes it",
    }
    print(json.dumps(ratios, indent=2))
    write_json_atomic(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
