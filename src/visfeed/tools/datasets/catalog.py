"""What each dataset source expects on disk, in one place, so errors, ``list_datasets`` and docs agree."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from visfeed.errors import DataError


class DatasetInfo(BaseModel):
    """One supported dataset name, its expected layout under ``root`` and where its splits come from."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Name to pass to load_dataset / --dataset.")
    title: str = Field(description="Human name of the dataset.")
    layout: str = Field(description="Expected files under the --root folder (ROOT).")
    splits: str = Field(description="Where the train (shots), validation and test splits come from.")
    classnames: str = Field(description="Where the readable class names come from.")
    downloadable: bool = Field(description="Whether --download can fetch it (through torchvision).")


_HOLDOUT = "no official split: test = 30% of each class held out with a fixed seed (0), independent of --seed"
_CARVED = "validation carved from train, disjoint from the shots"

_ENTRIES: list[DatasetInfo] = [
    DatasetInfo(
        name="world",
        title="The synthetic market world (visfeed's own, docs/world.md)",
        layout="none, no ROOT: rendered on demand into $VISFEED_CACHE_DIR/world from the shipped market spec "
        "(or --set data.world_spec=FILE)",
        splits="rendered per seed: k shots, n_val validation and n_test test images per class",
        classnames="the spec's class names",
        downloadable=False,
    ),
    DatasetInfo(
        name="flowers102",
        title="Oxford Flowers-102 (torchvision Flowers102)",
        layout="ROOT/flowers-102/jpg/image_00001.jpg ...\nROOT/flowers-102/imagelabels.mat\nROOT/flowers-102/setid.mat",
        splits="official train / val / test (setid.mat)",
        classnames="curated: CLIP's 102 flower names (assets/classnames/flowers102.json)",
        downloadable=True,
    ),
    DatasetInfo(
        name="dtd",
        title="Describable Textures (torchvision DTD, partition 1)",
        layout="ROOT/dtd/dtd/images/<texture>/<file>.jpg\nROOT/dtd/dtd/labels/train1.txt, val1.txt, test1.txt",
        splits="official train1 / val1 / test1",
        classnames="derived: the 47 texture folder names (as CLIP uses them)",
        downloadable=True,
    ),
    DatasetInfo(
        name="eurosat",
        title="EuroSAT RGB (torchvision EuroSAT)",
        layout="ROOT/eurosat/2750/<Class>/<Class>_<n>.jpg   (10 class folders: AnnualCrop ... SeaLake)",
        splits=f"{_HOLDOUT}; {_CARVED}",
        classnames="curated: CLIP's names, e.g. AnnualCrop -> 'annual crop land' (eurosat.json)",
        downloadable=True,
    ),
    DatasetInfo(
        name="food101",
        title="Food-101 (torchvision Food101)",
        layout="ROOT/food-101/images/<class>/<id>.jpg\nROOT/food-101/meta/train.json, test.json",
        splits=f"official train / test; {_CARVED}",
        classnames="derived: meta class keys with '_' -> ' ' (equals CLIP's list)",
        downloadable=True,
    ),
    DatasetInfo(
        name="oxford_pets",
        title="Oxford-IIIT Pet (torchvision OxfordIIITPet)",
        layout="ROOT/oxford-iiit-pet/images/<Breed>_<n>.jpg\nROOT/oxford-iiit-pet/annotations/trainval.txt, test.txt",
        splits=f"official trainval / test; {_CARVED}",
        classnames="derived: breed from the image file names, '_' -> ' ' (equals CLIP's list)",
        downloadable=True,
    ),
    DatasetInfo(
        name="caltech101",
        title="Caltech-101 (torchvision Caltech101, 101 classes, no BACKGROUND_Google)",
        layout="ROOT/caltech101/101_ObjectCategories/<category>/image_0001.jpg ...",
        splits=f"{_HOLDOUT}; {_CARVED}",
        classnames="curated: CLIP's names by folder, e.g. Faces_easy -> 'centered face' (caltech101.json)",
        downloadable=True,
    ),
    DatasetInfo(
        name="sun397",
        title="SUN397 (torchvision SUN397)",
        layout="ROOT/SUN397/ClassName.txt\nROOT/SUN397/<l>/<category>[/<sub>]/sun_<id>.jpg\n"
        "optional: Training_01.txt + Testing_01.txt (from Partitions.zip) in ROOT, ROOT/Partitions or "
        "ROOT/SUN397",
        splits=f"Training_01 / Testing_01 when present, else {_HOLDOUT}; {_CARVED}",
        classnames="derived: ClassName.txt paths with '_' and '/' -> ' ' (as clip_benchmark)",
        downloadable=True,
    ),
    DatasetInfo(
        name="stanford_cars",
        title="Stanford Cars (torchvision StanfordCars; needs scipy)",
        layout="ROOT/stanford_cars/devkit/cars_meta.mat, cars_train_annos.mat\n"
        "ROOT/stanford_cars/cars_train/*.jpg, cars_test/*.jpg\n"
        "ROOT/stanford_cars/cars_test_annos_withlabels.mat",
        splits=f"official train / test; {_CARVED}",
        classnames="derived: cars_meta.mat class_names (as CLIP uses them)",
        downloadable=False,
    ),
    DatasetInfo(
        name="fgvc_aircraft",
        title="FGVC-Aircraft 2013b, variants (torchvision FGVCAircraft)",
        layout="ROOT/fgvc-aircraft-2013b/data/images/<id>.jpg\nROOT/fgvc-aircraft-2013b/data/variants.txt\n"
        "ROOT/fgvc-aircraft-2013b/data/images_variant_{train,val,test}.txt",
        splits="official train / val / test",
        classnames="derived: variants.txt (as CLIP uses them)",
        downloadable=True,
    ),
    DatasetInfo(
        name="cifar10",
        title="CIFAR-10 (torchvision CIFAR10; pixels cached once as PNG files)",
        layout="ROOT/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta\n"
        "(PNG cache written to ROOT/cifar-10-batches-py-png/ unless cache_dir is given)",
        splits=f"official train / test; {_CARVED}",
        classnames="derived: batches.meta label names (equals CLIP's list)",
        downloadable=True,
    ),
    DatasetInfo(
        name="cifar100",
        title="CIFAR-100 (torchvision CIFAR100; pixels cached once as PNG files)",
        layout="ROOT/cifar-100-python/train, test, meta\n"
        "(PNG cache written to ROOT/cifar-100-python-png/ unless cache_dir is given)",
        splits=f"official train / test; {_CARVED}",
        classnames="derived: fine label names with '_' -> ' ' (equals CLIP's list)",
        downloadable=True,
    ),
    DatasetInfo(
        name="imagenet",
        title="ImageNet-1k (ILSVRC 2012) from ImageFolder trees",
        layout="ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG (val sorted into wnid folders)\n"
        "or CoOp's ROOT/imagenet/images/{train,val}/<wnid>/ (also ROOT/images/{train,val})",
        splits=f"train -> shots; val -> test (ImageNet has no public test labels); {_CARVED}",
        classnames="curated: CLIP's 1000 names by WordNet id (imagenet.json), any subset of wnids works",
        downloadable=False,
    ),
    DatasetInfo(
        name="stanford_dogs",
        title="Stanford Dogs (120 breeds; needs scipy for its .mat lists)",
        layout="ROOT/Images/<wnid>-<Breed>/<wnid>_<n>.jpg   e.g. ROOT/Images/n02085620-Chihuahua/n02085620_7.jpg\n"
        "ROOT/lists/train_list.mat, test_list.mat   (file_list: paths relative to Images/)\n"
        "ROOT/Annotation/<wnid>-<Breed>/<wnid>_<n>   (PASCAL VOC XML boxes; needed for data.stanford_dogs.crop)\n"
        "(crops written to ROOT/Images-cropped/ unless data.stanford_dogs.crop_dir is set)",
        splits=f"official train / test lists; {_CARVED}; options: data.stanford_dogs.breeds (a subset), .crop (the box)",
        classnames="derived: the folder name without its WordNet id, '_' -> ' ' (n02085782-Japanese_spaniel -> "
        "'Japanese spaniel')",
        downloadable=False,
    ),
    DatasetInfo(
        name="imagefolder",
        title="Your images in class folders",
        layout="ROOT/<class>/**/*.jpg   or   ROOT/train/<class>/..., ROOT/val/<class>/..., ROOT/test/<class>/...\n"
        "(with only train/ and val/, val is used as the test split)",
        splits=f"train/val/test folders when present, else {_HOLDOUT}; {_CARVED} when there is no val/",
        classnames="derived: folder names with '_' -> ' '; override with classnames_file",
        downloadable=False,
    ),
    DatasetInfo(
        name="manifest",
        title="CSV or JSONL manifest (ROOT is the manifest file)",
        layout="ROOT = labels.csv with columns path,label[,split]  or  labels.jsonl with "
        '{"path": ..., "label": ..., "split": ...} per line\n'
        "relative paths resolve against the manifest's folder; split is train, val or test",
        splits=f"the split column when present (missing test -> {_HOLDOUT}); {_CARVED} when there is no val",
        classnames="the label strings (integer labels need classnames_file)",
        downloadable=False,
    ),
    DatasetInfo(
        name="coop:<dataset>",
        title="CoOp fixed splits (split_zhou_*.json) for caltech101, oxford_pets, "
        "stanford_cars, flowers102, food101, sun397, dtd, eurosat, ucf101; plus fgvc_aircraft and imagenet",
        layout="ROOT = CoOp's $DATA folder (or the dataset folder, or the split JSON itself), e.g.\n"
        "ROOT/caltech-101/101_ObjectCategories/ + ROOT/caltech-101/split_zhou_Caltech101.json\n"
        "ROOT/oxford_flowers/jpg/ + split_zhou_OxfordFlowers.json; ROOT/eurosat/2750/ + split_zhou_EuroSAT.json\n"
        "ROOT/fgvc_aircraft/{images/, variants.txt, images_variant_*.txt}; ROOT/imagenet/images/{train,val}/",
        splits="the split file's train / val / test (CoOp's own protocol draws min(k, 4) validation shots: "
        "pass n_val_per_class to match it)",
        classnames="the split file's class names with '_' -> ' '",
        downloadable=False,
    ),
]

CATALOG: dict[str, DatasetInfo] = {info.name: info for info in _ENTRIES}


def layout_of(name: str) -> str:
    """Expected-layout text for a dataset name (``coop:x`` maps to the CoOp entry)."""
    key = "coop:<dataset>" if name.startswith("coop") else name
    return CATALOG[key].layout


def missing_data(name: str, looked_at: Path | str, *, downloadable: bool, detail: str = "") -> DataError:
    """Build the error for absent data: the dataset, the path looked at, the layout, and how to fetch it."""
    layout = "\n".join(f"    {line}" for line in layout_of(name).splitlines())
    fetch = (
        "Pass --download (download=True) to fetch it with torchvision into ROOT."
        if downloadable
        else "visfeed cannot download it; place the files as shown."
    )
    extra = f" {detail}" if detail else ""
    return DataError(
        f"dataset {name!r}: no data found at {looked_at}.{extra}\nExpected layout (ROOT = --root):\n{layout}\n{fetch}"
    )
