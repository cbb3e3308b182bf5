"""The "eyes": a small image network that names the attributes of a market-world picture.

Why a network of its own, apart from the VLM's image tower: the image side of zero-shot classification
("What do you see?") needs a *second* opinion on the picture, written in words, that the VLM then embeds.
No package ships a multimodal LLM, so this model stands in for the vision part of one. It is trained on
random attribute combinations of the synthetic world (never on class labels; see
:mod:`visfeed.tools.world.eyes.train`) and predicts, per attribute of the world vocabulary, a distribution over
its values. :func:`describe` turns a prediction into a sentence in the model's own wording (not the
caption shapes the tower was trained on), leaving out what it is unsure of.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from visfeed.errors import DataError, ModelError
from visfeed.tools.world.render import IMAGE_SIZE
from visfeed.tools.world.vocab import ATTRIBUTES, VOCABULARY

EYES_CHECKPOINT = "market_eyes.pt"
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
MIN_CONFIDENCE = 0.35
"""Attributes the eyes are less sure of are left out of the description."""
HIDDEN = -2
"""Target code of an attribute the picture hides (pattern of a halved item, flesh of a whole one)."""


class EyesNet(nn.Module):
    """A small VGG-style network with one linear head per attribute.

    A strided stem, ``depth`` convolutions per stage at 32, 16, 8 and 4 px, global average and max pooling.
    Why this shape: the attributes range from colour (any pixel) to the silhouette of an item that fills
    the picture (the deepest stage sees all of it) and a texture of one-pixel dots (the 32 px stage, two
    convolutions deep); max pooling keeps a small part (a stalk, a leaf) that averaging would dilute.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 128), depth: int = 2) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.depth = int(depth)

        def conv(i: int, o: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        layers: list[nn.Module] = conv(3, self.widths[0], stride=2)
        prev = self.widths[0]
        for k, w in enumerate(self.widths):
            if k:
                layers.append(nn.MaxPool2d(2))
            for _ in range(self.depth):
                layers += conv(prev, w)
                prev = w
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({a: nn.Linear(2 * prev, len(VOCABULARY[a])) for a in ATTRIBUTES})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute for a normalised ``(B, 3, 64, 64)`` batch."""
        f = self.features(x)
        h = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return {a: head(h) for a, head in self.heads.items()}


def to_batch(images: np.ndarray) -> torch.Tensor:
    """``(B, 64, 64, 3)`` uint8 -> normalised float ``(B, 3, 64, 64)``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def load_image_bytes(data: bytes, name: str = "image") -> np.ndarray:
    """Decode an image file's bytes to the ``(64, 64, 3)`` uint8 array the eyes look at."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img.convert("RGB")
            if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
                rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot decode {name}: {exc}") from exc


@dataclass(frozen=True)
class Seen:
    """What the eyes saw in one picture: the most likely value of each attribute and its probability."""

    values: dict[str, str]
    confidence: dict[str, float]


class Eyes:
    """A trained :class:`EyesNet` ready to look at pictures (CPU, eval mode, no gradients)."""

    def __init__(self, net: EyesNet, *, identity: str = "eyes", min_confidence: float = MIN_CONFIDENCE) -> None:
        self.net = net.eval()
        self.identity = identity
        self.min_confidence = min_confidence

    @classmethod
    def load(cls, path: str | Path | None = None, **kw: Any) -> Eyes:
        """Load a checkpoint written by :func:`save_eyes` (None: the shipped one)."""
        path = Path(path) if path is not None else shipped_eyes()
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            net = EyesNet(blob["widths"], blob["depth"])
            net.load_state_dict(blob["state_dict"])
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise ModelError(
                f"cannot load the eyes checkpoint {path}: {exc}; train one with `visfeed world train-eyes`"
            ) from exc
        from visfeed.fileio import sha256_file

        return cls(net, identity=f"eyes@{sha256_file(path)[:12]}", **kw)

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
        """Per attribute, ``(B, n_values)`` probabilities for ``(B, 64, 64, 3)`` uint8 pictures."""
        out: dict[str, list[np.ndarray]] = {a: [] for a in ATTRIBUTES}
        for k in range(0, len(images), batch):
            logits = self.net(to_batch(images[k : k + batch]))
            for a in ATTRIBUTES:
                out[a].append(F.softmax(logits[a], dim=-1).numpy())
        return {a: np.concatenate(v) for a, v in out.items()}

    def see(self, images: np.ndarray) -> list[Seen]:
        """The most likely value of every attribute, per picture."""
        probs = self.probabilities(images)
        seen = []
        for i in range(len(images)):
            values, conf = {}, {}
            for a in ATTRIBUTES:
                j = int(probs[a][i].argmax())
                values[a], conf[a] = VOCABULARY[a][j], float(probs[a][i, j])
            seen.append(Seen(values, conf))
        return seen

    def describe(self, images: np.ndarray) -> list[str]:
        """One sentence per picture, in the eyes' own wording."""
        return [describe(s, self.min_confidence) for s in self.see(images)]


def shipped_eyes() -> Path:
    """Path of the committed eyes checkpoint inside the installed package."""
    path = Path(str(resources.files("visfeed").joinpath("assets", EYES_CHECKPOINT)))
    if not path.is_file():
        raise ModelError(f"the shipped eyes checkpoint {path} is missing; train one with `visfeed world train-eyes`")
    return path


def save_eyes(net: EyesNet, out: Path) -> None:
    """Write the weights and the shape they need, atomically (a checkpoint is meant to be shared)."""
    from visfeed.fileio import write_atomic

    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    blob = {"widths": list(net.widths), "depth": net.depth, "state_dict": state}
    write_atomic(out, lambda f: torch.save(blob, f), mode=0o644)


# ----------------------------------------------------------------------------- wording
_COUNT = {"single": "one", "pair": "two", "cluster": "a bunch of"}
_SHAPE = {
    "heart": "heart-shaped",
    "teardrop": "pear-shaped",
    "cone": "tapering",
    "floret": "branching",
    "long": "elongated",
    "flat": "flattened",
}
_SKIN = {
    "smooth": "a smooth skin",
    "stripes": "a striped skin",
    "spots": "a speckled skin",
    "seeds": "tiny seeds dotting the skin",
    "dimples": "a pitted skin",
    "scales": "a scaly skin",
    "kernels": "rows of kernels",
    "hairy": "a hairy skin",
    "ribs": "a ridged skin",
    "bumpy": "a knobbly skin",
    "fuzzy": "a fuzzy skin",
}
_TOP = {
    "stem": "a stalk on top",
    "leaf": "a leaf on top",
    "cap": "a cap on top",
    "crown": "a crown of spiky leaves",
    "greens": "leafy greens on top",
    "husk": "a papery husk",
}


def describe(seen: Seen, min_confidence: float = MIN_CONFIDENCE) -> str:
    """A sentence of what was seen, e.g. ``I see two small red heart-shaped items with a stalk on top.``.

    Attributes below ``min_confidence`` are left out, as a careful observer would.
    """
    v, ok = seen.values, {a: seen.confidence[a] >= min_confidence for a in ATTRIBUTES}
    many = ok["count"] and v["count"] != "single"
    words = [_COUNT[v["count"]] if ok["count"] else "some"]
    words += [v[a] for a in ("size", "color") if ok[a]]
    if ok["shape"]:
        words.append(_SHAPE.get(v["shape"], v["shape"]))
    words.append("items" if many or not ok["count"] else "item")
    halved = ok["cut"] and v["cut"] == "halved"
    extras = []
    if halved:
        extras.append("cut in half" + (f" to show {v['inside']} flesh" if ok["inside"] else ""))
    elif ok["pattern"]:
        extras.append("with " + _SKIN[v["pattern"]])
    if ok["top"] and v["top"] in _TOP:
        extras.append(("and " if extras else "with ") + _TOP[v["top"]])
    return "I see " + " ".join(words) + (" " + " ".join(extras) if extras else "") + "."
