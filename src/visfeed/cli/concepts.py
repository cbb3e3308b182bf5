"""``visfeed concepts``: build a concept tree with the LLM, fit interpretable classifiers, explain images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from visfeed.cli.common import (
    BackboneOpt,
    ConfigOpt,
    DatasetOpt,
    DownloadOpt,
    PretrainedOpt,
    ProviderOpt,
    RootOpt,
    SeedOpt,
    SetOpt,
    console,
    handle_errors,
    out,
    parse_sets,
)
from visfeed.errors import ConfigError

if TYPE_CHECKING:
    from visfeed.state.config import RunConfig
    from visfeed.tools.concepts.features import FeatureSource

app = typer.Typer(
    help="Interpretable classifiers: a concept tree of parts, attributes and values; clue features; explanations.",
    no_args_is_help=True,
)
KShotOpt = Annotated[int | None, typer.Option("--k-shot", help="Training images per class (the feedback split).")]
SOURCES = ("tree", "descriptions", "both")


def _config(config: Path | None, overrides: dict[str, Any], sets: list[str] | None) -> RunConfig:
    from visfeed.state.config import RunConfig

    merged = {k: v for k, v in overrides.items() if v is not None}
    merged.update(parse_sets(sets or []))
    return RunConfig.load(config, merged)


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@app.command()
@handle_errors
def build(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Build folder (tree.json, checkpoints, trace).")],
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    provider: ProviderOpt = None,
    seed: SeedOpt = None,
    domain: Annotated[str | None, typer.Option("--domain", help="What the classes are ('fruit or vegetable').")] = None,
    depth: Annotated[int, typer.Option("--depth", help="Levels of parts (2: parts and sub-parts).")] = 2,
    max_parts: Annotated[int, typer.Option("--max-parts", help="Most first-level parts.")] = 4,
    max_attributes: Annotated[int, typer.Option("--max-attributes", help="Most attributes per leaf part.")] = 3,
    parts: Annotated[str | None, typer.Option("--parts", help="Your own first-level parts, comma-separated.")] = None,
    attributes: Annotated[
        str | None, typer.Option("--attributes", help="Your own attributes for every part, comma-separated.")
    ] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="Clue sentence: {part} {attribute} {value}.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted build in --out.")] = False,
    llm_only: Annotated[
        bool, typer.Option("--llm-only", help="Keep the LLM's values unchecked (no image grounding).")
    ] = False,
    backbone: BackboneOpt = None,
    pretrained: PretrainedOpt = None,
    download: DownloadOpt = False,
    k_shot: KShotOpt = None,
    set_: SetOpt = None,
) -> None:
    """Ask the LLM for the tree: parts, sub-parts, attributes per part, a value per (part, attribute, class).

    Each value is then chosen by the class's feedback images: the LLM's answers and the visual vocabulary's
    words for the attribute are scored as clue sentences against the class's images versus its confusable
    classes' (tree.json records each value's origin and support; --llm-only skips this). When the LLM gives
    no usable part or attribute, the vocabulary's facets (colour, shape, pattern, size) stand in.

    The tree is written to OUT/tree.json: edit it by hand and fit again. Every LLM call is cached and
    traced (`visfeed trace OUT --messages`); an interrupted build continues with --resume.

    Examples:
      visfeed concepts build -o trees/market --domain "fruit or vegetable"

      visfeed concepts build -o trees/market --parts skin,flesh,top --attributes color,shape --depth 1

      visfeed concepts build -o trees/market --resume
    """
    from visfeed.agents.concepts import build_tree
    from visfeed.agents.resources import build_scoring, cache_dir, provider_handle
    from visfeed.state.concepts import DEFAULT_CLUE_TEMPLATE, ConceptSettings
    from visfeed.tools.concepts.grounding import ImageEvidence
    from visfeed.tools.datasets import load_for_config
    from visfeed.tools.feedback.visual_words import load_vocabulary

    overrides = {"data.name": dataset, "data.root": root, "llm.provider": provider, "seed": seed, "backbone.model": backbone,
                 "backbone.pretrained": pretrained, "backbone.allow_download": download or None, "data.k_shot": k_shot}  # fmt: skip
    cfg = _config(config, overrides, set_)
    settings = ConceptSettings(
        domain=domain, depth=depth, max_parts=max_parts, max_attributes=max_attributes, parts=_names(parts),
        attributes=_names(attributes), template=template or DEFAULT_CLUE_TEMPLATE, ground=not llm_only,
    )  # fmt: skip
    evidence = None
    if llm_only:
        classnames = list(load_for_config(cfg, cache_dir())[0].classnames)
    else:
        data = build_scoring(cfg)
        classnames = data.classnames
        evidence = ImageEvidence(
            encoder=data.encoder, image_emb=data.feedback.image_emb, labels=data.feedback.labels,
            vocabulary=load_vocabulary(cfg.signals.visual_words.vocabulary), n_confusers=settings.confusers,
        )  # fmt: skip
    with provider_handle(cfg) as handle:
        result = build_tree(
            out_dir, cfg, settings, classnames, domain or "object", handle, evidence=evidence, resume=resume
        )
    out.print(
        f"tree: {escape(result.tree_path)}  ({result.clues} clues on parts {', '.join(result.parts)}; "
        f"{result.values_accepted} LLM values accepted, {sum(result.rejected.values())} LLM answers dropped; "
        f"structure: {result.structure})"
    )
    for reason, n in result.rejected.items():
        out.print(f"  dropped {n}: {escape(reason)}")
    if result.grounded:
        out.print("  values by origin: " + ", ".join(f"{k} {v}" for k, v in result.origins.items()))
        for line in result.disagreements[:5]:
            out.print(f"  {escape(line)}")


def _tree_and_prompts(tree: Path | None, descriptions: Path | None, classnames: list[str]) -> tuple[Any, Any]:
    from visfeed.state.concepts import ConceptTree
    from visfeed.state.templates import parse_source
    from visfeed.tools.feedback.description_files import read_description_file

    t = ConceptTree.load(tree) if tree is not None else None
    if t is not None and t.classnames != classnames:
        missing = [c for c in classnames if c not in t.classnames]
        raise ConfigError(
            f"concept tree {tree} was built for other classes (missing {missing[:5]}); build one for this dataset"
        )
    prompts = None
    if descriptions is not None:  # any format `visfeed eval -D` reads, FORMAT: prefix included
        prompts = read_description_file(*parse_source(str(descriptions))).for_classes(classnames)
    return t, prompts


@app.command()
@handle_errors
def fit(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Model folder (model.joblib, scores.json, report.html).")
    ],
    tree: Annotated[Path | None, typer.Option("--tree", help="Concept tree JSON (from `concepts build`).")] = None,
    descriptions: Annotated[
        Path | None, typer.Option("--descriptions", "-D", help="CuPL JSON or text file (a run's descriptions.json).")
    ] = None,
    source: Annotated[str, typer.Option("--source", help="Features: tree, descriptions or both.")] = "tree",
    classifier: Annotated[
        str, typer.Option("--classifier", help="Saved model: part_vote, logistic or forest (all are scored).")
    ] = "part_vote",
    no_selection: Annotated[bool, typer.Option("--no-selection", help="Keep every feature.")] = False,
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    backbone: BackboneOpt = None,
    pretrained: PretrainedOpt = None,
    download: DownloadOpt = False,
    seed: SeedOpt = None,
    k_shot: KShotOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fit the classifiers on clue features; select features on validation; score the test split once.

    Writes OUT/model.joblib (the --classifier model), OUT/scores.json and OUT/report.html.

    Examples:
      visfeed concepts fit --tree trees/market/tree.json -o models/market

      visfeed concepts fit --tree trees/market/tree.json -D runs/world-s0-.../descriptions.json --source both -o m2
    """
    from visfeed.agents.resources import build_scoring
    from visfeed.evals.concepts.experiment import Experiment, explain_model, fit_models, score_on_test
    from visfeed.evals.concepts.model import ConceptModel
    from visfeed.evals.concepts.report import ConceptReport, write_report
    from visfeed.fileio import write_json_atomic, write_text_atomic
    from visfeed.state.rundir import CONFIG_FILE
    from visfeed.tools.concepts.classifiers import CLASSIFIERS
    from visfeed.tools.concepts.features import select_space
    from visfeed.tools.scoring.session import resolve_logit_scale

    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    if classifier not in CLASSIFIERS:
        raise ConfigError(f"--classifier must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
    overrides = {"data.name": dataset, "data.root": root, "backbone.model": backbone, "backbone.pretrained": pretrained,
                 "backbone.allow_download": download or None, "seed": seed, "data.k_shot": k_shot}  # fmt: skip
    cfg = _config(config, overrides, set_)
    data = build_scoring(cfg)
    if data.validation is None:
        raise ConfigError(
            "concepts fit selects features on a validation split; this dataset has none (world: n_val > 0)"
        )
    t, prompts = _tree_and_prompts(tree, descriptions, data.classnames)
    space = select_space(cast("FeatureSource", source), t, prompts)
    scale, _ = resolve_logit_scale(cfg.method.logit_scale, data.logit_scale)
    exp = Experiment(
        encoder=data.encoder, classnames=data.classnames, train=data.feedback, validation=data.validation,
        test_loader=data.test_loader, scale=scale, device=cfg.backbone.device,
    )  # fmt: skip
    fitted = fit_models(exp, {source: space}, list(CLASSIFIERS), seed=cfg.seed, select=not no_selection)
    base, test = score_on_test(exp, fitted)
    chosen = next(f for f in fitted if f.score.classifier == classifier)
    explained = explain_model(chosen, exp, test, seed=cfg.seed)
    ConceptModel(
        model=chosen.model, space=chosen.space, classnames=data.classnames, scale=scale, background=chosen.train,
        classifier=classifier, source=source,
    ).save(out_dir)  # fmt: skip
    write_text_atomic(out_dir / CONFIG_FILE, yaml.safe_dump(cfg.to_file_dict(), sort_keys=False))
    write_json_atomic(
        out_dir / "scores.json",
        {"models": [f.score.model_dump() for f in fitted], "baselines": base, "explained": explained.model_dump()},
    )
    report = ConceptReport(
        title=f"Concept classifier on {data.dataset}", classnames=data.classnames, tree=t, model=chosen.score,
        scores=[f.score for f in fitted], baselines=base, explained=explained,
        summary={"backbone": data.backbone, "features": source, "saved model": classifier, "seed": str(cfg.seed)},
    )  # fmt: skip
    write_report(report, out_dir / "report.html")
    table = Table(title=f"test accuracy (%) on {data.dataset}")
    for col in ("classifier", "features", "columns", "validation", "test"):
        table.add_column(col)
    for f in fitted:
        s = f.score
        table.add_row(
            s.classifier, s.source, f"{s.n_selected}/{s.n_features}", f"{s.val_accuracy:.1f}", f"{s.test_accuracy:.1f}"
        )
    for name, v in base.items():
        table.add_row(name, "baseline", "", "", f"{v:.1f}")
    out.print(table)
    out.print(f"model: {escape(str(out_dir))}/model.joblib  report: {escape(str(out_dir))}/report.html")


@app.command()
@handle_errors
def explain(
    images: Annotated[list[Path], typer.Argument(help="Image files to classify and explain.")],
    model_dir: Annotated[Path, typer.Option("--model", "-m", help="Model folder written by `concepts fit`.")],
    top: Annotated[int, typer.Option("--top", help="Clues shown for and against.")] = 5,
    to: Annotated[Path | None, typer.Option("--json", help="Also write the explanations as JSON.")] = None,
) -> None:
    """Classify images with a fitted concept model and show the clues for and against its answer (SHAP).

    Examples:
      visfeed concepts explain photo1.png photo2.png -m models/market

      visfeed concepts explain photo.png -m models/market --json why.json
    """
    from visfeed.agents.resources import build_vlm
    from visfeed.evals.concepts.model import ConceptModel
    from visfeed.fileio import write_json_atomic
    from visfeed.state.config import RunConfig
    from visfeed.state.rundir import CONFIG_FILE
    from visfeed.tools.concepts.explain import explain_rows
    from visfeed.tools.concepts.features import clue_features

    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise ConfigError(f"image file(s) not found: {', '.join(missing[:5])}")
    bundle = ConceptModel.load(model_dir)
    cfg = RunConfig.load(model_dir / CONFIG_FILE)
    vlm = build_vlm(cfg)
    feats = clue_features(
        vlm, bundle.space, vlm.embed_images([str(p) for p in images]), scale=bundle.scale, device=cfg.backbone.device
    )
    explanations = explain_rows(
        bundle.model, bundle.background, bundle.space.frame(feats), images=[str(p) for p in images],
        classnames=bundle.classnames, k=top,
    )  # fmt: skip
    for ex in explanations:
        out.print(f"[bold]{escape(ex.image)}[/bold]: {escape(ex.predicted)} (p = {ex.probability:.2f})")
        for label, items in (("for", ex.for_predicted), ("against", ex.against_predicted)):
            for c in items:
                out.print(f"  {label:7s} {c.shap:+.3f}  {escape(c.clue)}")
    if to is not None:
        write_json_atomic(to, [e.model_dump() for e in explanations])
    console.print(f"[dim]{bundle.classifier} on {bundle.source} features ({len(bundle.space)} clues)[/dim]")
