"""Miniature on-disk datasets, written by the tests, in each dataset's real format.

Every builder returns ``{absolute image path: expected readable class name}`` so tests can check that
the adapter's labels point at the right names.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

Truth = dict[str, str]

#: Stanford Dogs fixture: breed folder -> the colour its dogs are painted in; the boxes of the two-dog images.
DOG_COLOURS = {
    "n02085620-Chihuahua": (230, 30, 30),
    "n02085782-Japanese_spaniel": (30, 230, 30),
    "n02086240-Shih-Tzu": (30, 30, 230),
}
DOG_BOXES = [(5, 4, 15, 12), (18, 10, 30, 22)]


def write_image(path: Path, seed: int = 0, fmt: str | None = None) -> str:
    """A tiny distinct image (8x8) at ``path``; format from the suffix unless given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path, format=fmt)
    return str(path.absolute())


def _jpgs(folder: Path, names: list[str], seed: int) -> list[str]:
    return [write_image(folder / n, seed + i, "JPEG") for i, n in enumerate(names)]


class Builders:
    """One builder per on-disk format (and the tiny-image writer itself)."""

    image = staticmethod(write_image)

    @staticmethod
    def imagefolder(root: Path, classes: dict[str, int], seed: int = 0) -> Truth:
        truth: Truth = {}
        for c, (name, n) in enumerate(classes.items()):
            for i in range(n):
                truth[write_image(root / name / f"img{i}.png", seed + 100 * c + i)] = name
        return truth

    @staticmethod
    def flowers102(root: Path) -> Truth:
        from scipy.io import savemat

        base = root / "flowers-102"
        labels = [1, 2, 3] * 4  # image i+1 has labels[i]; classes 1..3
        for i in range(len(labels)):
            write_image(base / "jpg" / f"image_{i + 1:05d}.jpg", i, "JPEG")
        savemat(base / "imagelabels.mat", {"labels": np.array([labels])})
        savemat(
            base / "setid.mat",
            {
                "trnid": np.array([[1, 2, 3, 4, 5, 6]]),
                "valid": np.array([[7, 8, 9]]),
                "tstid": np.array([[10, 11, 12]]),
            },
        )
        names = ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
        return {
            str((base / "jpg" / f"image_{i + 1:05d}.jpg").absolute()): names[lab - 1] for i, lab in enumerate(labels)
        }

    @staticmethod
    def dtd(root: Path) -> Truth:
        data = root / "dtd" / "dtd"
        truth: Truth = {}
        for split, idx in (("train", [1, 2]), ("val", [3]), ("test", [4])):
            lines = []
            for cls in ("banded", "zigzagged"):
                for i in idx:
                    name = f"{cls}_{i:04d}.jpg"
                    truth[write_image(data / "images" / cls / name, i, "JPEG")] = cls
                    lines.append(f"{cls}/{name}")
            (data / "labels").mkdir(parents=True, exist_ok=True)
            (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
        return truth

    @staticmethod
    def eurosat(root: Path) -> Truth:
        readable = {"AnnualCrop": "annual crop land", "Forest": "forest", "SeaLake": "lake or sea"}
        truth: Truth = {}
        for c, (cls, name) in enumerate(readable.items()):
            for p in _jpgs(root / "eurosat" / "2750" / cls, [f"{cls}_{i}.jpg" for i in range(1, 5)], 10 * c):
                truth[p] = name
        return truth

    @staticmethod
    def food101(root: Path) -> Truth:
        base = root / "food-101"
        truth: Truth = {}
        meta: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
        for c, cls in enumerate(("apple_pie", "baby_back_ribs")):
            for i in range(5):
                split = "train" if i < 3 else "test"
                truth[write_image(base / "images" / cls / f"{100 + i}.jpg", 10 * c + i, "JPEG")] = cls.replace("_", " ")
                meta[split].setdefault(cls, []).append(f"{cls}/{100 + i}")
        (base / "meta").mkdir(parents=True)
        for split, content in meta.items():
            (base / "meta" / f"{split}.json").write_text(json.dumps(content))
        return truth

    @staticmethod
    def oxford_pets(root: Path) -> Truth:
        base = root / "oxford-iiit-pet"
        breeds = [
            ("Abyssinian", 1, 1, "Abyssinian"),
            ("american_bulldog", 2, 2, "american bulldog"),
            ("american_pit_bull_terrier", 3, 2, "american pit bull terrier"),
            ("basset_hound", 4, 2, "basset hound"),
            ("beagle", 5, 2, "beagle"),
            ("Bengal", 6, 1, "Bengal"),
        ]
        truth: Truth = {}
        lines: dict[str, list[str]] = {"trainval": [], "test": []}
        for breed, label, species, name in breeds:
            for i in range(1, 4):
                split = "trainval" if i < 3 else "test"
                truth[write_image(base / "images" / f"{breed}_{i}.jpg", 10 * label + i, "JPEG")] = name
                lines[split].append(f"{breed}_{i} {label} {species} 1")
        (base / "annotations").mkdir(parents=True)
        for split, content in lines.items():
            (base / "annotations" / f"{split}.txt").write_text("\n".join(content) + "\n")
        return truth

    @staticmethod
    def caltech101(root: Path) -> Truth:
        base = root / "caltech101" / "101_ObjectCategories"
        readable = {"Faces_easy": "centered face", "accordion": "accordion", "car_side": "side of a car"}
        truth: Truth = {}
        _jpgs(base / "BACKGROUND_Google", ["image_0001.jpg"], 99)  # not a class in torchvision
        for c, (cls, name) in enumerate(readable.items()):
            for p in _jpgs(base / cls, [f"image_{i:04d}.jpg" for i in range(1, 5)], 10 * c):
                truth[p] = name
        return truth

    @staticmethod
    def sun397(root: Path, partitions: bool = True) -> Truth:
        data = root / "SUN397"
        cats = {"/a/abbey": "abbey", "/b/bakery/shop": "bakery shop"}
        data.mkdir(parents=True)
        (data / "ClassName.txt").write_text("\n".join(cats) + "\n")
        truth: Truth = {}
        train, test = [], []
        for c, (cat, name) in enumerate(cats.items()):
            for i in range(4):
                rel = f"{cat}/sun_{c}{i}abc.jpg"
                truth[write_image(data / rel.lstrip("/"), 10 * c + i, "JPEG")] = name
                (train if i < 2 else test).append(rel)
        if partitions:
            (root / "Training_01.txt").write_text("\n".join(train) + "\n")
            (root / "Testing_01.txt").write_text("\n".join(test) + "\n")
        return truth

    @staticmethod
    def stanford_cars(root: Path) -> Truth:
        from scipy.io import savemat

        base = root / "stanford_cars"
        classes = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012"]
        truth: Truth = {}
        dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
        for split, folder, mat in (
            ("train", "cars_train", base / "devkit" / "cars_train_annos.mat"),
            ("test", "cars_test", base / "cars_test_annos_withlabels.mat"),
        ):
            rows = []
            for i in range(6):
                fname = f"{i + 1:05d}.jpg"
                label = i % 3 + 1
                truth[write_image(base / folder / fname, i + (0 if split == "train" else 50), "JPEG")] = classes[
                    label - 1
                ]
                rows.append((1, 1, 8, 8, label, fname))
            mat.parent.mkdir(parents=True, exist_ok=True)
            savemat(mat, {"annotations": np.array([rows], dtype=dtype)})
        savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array([classes], dtype=object)})
        return truth

    @staticmethod
    def fgvc_aircraft(root: Path, coop: bool = False) -> Truth:
        data = root / "fgvc_aircraft" if coop else root / "fgvc-aircraft-2013b" / "data"
        variants = ["707-320", "A300B4", "Cessna 172"]
        data.mkdir(parents=True)
        (data / "variants.txt").write_text("\n".join(variants) + "\n")
        truth: Truth = {}
        n = 0
        for split in ("train", "val", "test"):
            lines = []
            for v in variants:
                for _ in range(2 if split == "train" else 1):
                    image_id = f"{1000000 + n}"
                    truth[write_image(data / "images" / f"{image_id}.jpg", n, "JPEG")] = v
                    lines.append(f"{image_id} {v}")
                    n += 1
            (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
        return truth

    @staticmethod
    def imagenet(root: Path) -> Truth:
        readable = {"n01440764": "tench", "n01443537": "goldfish", "n04008634": "projectile"}
        truth: Truth = {}
        for c, (wnid, name) in enumerate(readable.items()):
            for split, n in (("train", 3), ("val", 2)):
                for i in range(n):
                    p = write_image(root / split / wnid / f"{wnid}_{split}_{i}.JPEG", 10 * c + i, "JPEG")
                    truth[p] = name
        return truth

    @staticmethod
    def stanford_dogs(root: Path, per_breed: int = 5, n_train: int = 3) -> Truth:
        """Images/, Annotation/ (VOC XML, no suffix) and lists/*.mat as the dataset ships them.

        Each image is noise with its dog boxes painted in the breed's colour (DOG_COLOURS); the first image
        of every breed has two dogs, so its crop is the union of two boxes (DOG_BOXES).
        """
        from scipy.io import savemat

        truth: Truth = {}
        lists: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
        for b, (folder, colour) in enumerate(DOG_COLOURS.items()):
            wnid = folder.partition("-")[0]
            for i in range(per_breed):
                stem = f"{wnid}_{i + 1}"
                boxes = DOG_BOXES if i == 0 else DOG_BOXES[:1]
                pixels = np.random.default_rng(10 * b + i).integers(0, 255, (30, 40, 3), dtype=np.uint8)
                for left, top, right, bottom in boxes:
                    pixels[top:bottom, left:right] = colour
                image = root / "Images" / folder / f"{stem}.jpg"
                image.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(image, format="JPEG", quality=98)
                truth[str(image.absolute())] = folder.partition("-")[2].replace("_", " ")
                objects = "".join(
                    f"<object><name>{folder.partition('-')[2]}</name><pose>Unspecified</pose><truncated>0</truncated>"
                    f"<difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                    f"<ymax>{y1}</ymax></bndbox></object>"
                    for x0, y0, x1, y1 in boxes
                )
                annotation = root / "Annotation" / folder / stem
                annotation.parent.mkdir(parents=True, exist_ok=True)
                annotation.write_text(
                    f"<annotation><folder>{wnid[1:]}</folder><filename>{stem}</filename><source><database>ImageNet "
                    "database</database></source><size><width>40</width><height>30</height><depth>3</depth></size>"
                    f"<segment>0</segment>{objects}</annotation>"
                )
                lists["train" if i < n_train else "test"].append((f"{folder}/{stem}.jpg", b + 1))
        (root / "lists").mkdir(parents=True, exist_ok=True)
        for split, entries in {**lists, "file": lists["train"] + lists["test"]}.items():
            files = np.empty((len(entries), 1), dtype=object)
            annotations = np.empty((len(entries), 1), dtype=object)
            for row, (rel, _) in enumerate(entries):
                files[row, 0], annotations[row, 0] = rel, rel.removesuffix(".jpg")
            labels = np.array([[label] for _, label in entries], dtype=np.uint8)
            savemat(
                root / "lists" / f"{split}_list.mat",
                {"file_list": files, "annotation_list": annotations, "labels": labels},
            )
        return truth

    @staticmethod
    def cifar(root: Path, name: str) -> tuple[dict[str, np.ndarray], list[str]]:
        """Pickled batches in CIFAR's python format; returns the pixel arrays written per batch file."""
        rng = np.random.default_rng(0)
        if name == "cifar10":
            folder, names = root / "cifar-10-batches-py", ["airplane", "automobile", "bird"]
            files, key, meta_file, meta_key = (
                ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"],
                "labels",
                "batches.meta",
                "label_names",
            )
        else:
            folder, names = root / "cifar-100-python", ["apple", "aquarium_fish", "maple_tree"]
            files, key, meta_file, meta_key = ["train", "test"], "fine_labels", "meta", "fine_label_names"
        folder.mkdir(parents=True)
        written = {}
        for f in files:
            data = rng.integers(0, 255, (6, 3072), dtype=np.uint8)
            with open(folder / f, "wb") as fh:
                pickle.dump({"data": data, key: [0, 1, 2, 0, 1, 2]}, fh)
            written[f] = data
        with open(folder / meta_file, "wb") as fh:
            pickle.dump({meta_key: names}, fh)
        return written, names


@pytest.fixture
def build() -> type[Builders]:
    return Builders
