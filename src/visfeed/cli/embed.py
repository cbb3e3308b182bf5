"""``visfeed embed``: fill the embedding cache for a dataset split and a backbone, locally or on Ray Data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from visfeed.cli.common import out, parse_sets


def embed_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config file (dataset, backbone).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="'world' (default) or a dataset name.")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Folder (or manifest file) holding the dataset.")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", help="open_clip model or 'local-dir:PATH'.")] = None,
    pretrained: Annotated[str | None, typer.Option("--pretrained", help="Pretrained tag or checkpoint.")] = None,
    download: Annotated[bool, typer.Option("--download", help="Allow downloading weights or data.")] = False,
    split: Annotated[
        Literal["test", "validation", "feedback", "all"], typer.Option("--split", help="Which split to embed.")
    ] = "test",
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the split (as the runs will use).")] = None,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Images per shard file.")] = 1024,
    ray: Annotated[bool, typer.Option("--ray", help="Embed on Ray Data actors (local Ray instance).")] = False,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Embed on this Ray cluster.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Ray actors embedding at once.")] = 2,
    gpus_per_worker: Annotated[
        float, typer.Option("--gpus-per-worker", min=0, help="GPUs each Ray actor asks for (0: CPU actors).")
    ] = 0.0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any config key: --set data.n_test=500.")] = None,
) -> None:
    """Embed a split's images into the embedding cache as memory-mapped shards, before the runs need them.

    Runs of the same dataset, seed and backbone then read those vectors instead of embedding the images.

    Examples:
      visfeed embed -d imagenet --root ~/data/imagenet --backbone ViT-B-32 --pretrained openai --split test

      visfeed embed -d imagenet --root /shared/imagenet --backbone ViT-B-32 --pretrained openai --ray-address ray://head:10001 --workers 8 --gpus-per-worker 1
    """
    from visfeed.state.config import RunConfig
    from visfeed.tools.embedding.builtin_models import visfeed_cache_dir
    from visfeed.tools.embedding.job import EmbedJob, embed_split, split_paths

    overrides: dict[str, Any] = {
        "data.name": dataset, "data.root": root, "backbone.model": backbone, "backbone.pretrained": pretrained,
        "backbone.allow_download": download or None, "seed": seed,
    }  # fmt: skip
    overrides.update(parse_sets(set_ or []))
    cfg = RunConfig.load(config, overrides)
    use_ray = ray or ray_address is not None
    if use_ray:
        from visfeed.tools.embedding.ray_support import import_ray

        import_ray()  # a missing extra is a usage error, raised before any work
    cache_dir = visfeed_cache_dir(os.environ)  # the CLI reads $VISFEED_CACHE_DIR; the tools take the folder
    job = EmbedJob(
        backbone=cfg.backbone.model,
        pretrained=cfg.backbone.pretrained,
        allow_download=cfg.backbone.allow_download,
        device=cfg.backbone.device,
        cache=cfg.backbone.embedding_cache or cache_dir / "embeddings.sqlite",
        cache_dir=cache_dir,
    )
    report = embed_split(
        job,
        split_paths(cfg, split, cache_dir),
        shard_size=shard_size,
        ray_workers=workers if use_ray else None,
        ray_address=ray_address,
        gpus_per_worker=gpus_per_worker,
    )
    out.print(
        f"{report.images} images ({split}): {report.embedded} embedded in {report.shards} shard(s) "
        f"({report.images_per_s:.0f} images/s, {report.executor}), {report.already_cached} already cached; "
        f"shards in {report.folder}"
    )
