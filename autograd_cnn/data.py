"""Data sets and mini-batches.

    (x_train, y_train), (x_test, y_test) = load_mnist()        # like keras.datasets.mnist
    (x_train, y_train), (x_test, y_test) = load_sample(split=True)   # ships with the package
    (x_train, y_train), (x_test, y_test) = load_images("sample")     # float32 (N, 1, 28, 28) in [0, 1]
    for xb, yb in DataLoader(x_train, y_train, batch_size=128): ...
    for xb, yb in DataLoader(x_train, y_train, transform=transforms.RandomHorizontalFlip()): ...

Every loader looks for its files, in order, in ``$AUTOGRAD_CNN_DATA`` (the folder itself or its
``<name>/`` subfolder), in the cache folder (``$XDG_CACHE_HOME/autograd_cnn/<name>``, by default
``~/.cache/autograd_cnn/<name>``) and in Debian's ``/usr/share/datasets/<name>``. A file counts only
when its SHA-256 is the published one. With nothing found it downloads from the public mirrors into
the cache: to a temporary file, checked, then renamed, so a failed download leaves nothing behind.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import checks, transforms  # noqa: F401  (data.transforms, the API's name for it)
from .errors import ArgumentError, ArgumentTypeError, AutogradError
from .given import class_indices, finite, samples  # noqa: F401  (imported from here across the package)
from .loader import DataLoader  # noqa: F401  (data.DataLoader)

DATA_ENV = "AUTOGRAD_CNN_DATA"
DEBIAN_DATA = Path("/usr/share/datasets")
SAMPLE_DIR = Path(__file__).parent / "datasets"


class DataError(AutogradError, OSError):
    """A data file that is missing, truncated, foreign or failed its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name, size in bytes and SHA-256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DataSet:
    """A named set of published files, the mirrors that serve them and how else to get them."""

    name: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    apt_package: str | None = None


# Checksums as published alongside each data set (MNIST and CIFAR-10: the values that
# TensorFlow Datasets, Keras and torchvision check; Fashion-MNIST: Debian's package files).
DATASETS: dict[str, DataSet] = {
    "mnist": DataSet("mnist", (
        RemoteFile("train-images-idx3-ubyte.gz", 9912422,
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        RemoteFile("train-labels-idx1-ubyte.gz", 28881,
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        RemoteFile("t10k-images-idx3-ubyte.gz", 1648877,
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 4542,
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ), ("https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/")),
    "fashion-mnist": DataSet("fashion-mnist", (
        RemoteFile("train-images-idx3-ubyte.gz", 26421856,
                   "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
        RemoteFile("train-labels-idx1-ubyte.gz", 29491,
                   "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
        RemoteFile("t10k-images-idx3-ubyte.gz", 4422079,
                   "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 5125,
                   "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
    ), ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",), apt_package="dataset-fashion-mnist"),
    "cifar10": DataSet("cifar10", (
        RemoteFile("cifar-10-python.tar.gz", 170498071,
                   "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    ), ("https://www.cs.toronto.edu/~kriz/",)),
}

# --------------------------------------------------------------------------- IDX files

# The third byte of an IDX magic number names the element type (big-endian on disk).
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, un-gzipped when it starts with the gzip magic (whatever its name)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # a cut-off or damaged download
        raise DataError(f"read_idx: {path} is a damaged gzip file ({e}); delete it and download it again") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    The header is checked: two zero bytes, a type code, the number of dimensions, then each
    size as a big-endian uint32; the data must hold exactly that many elements.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"read_idx: path must be a file name (a str or a pathlib.Path), got {path!r:.60}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"read_idx: no file at {path}")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise DataError(f"read_idx: {path} is not an IDX file (its first bytes are {raw[:4].hex() or 'missing'}; "
                        "an IDX file starts 0000 then a type code 08-0e and the number of dimensions)")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"read_idx: {path} is truncated inside its header ({len(raw)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DataError(f"read_idx: {path} is {what}: shape {shape} needs {expected} bytes of data, "
                        f"the file has {found}; delete it and get it again")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


# --------------------------------------------------------------------------- finding files

def cache_dir() -> Path:
    """The user cache folder for downloads: ``$XDG_CACHE_HOME/autograd_cnn`` or ``~/.cache/autograd_cnn``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autograd_cnn"


def writable_cache_dir() -> Path:
    """``cache_dir()``, checked before a download makes it: where a file stands in the way (XDG_CACHE_HOME
    or HOME naming a file) a DataError names it and the variable to set, instead of an OSError
    from deep inside the download."""
    folder = cache_dir()
    for above in (folder, *folder.parents):
        if above.is_dir():
            return folder
        if above.exists() or above.is_symlink():
            xdg = os.environ.get("XDG_CACHE_HOME")
            which = f"XDG_CACHE_HOME={xdg}" if xdg else f"HOME={os.path.expanduser('~')}"
            raise DataError(f"the download folder {folder} cannot be made: {above} is a file, not a folder "
                            f"(from {which}); set XDG_CACHE_HOME to a folder you can write to, or {DATA_ENV} "
                            "to a folder that holds the data files")
    return folder


def search_dirs(name: str) -> list[Path]:
    """The folders a loader looks in for data set ``name``, in order."""
    dirs = []
    env = os.environ.get(DATA_ENV)
    if env:
        dirs += [Path(env) / name, Path(env)]
    dirs += [cache_dir() / name, DEBIAN_DATA / name]
    return dirs


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_published(path: Path, remote: RemoteFile) -> bool:
    # The size first: it rules out most foreign files without reading them.
    return path.is_file() and path.stat().st_size == remote.size and sha256_of(path) == remote.sha256


def download(url: str, dest: str | os.PathLike, sha256: str, size: int | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, checking its SHA-256; nothing is left at ``dest`` on failure.

    The bytes go to a temporary file in the same folder, which is renamed to ``dest`` only
    once its size and checksum match.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest, got = hashlib.sha256(), 0
        request = urllib.request.Request(url, headers={"User-Agent": "autograd-cnn"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            total = size or int(response.headers.get("Content-Length") or 0) or None
            with _progress_bar(total, dest.name, progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    digest.update(block)
                    got += len(block)
                    bar.update(len(block))
        if size is not None and got != size:
            raise DataError(f"download: {url} gave {got} bytes, expected {size}; nothing was saved")
        if digest.hexdigest() != sha256:
            raise DataError(f"download: {url} failed its checksum (SHA-256 {digest.hexdigest()}, "
                            f"expected {sha256}); the file was corrupted on the way and nothing was saved")
        os.replace(tmp, dest)
        return dest
    except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
        if isinstance(e, DataError):
            raise
        why = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        raise DataError(f"download: could not get {url}: {why}") from e
    finally:
        tmp.unlink(missing_ok=True)


def _progress_bar(total: int | None, name: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm  # imported here: `import autograd_cnn` stays light

    return tqdm(total=total, desc=f"downloading {name}", unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=False)


def fetch(name: str, mirrors: Sequence[str] | None = None, download_missing: bool = True,
          progress: bool = True) -> dict[str, Path]:
    """The verified local path of each file of data set ``name``, downloading what is missing.

    ``mirrors`` replaces the data set's list of base URLs (each ends with ``/``).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise DataError(f"fetch: unknown data set {name!r:.60}; known: {', '.join(DATASETS)}")
    if mirrors is not None:
        if isinstance(mirrors, (str, bytes)) or not isinstance(mirrors, Sequence) or \
                not all(isinstance(m, str) for m in mirrors):
            raise ArgumentTypeError(f"fetch: mirrors must be a list of base URLs, e.g. mirrors=[{mirrors!r:.60}], "
                                    f"got {type(mirrors).__name__}")
        mirrors = [m if m.endswith("/") else m + "/" for m in mirrors]  # a base URL: the file's name goes after
    dataset = DATASETS[name]
    found: dict[str, Path] = {}
    failures: list[str] = []
    for remote in dataset.files:
        for folder in search_dirs(name):
            path = folder / remote.name
            if _is_published(path, remote):
                found[remote.name] = path
                break
            if path.is_file():  # e.g. Fashion-MNIST's file of the same name in a folder searched for MNIST
                failures.append(f"{path} is not the published {name} file (its size or SHA-256 differs)")
    missing = [f for f in dataset.files if f.name not in found]
    if missing and download_missing:
        writable_cache_dir()
        unreachable: set[str] = set()  # mirrors that did not answer: not asked again for the next file
        for remote in missing:
            for base in mirrors or dataset.mirrors:
                if base in unreachable:
                    continue
                try:
                    found[remote.name] = download(base + remote.name, cache_dir() / name / remote.name,
                                                  remote.sha256, remote.size, progress=progress)
                    break
                except DataError as e:
                    failures.append(str(e))
                    if isinstance(e.__cause__, OSError) and not isinstance(e.__cause__, urllib.error.HTTPError):
                        unreachable.add(base)
    still_missing = [f.name for f in dataset.files if f.name not in found]
    if still_missing:
        if not download_missing:
            failures.append("no download was tried (download_missing=False)")
        raise DataError(_not_found_message(dataset, still_missing, failures, mirrors))
    return found


def _not_found_message(dataset: DataSet, missing: list[str], failures: list[str],
                       mirrors: Sequence[str] | None) -> str:
    lines = [f"{dataset.name}: could not find {', '.join(missing)}.", "Looked in (a file counts only "
             "when its SHA-256 is the published one):"]
    lines += [f"  {d}" for d in search_dirs(dataset.name)]
    lines += ["What went wrong:"] + [f"  {f}" for f in failures]
    lines += ["To get the files: download them from "
              + " or ".join(mirrors or dataset.mirrors)
              + f" into {cache_dir() / dataset.name}, or set {DATA_ENV} to a folder that holds them"]
    if dataset.apt_package:
        lines[-1] += f", or on Debian/Ubuntu: sudo apt-get install {dataset.apt_package}"
    return "\n".join(lines)


# --------------------------------------------------------------------------- the data sets

_Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _load_idx_set(name: str, **fetch_args: Any) -> _Split:
    paths = fetch(name, **fetch_args)
    x_train, y_train, x_test, y_test = (read_idx(paths[f.name]) for f in DATASETS[name].files)
    return (x_train, y_train), (x_test, y_test)


def load_mnist(**fetch_args: Any) -> _Split:
    """MNIST handwritten digits as ``((x_train, y_train), (x_test, y_test))``, like Keras.

    x: uint8 (60000, 28, 28) and (10000, 28, 28); y: uint8 labels 0-9. ``fetch_args`` go to
    :func:`fetch` (``mirrors=``, ``download_missing=``, ``progress=``).
    """
    return _load_idx_set("mnist", **fetch_args)


def load_fashion_mnist(**fetch_args: Any) -> _Split:
    """Fashion-MNIST (Zalando): 10 kinds of clothing, shaped and typed as :func:`load_mnist`;
    ``FASHION_MNIST_CLASSES`` names labels 0-9."""
    return _load_idx_set("fashion-mnist", **fetch_args)


FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


def read_cifar10(path: str | os.PathLike) -> _Split:
    """Read the CIFAR-10 python tarball: x uint8 (N, 32, 32, 3) as Keras, y uint8 (N,).

    The batches inside are Python pickles; only open a tarball whose checksum you trust
    (:func:`load_cifar10` checks it).
    """
    def batch(archive: tarfile.TarFile, member: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            f = archive.extractfile(f"cifar-10-batches-py/{member}")
        except KeyError as e:
            raise DataError(f"read_cifar10: {path} has no cifar-10-batches-py/{member}; "
                            "is it cifar-10-python.tar.gz?") from e
        d = pickle.load(io.BytesIO(f.read()), encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x), np.asarray(d[b"labels"], dtype=np.uint8)

    try:
        with tarfile.open(path, "r:gz") as archive:
            train = [batch(archive, f"data_batch_{i}") for i in range(1, 6)]
            x_test, y_test = batch(archive, "test_batch")
    except (tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"read_cifar10: {path} is not a readable tar.gz ({e}); delete it and get it again") from e
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train), (x_test, y_test)


def load_cifar10(**fetch_args: Any) -> _Split:
    """CIFAR-10: 50,000 + 10,000 colour images, x uint8 (N, 32, 32, 3), y uint8 (N,) labels 0-9.

    Keras gives the labels shaped (N, 1); here they are flat, like MNIST's.
    """
    paths = fetch("cifar10", **fetch_args)
    return read_cifar10(paths["cifar-10-python.tar.gz"])


def load_sample(split: bool = False, seed: int = 0, test_size: int = 1000) -> Any:
    """The 5,000 real MNIST digits that ship with the package (500 of each, sorted by label).

    ``split=False``: ``(x, y)``, x uint8 (5000, 28, 28), y uint8. ``split=True``: shuffled with
    ``seed`` and split into ``((x_train, y_train), (x_test, y_test))``, 4,000 / 1,000 by default.
    """
    x = read_idx(SAMPLE_DIR / "images-idx3-ubyte.gz")
    y = read_idx(SAMPLE_DIR / "labels-idx1-ubyte.gz")
    split = checks.flag("load_sample", "split", split)
    seed = checks.integer("load_sample", "seed", seed, 0)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)) or not 0 < test_size < len(x):
        raise ArgumentError(f"load_sample: test_size must be a whole number of test images from 1 to {len(x) - 1} "
                            f"(the sample holds {len(x)}), got {test_size!r}")
    if not split:
        return x, y
    order = np.random.default_rng(seed).permutation(len(x))  # sorted by label: shuffle first
    train, test = order[:-test_size], order[-test_size:]
    return (x[train], y[train]), (x[test], y[test])


DATA_LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}


def load_dataset(name: str, **fetch_args: Any) -> _Split:
    """A data set by name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"sample"`` (split
    4,000 / 1,000), or ``"auto"``: MNIST, else Fashion-MNIST, else the shipped sample."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"load_dataset: name must be the name of a data set (sample, auto, "
                                f"{', '.join(DATA_LOADERS)}), got {name!r:.60}")
    if name == "sample":
        return load_sample(split=True)
    if name == "auto":
        for candidate in ("mnist", "fashion-mnist"):
            try:
                return DATA_LOADERS[candidate](**fetch_args)
            except DataError as err:
                print(f"{candidate} is not available ({str(err).splitlines()[0]}); trying the next data set")
        print("using the 5,000 MNIST digits that ship with the package (4,000 train / 1,000 test)")
        return load_sample(split=True)
    if name not in DATA_LOADERS:
        raise DataError(f"load_dataset: unknown data set {name!r}; known: sample, {', '.join(DATA_LOADERS)}")
    return DATA_LOADERS[name](**fetch_args)


def load_images(name: str = "sample", channels_first: bool = True, limit: int | None = None,
                **fetch_args: Any) -> _Split:
    """A data set ready for a network, as the lectures prepare it: the pixels as float32 / 255.

    ``((x_train, y_train), (x_test, y_test))`` of :func:`load_dataset` (``name`` as it takes
    it), with x float32 in [0, 1] and y int64 class indices. ``channels_first``: images
    (N, C, H, W), as ``Conv2d`` takes them: (N, 1, 28, 28) for the digits, (N, 3, 32, 32) for
    CIFAR-10; False keeps the stored layout, (N, 28, 28) or (N, 32, 32, 3). ``limit``: at most
    the first ``limit`` images of each split, for quick runs.
    """
    if limit is not None and limit < 1:
        raise ArgumentError(f"load_images: limit must be a positive int or None, got {limit!r}")
    train, test = load_dataset(name, **fetch_args)
    return _scaled(*train, channels_first, limit), _scaled(*test, channels_first, limit)


def _scaled(x: np.ndarray, y: np.ndarray, channels_first: bool, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    x, y = x[:limit], y[:limit]
    if channels_first:  # grey (N, H, W) gains a channel axis; colour (N, H, W, C) moves it
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x /= 255
    return x, y.astype(np.int64)
