"""What nasforge knows about each named dataset: shape, classes, statistics and official files.

Checksums are the MD5 digests published with the official archives (Fashion-MNIST's README,
the MNIST mirror used by PyTorch, and the CIFAR page); they guard downloads and, for CIFAR, the
pickle batches a user points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nasforge.errors import unknown


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset.

    ``input_shape`` is ``(channels, height, width)`` of one image as stored; ``mean``/``std`` are
    the per-channel statistics of the training images scaled to [0, 1] (None: do not normalize);
    ``augment`` names the default training augmentation (``"crop_flip"`` or ``"none"``);
    ``classes`` names the classes in label order (None: unknown), for predictions people can read.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: str = "none"
    classes: tuple[str, ...] | None = None

    @property
    def in_channels(self) -> int:
        """Number of image channels (what ``space.build(..., in_channels=...)`` receives)."""
        return self.input_shape[0]


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name, where to fetch it, and its published MD5 digest."""

    name: str
    md5: str
    urls: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its info, its file format, and its official files per split."""

    info: DatasetInfo
    fmt: str  # "idx" or "cifar"
    files: dict[str, tuple[RemoteFile, ...]]
    cache_name: str
    system_dirs: tuple[str, ...] = ()
    archive: RemoteFile | None = None  # the official tarball, for formats shipped as one
    apt_package: str | None = None


# Class names in label order, as published with each dataset (Fashion-MNIST's README, the CIFAR
# page's batches.meta / meta files).
_FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                    "ship", "truck")
_CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar",
    "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile",
    "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster",
    "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm",
)

_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# yann.lecun.com is MNIST's official home but often refuses downloads; PyTorch's mirror holds the
# byte-identical files (the checksum check makes the source irrelevant).
_MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")


def _idx_files(md5s: dict[str, str], bases: tuple[str, ...]) -> dict[str, tuple[RemoteFile, ...]]:
    def f(name: str) -> RemoteFile:
        return RemoteFile(name, md5s[name], tuple(b + name for b in bases))

    return {
        "train": (f("train-images-idx3-ubyte.gz"), f("train-labels-idx1-ubyte.gz")),
        "test": (f("t10k-images-idx3-ubyte.gz"), f("t10k-labels-idx1-ubyte.gz")),
    }


DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        # mean/std of the 60,000 training images (Xiao et al., 2017, Fashion-MNIST).
        info=DatasetInfo("fashion_mnist", (1, 28, 28), 10, (0.2860,), (0.3530,), "none",
                         _FMNIST_CLASSES),
        fmt="idx",
        files=_idx_files(
            {
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
            },
            (_FMNIST_URL,),
        ),
        cache_name="fashion-mnist",
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        apt_package="dataset-fashion-mnist",
    ),
    "mnist": DatasetSpec(
        info=DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,), "none",
                         tuple(str(d) for d in range(10))),
        fmt="idx",
        files=_idx_files(
            {
                "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
            },
            _MNIST_URLS,
        ),
        cache_name="mnist",
    ),
    "cifar10": DatasetSpec(
        # Statistics as used by NAS-Bench-201's training pipeline (Dong & Yang, 2020).
        info=DatasetInfo(
            "cifar10",
            (3, 32, 32),
            10,
            tuple(x / 255 for x in (125.3, 123.0, 113.9)),
            tuple(x / 255 for x in (63.0, 62.1, 66.7)),
            "crop_flip",
            _CIFAR10_CLASSES,
        ),
        fmt="cifar",
        files={
            "train": (
                RemoteFile("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                RemoteFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                RemoteFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                RemoteFile("data_batch_4", "634d18415352ddfa80567beed471001a"),
                RemoteFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            ),
            "test": (RemoteFile("test_batch", "40351d587109b95175f43aff81a1287e"),),
        },
        cache_name="cifar-10-batches-py",
        archive=RemoteFile(
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        ),
    ),
    "cifar100": DatasetSpec(
        info=DatasetInfo(
            "cifar100",
            (3, 32, 32),
            100,
            tuple(x / 255 for x in (129.3, 124.1, 112.4)),
            tuple(x / 255 for x in (68.2, 65.4, 70.4)),
            "crop_flip",
            _CIFAR100_CLASSES,
        ),
        fmt="cifar",
        files={
            "train": (RemoteFile("train", "16019d7e3df5f24257cddd939b257f8d"),),
            "test": (RemoteFile("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
        },
        cache_name="cifar-100-python",
        archive=RemoteFile(
            "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
            ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        ),
    ),
}

_ALIASES = {
    "fmnist": "fashion_mnist",
    "fashionmnist": "fashion_mnist",
    "cifar_10": "cifar10",
    "cifar_100": "cifar100",
}


def canonical_name(name: str) -> str:
    """The catalog key for a user-written dataset name (``Fashion-MNIST`` -> ``fashion_mnist``)."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    return key


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a named dataset (error lists the known names)."""
    return DATASETS[canonical_name(name)]


def dataset_info(name: str) -> DatasetInfo:
    """Shape, classes and statistics of a named dataset, without loading it."""
    return get_spec(name).info


def list_datasets() -> list[str]:
    """Names of the datasets nasforge can load by name."""
    return sorted(DATASETS)
