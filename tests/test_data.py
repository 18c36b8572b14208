"""Data: IDX and CIFAR readers, the shipped sample, the checked downloader, DataLoader."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import data
from autograd_cnn.data import DataError, DataLoader, read_idx

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FASHION = SHARED / "fashion-mnist"
needs_fashion = pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
                                   reason="the shared Fashion-MNIST files are not on this machine")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand from the format's definition."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[array.dtype.str[1:]]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user data, an empty cache and no Debian folder: only what the test provides is found."""
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "DEBIAN_DATA", tmp_path / "debian")
    return tmp_path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class LoopbackServers:
    """HTTP servers on 127.0.0.1, each serving one folder; never the internet."""

    def __init__(self) -> None:
        self.servers: list[http.server.ThreadingHTTPServer] = []

    def start(self, folder: Path) -> str:
        """Serve ``folder``; returns its base URL."""
        handler = functools.partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    def stop_all(self) -> None:
        """Stop every server: their ports then refuse connections."""
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()


@pytest.fixture
def http_servers():
    servers = LoopbackServers()
    yield servers
    servers.stop_all()


# --------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, compress):
    array = (np.arange(2 * 3 * 5) * 7 - 20).reshape(2, 3, 5).astype(dtype)
    raw = idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    got = read_idx(path)
    assert got.shape == (2, 3, 5) and got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, array)
    got[0, 0, 0] = 1  # a writable array in native byte order
    assert got.dtype.isnative


def test_read_idx_labels_one_dimension(tmp_path):
    (tmp_path / "l").write_bytes(idx_bytes(np.array([5, 0, 4, 1], np.uint8)))
    np.testing.assert_array_equal(read_idx(tmp_path / "l"), [5, 0, 4, 1])


def test_read_idx_truncated_data(tmp_path):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "t.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"truncated.*\(4, 28, 28\).*3136 bytes.*3036"):
        read_idx(tmp_path / "t.gz")


def test_read_idx_truncated_header(tmp_path):
    (tmp_path / "h").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 4]))
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(tmp_path / "h")


def test_read_idx_extra_bytes(tmp_path):
    (tmp_path / "x").write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\0")
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(tmp_path / "x")


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n....", b"<html>Not Found</html>", b""])
def test_read_idx_foreign_file(tmp_path, content):
    (tmp_path / "f").write_bytes(content)
    with pytest.raises(DataError, match="is not an IDX file"):
        read_idx(tmp_path / "f")


def test_read_idx_damaged_gzip_and_missing_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8) % 251))
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="damaged gzip"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(DataError, match="no file at"):
        read_idx(tmp_path / "nothing.gz")


# --------------------------------------------------------------------------- the shipped sample

def test_sample_ships_with_published_checksums():
    readme = (data.SAMPLE_DIR / "README.md").read_text()
    for name in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"):
        assert f"{data.sha256_of(data.SAMPLE_DIR / name)}  {name}" in readme


def test_load_sample():
    x, y = data.load_sample()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (5000,) and y.dtype == np.uint8
    assert np.bincount(y).tolist() == [500] * 10
    assert np.all(np.diff(y.astype(int)) >= 0)  # sorted by label, as documented
    assert x.max() == 255 and x.min() == 0 and 30 < x.mean() < 37  # real digits: MNIST's mean is 33


def test_load_sample_split_is_a_seeded_shuffled_partition():
    x, y = data.load_sample()
    (x_train, y_train), (x_test, y_test) = data.load_sample(split=True, seed=0)
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert len(y_train) == 4000 and len(y_test) == 1000
    assert set(np.unique(y_test)) == set(range(10))  # shuffled before splitting
    # The two parts together are exactly the sample, every digit with its own label.
    rows = sorted(a.tobytes() + bytes([b]) for a, b in zip(np.concatenate([x_train, x_test]),
                                                            np.concatenate([y_train, y_test])))
    assert rows == sorted(a.tobytes() + bytes([b]) for a, b in zip(x, y))
    (again, _), _ = data.load_sample(split=True, seed=0)
    (other, _), _ = data.load_sample(split=True, seed=1)
    np.testing.assert_array_equal(again, x_train)
    assert not np.array_equal(other, x_train)
    (_, _), (small, _) = data.load_sample(split=True, test_size=10)
    assert small.shape == (10, 28, 28)
    with pytest.raises(ValueError, match="test_size"):
        data.load_sample(split=True, test_size=5000)


# --------------------------------------------------------------------------- real Fashion-MNIST

@needs_fashion
@pytest.mark.parametrize("where", [SHARED, FASHION])  # the parent folder or the data set's own folder
def test_load_fashion_mnist_from_data_folder(isolated, monkeypatch, where):
    monkeypatch.setenv(data.DATA_ENV, str(where))
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert y_test[:5].tolist() == [9, 2, 1, 1, 6]  # ankle boot, pullover, trouser, trouser, shirt


@needs_fashion
def test_debian_package_folder_is_searched(isolated):
    # `apt-get install dataset-fashion-mnist` puts the files in /usr/share/datasets/fashion-mnist.
    debian = data.DEBIAN_DATA / "fashion-mnist"
    debian.mkdir(parents=True)
    for f in FASHION.glob("*.gz"):
        (debian / f.name).symlink_to(f)
    paths = data.fetch("fashion-mnist", download_missing=False)
    assert {p.parent for p in paths.values()} == {debian}
    assert not (isolated / "cache").exists()  # nothing was downloaded or copied


@needs_fashion
def test_same_named_files_of_another_data_set_are_not_taken(isolated, monkeypatch):
    # MNIST and Fashion-MNIST use the same file names: the checksum tells them apart.
    monkeypatch.setenv(data.DATA_ENV, str(FASHION))
    with pytest.raises(DataError, match="not the published mnist file") as info:
        data.load_mnist(download_missing=False)
    assert "no download was tried" in str(info.value)


# --------------------------------------------------------------------------- download

def test_download_good_file(tmp_path, http_servers):
    served = tmp_path / "www"
    served.mkdir()
    content = gzip.compress(idx_bytes(np.arange(784, dtype=np.uint8).reshape(1, 28, 28)))
    (served / "digits.gz").write_bytes(content)
    url = http_servers.start(served) + "digits.gz"
    dest = tmp_path / "cache" / "digits.gz"
    got = data.download(url, dest, hashlib.sha256(content).hexdigest(), len(content), progress=False)
    assert got == dest and dest.read_bytes() == content
    assert read_idx(dest).shape == (1, 28, 28)
    assert [p.name for p in dest.parent.iterdir()] == ["digits.gz"]  # no temporary file left


@pytest.mark.parametrize("size_known", [True, False])
def test_download_corrupted_file_leaves_nothing(tmp_path, http_servers, size_known):
    served = tmp_path / "www"
    served.mkdir()
    good = b"the published bytes" * 100
    bad = bytearray(good)
    bad[500] ^= 0xFF  # one flipped byte on the way
    (served / "f.gz").write_bytes(bytes(bad))
    dest = tmp_path / "cache" / "f.gz"
    with pytest.raises(DataError, match="failed its checksum.*nothing was saved"):
        data.download(http_servers.start(served) + "f.gz", dest, hashlib.sha256(good).hexdigest(),
                      len(good) if size_known else None, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_download_short_file_and_missing_file(tmp_path, http_servers):
    served = tmp_path / "www"
    served.mkdir()
    (served / "short").write_bytes(b"abc")
    base = http_servers.start(served)
    with pytest.raises(DataError, match="gave 3 bytes, expected 10"):
        data.download(base + "short", tmp_path / "c" / "short", "0" * 64, 10, progress=False)
    with pytest.raises(DataError, match="could not get .*nothing-here: HTTP 404"):
        data.download(base + "nothing-here", tmp_path / "c" / "n", "0" * 64, progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_download_server_gone(tmp_path, http_servers):
    gone = http_servers.start(tmp_path)
    http_servers.stop_all()
    with pytest.raises(DataError, match=r"could not get http://127\.0\.0\.1:\d+/x\.gz"):
        data.download(gone + "x.gz", tmp_path / "c" / "x.gz", "0" * 64, progress=False, timeout=5)
    assert list((tmp_path / "c").iterdir()) == []


@needs_fashion
def test_fetch_downloads_into_the_cache_then_finds_it(isolated, http_servers):
    corrupt = isolated / "corrupt"
    corrupt.mkdir()
    for f in FASHION.iterdir():  # a first mirror that serves damaged copies
        (corrupt / f.name).write_bytes(f.read_bytes()[:-1] + b"\0")
    mirrors = [http_servers.start(corrupt), http_servers.start(FASHION)]
    paths = data.fetch("fashion-mnist", mirrors=mirrors, progress=False)
    cache = isolated / "cache" / "autograd_cnn" / "fashion-mnist"
    assert set(paths.values()) == {cache / f.name for f in data.DATASETS["fashion-mnist"].files}
    assert sorted(p.name for p in cache.iterdir()) == sorted(paths)  # no temporary files
    http_servers.stop_all()
    (x_train, _), (x_test, y_test) = data.load_fashion_mnist(download_missing=False)  # offline: from the cache
    assert x_train.shape == (60000, 28, 28) and y_test[:3].tolist() == [9, 2, 1]


def test_fetch_offline_says_where_it_looked_and_what_to_do(isolated, http_servers):
    gone = http_servers.start(isolated)
    http_servers.stop_all()
    with pytest.raises(DataError) as info:
        data.load_fashion_mnist(mirrors=[gone], progress=False)
    message = str(info.value)
    assert "fashion-mnist: could not find train-images-idx3-ubyte.gz" in message
    assert str(isolated / "cache" / "autograd_cnn" / "fashion-mnist") in message
    assert str(isolated / "debian" / "fashion-mnist") in message
    assert "could not get http://127.0.0.1" in message
    assert message.count("could not get") == 1  # a mirror that does not answer is not asked for the other files
    assert "AUTOGRAD_CNN_DATA" in message and "apt-get install dataset-fashion-mnist" in message
    assert not (isolated / "cache" / "autograd_cnn" / "fashion-mnist").exists() or not any(
        (isolated / "cache" / "autograd_cnn" / "fashion-mnist").iterdir())


def test_load_dataset_by_name():
    (x_train, _), (x_test, _) = data.load_dataset("sample")
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    with pytest.raises(DataError, match="unknown data set 'imagenet'; known: sample, mnist"):
        data.load_dataset("imagenet")


def test_load_images_prepares_the_digits_as_the_lectures_do():
    (x_train, y_train), (x_test, y_test) = data.load_images("sample")
    (raw_train, raw_y), (raw_test, raw_test_y) = data.load_sample(split=True)
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64 and x_train.flags.c_contiguous
    np.testing.assert_array_equal(x_train[:, 0], raw_train.astype("float32") / 255)  # to the bit
    np.testing.assert_array_equal(x_test[:, 0], raw_test.astype("float32") / 255)
    np.testing.assert_array_equal(y_train, raw_y)
    np.testing.assert_array_equal(y_test, raw_test_y)
    assert x_train.min() == 0 and x_train.max() == 1


def test_load_images_channels_last_and_limit():
    (x_train, y_train), (x_test, y_test) = data.load_images("sample", channels_first=False, limit=10)
    assert x_train.shape == (10, 28, 28) and x_test.shape == (10, 28, 28)
    assert y_train.shape == (10,) and y_test.shape == (10,)
    np.testing.assert_array_equal(x_test, data.load_sample(split=True)[1][0][:10] / np.float32(255))
    with pytest.raises(ValueError, match="load_images: limit must be a positive int or None, got 0"):
        data.load_images(limit=0)


def test_load_images_moves_colour_channels_first(monkeypatch):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 6, dtype=np.uint8)
    monkeypatch.setitem(data.DATA_LOADERS, "cifar10", lambda **_: ((colour, labels), (colour[:2], labels[:2])))
    (x_train, y_train), (x_test, _) = data.load_images("cifar10")
    assert x_train.shape == (6, 3, 32, 32) and x_test.shape == (2, 3, 32, 32) and x_train.flags.c_contiguous
    assert x_train[4, 2, 7, 9] == np.float32(colour[4, 7, 9, 2]) / np.float32(255)
    np.testing.assert_array_equal(np.rint(x_train.transpose(0, 2, 3, 1) * 255), colour)
    assert y_train.tolist() == labels.tolist()


def test_load_images_passes_fetch_options_on(isolated):
    with pytest.raises(DataError, match="no download was tried"):
        data.load_images("mnist", download_missing=False)


def test_fetch_unknown_data_set():
    with pytest.raises(DataError, match="unknown data set 'mnist2'.*fashion-mnist"):
        data.fetch("mnist2")


# --------------------------------------------------------------------------- CIFAR-10

def _cifar_tarball(path: Path, per_batch: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(0)
    batches = {}
    with tarfile.open(path, "w:gz") as archive:
        for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, per_batch).tolist()
            batches[member] = (rows, labels)
            blob = pickle.dumps({b"data": rows, b"labels": labels, b"batch_label": member.encode()})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return batches


def test_read_cifar10_layout(tmp_path):
    batches = _cifar_tarball(tmp_path / "c.tar.gz")
    (x_train, y_train), (x_test, y_test) = data.read_cifar10(tmp_path / "c.tar.gz")
    assert x_train.shape == (15, 32, 32, 3) and x_test.shape == (3, 32, 32, 3)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    rows, labels = batches["data_batch_2"]
    # Row layout: 1024 red values, then green, then blue, each row-major over 32x32.
    for n in range(3):
        for (h, w, c) in [(0, 0, 0), (5, 7, 1), (31, 30, 2)]:
            assert x_train[3 + n, h, w, c] == rows[n, c * 1024 + h * 32 + w]
    assert y_train[3:6].tolist() == labels
    assert y_test.tolist() == batches["test_batch"][1]


def test_read_cifar10_foreign_archives(tmp_path):
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("readme.txt")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(DataError, match="has no cifar-10-batches-py/data_batch_1"):
        data.read_cifar10(tmp_path / "other.tar.gz")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="not a readable tar.gz"):
        data.read_cifar10(tmp_path / "junk.tar.gz")


# --------------------------------------------------------------------------- DataLoader

def test_dataloader_covers_every_row_once_per_pass(backend):
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int64)
    loader = DataLoader(x, y, batch_size=4, seed=3)
    assert len(loader) == 3
    passes = []
    for _ in range(2):
        batches = list(loader)
        assert [len(yb) for _, yb in batches] == [4, 4, 2]
        for xb, yb in batches:
            assert isinstance(xb, ag.Tensor) and xb.backend == backend and xb.dtype == np.float32
            np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])  # rows stay paired with labels
        order = np.concatenate([yb.numpy() for _, yb in batches])
        assert sorted(order.tolist()) == list(range(10))
        passes.append(order)
    assert not np.array_equal(passes[0], passes[1])  # reshuffled each pass
    again = np.concatenate([yb.numpy() for _, yb in DataLoader(x, y, batch_size=4, seed=3)])
    np.testing.assert_array_equal(again, passes[0])  # the seed repeats the order


def test_dataloader_in_order_drop_last_and_x_only(backend):
    x = np.arange(7, dtype=np.float32)
    batches = [b.numpy().tolist() for b in DataLoader(x, batch_size=3, shuffle=False)]
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    loader = DataLoader(ag.tensor(x), batch_size=3, shuffle=False, drop_last=True)
    assert len(loader) == 2 and [b.numpy().tolist() for b in loader] == [[0, 1, 2], [3, 4, 5]]


def test_dataloader_follows_manual_seed():
    x = np.arange(50, dtype=np.float32)
    ag.manual_seed(5)
    first = next(iter(DataLoader(x, batch_size=50))).numpy()
    ag.manual_seed(5)
    np.testing.assert_array_equal(next(iter(DataLoader(x, batch_size=50))).numpy(), first)


def test_dataloader_bad_input():
    with pytest.raises(ValueError, match="x has 4 rows but y has 3"):
        DataLoader(np.zeros((4, 2)), np.zeros(3), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        DataLoader(np.zeros((4, 2)), batch_size=0)
