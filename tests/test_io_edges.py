"""Names and hostile files: an existing file named with glob characters is that file; a header or an archive
member claiming more than it holds is one clean error before anything is allocated; uint64 indices beyond
int64 are shown as they are; a CSV header name that two columns share is ambiguous."""

from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.lib import format as npy_format

import losscli
from losscli.errors import InputError, ValueDomainError
from losscli.io import Loader


@pytest.fixture
def here(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- names with *, ? and [ ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, decoy", [("p[1].npy", "p1.npy"), ("p*.npy", "pq.npy"), ("p?.npy", "pq.npy")])
def test_an_existing_file_is_that_file_not_a_pattern(here, name, decoy):
    np.save(decoy, np.array([100.0, 100.0]))  # what the name matches as a pattern
    np.save("t.npy", np.zeros(2))
    with open(name, "wb") as f:
        np.save(f, np.array([1.0, 3.0]))
    assert np.array_equal(Loader().load(name, role="input").array, [1.0, 3.0])
    assert losscli.compute("mse", name, "t.npy").item() == (1.0 + 9.0) / 2
    assert losscli.compute("mse", name, "t.npy").inputs[0].source == name


def test_a_name_no_file_has_is_still_a_pattern(here):
    np.save("p1.npy", np.array([1.0]))
    np.save("p2.npy", np.array([2.0]))
    assert np.array_equal(Loader().load("p[12].npy", role="input").array, [1.0, 2.0])
    assert np.array_equal(Loader().load("p?.npy", role="input").array, [1.0, 2.0])


def test_an_existing_csv_with_brackets_takes_a_selector(here, reader):
    Path("r[1].csv").write_text("pred,label\n1.0,0.0\n2.0,4.0\n")
    assert losscli.compute("mse", "r[1].csv:pred", "r[1].csv:label").item() == (1.0 + 4.0) / 2


# -- headers and archive members that claim too much -------------------------------------------------------


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_a_header_beyond_int64_is_one_error_and_no_warning(here):
    Path("huge.npy").write_bytes(npy_header((2**32, 2**32)) + bytes(16))
    need = 2**64 * 4  # 2^32 · 2^32 float32 elements, more than int64 counts
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning would raise here
        with pytest.raises(InputError) as caught:
            Loader().load("huge.npy", role="input")
    assert str(caught.value) == (f"input (huge.npy): expected {need} bytes of float32 data for shape "
                                 "(4294967296, 4294967296), but got 16 (the file is truncated)")


def test_an_npz_member_claiming_a_tebibyte_is_refused_before_it_is_allocated(here):
    with zipfile.ZipFile("bomb.npz", "w", zipfile.ZIP_DEFLATED) as z, z.open("x.npy", "w", force_zip64=True) as m:
        m.write(npy_header((2**37,), "<f8"))  # 1 TiB of float64
        for _ in range(64):
            m.write(bytes(1 << 20))  # 64 MiB of zeros, which deflate to about 64 KiB
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as caught:
            Loader().load("bomb.npz", role="input")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value) == ("input (bomb.npz): expected a readable array 'x' of the .npz file, but it is "
                                 f"corrupt: its header declares {2**40} bytes of data, but the member holds "
                                 f"{64 << 20}")
    assert peak < 16 << 20


def forge_size(path: str, claimed: int) -> None:
    """Write ``claimed`` as the uncompressed size of the archive's one member, in its central directory and
    its local header (a forged entry)."""
    data = bytearray(Path(path).read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, claimed)
    struct.pack_into("<I", data, central + 24, claimed)
    Path(path).write_bytes(bytes(data))


def test_an_npz_member_claiming_more_than_deflate_can_give_is_refused(here):
    np.savez_compressed("forged.npz", x=np.zeros(10))
    compressed = zipfile.ZipFile("forged.npz").getinfo("x.npy").compress_size
    forge_size("forged.npz", 2**32 - 2)
    with pytest.raises(InputError) as caught:
        Loader().load("forged.npz", role="input")
    assert str(caught.value) == ("input (forged.npz): expected a readable array 'x' of the .npz file, but it is "
                                 f"corrupt: its entry claims {2**32 - 2} bytes, more than 1032x its {compressed} "
                                 "compressed bytes (a forged entry or a zip bomb)")


def test_a_stored_npz_member_claiming_more_than_it_holds_is_refused(here):
    np.savez("forged.npz", x=np.zeros(10))
    forge_size("forged.npz", 2**31)
    with pytest.raises(InputError, match=r"corrupt: its entry claims 2147483648 bytes, more than 1x its \d+ "
                                         r"compressed bytes"):
        Loader().load("forged.npz", role="input")


def test_an_honest_npz_still_reads(here):
    np.savez_compressed("ok.npz", x=np.arange(1000.0))
    np.savez("stored.npz", x=np.arange(5))
    assert np.array_equal(Loader().load("ok.npz", role="input").array, np.arange(1000.0))
    assert np.array_equal(Loader().load("stored.npz", role="input").array, np.arange(5))


# -- uint64 indices ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["cross-entropy", "nll", "multi-margin"])
def test_a_uint64_index_beyond_int64_is_shown_as_it_is(loss):
    target = np.array([1, 2**63 + 5], dtype=np.uint64)
    with pytest.raises(ValueDomainError) as caught:
        losscli.compute(loss, np.zeros((2, 3)), target)
    assert str(caught.value) == ("target: expected class indices that fit in int64 (torch's index type), but got "
                                 "9223372036854775813 at index 1")


def test_uint64_indices_within_int64_are_torchs_values():
    x = np.random.default_rng(0).normal(size=(3, 4))
    target = np.array([0, 3, 1], dtype=np.uint64)
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(target.astype(np.int64)))
    assert losscli.compute("cross-entropy", x, target).item() == pytest.approx(float(expected), rel=1e-12)


# -- duplicate CSV header names ----------------------------------------------------------------------------


def test_a_header_name_two_columns_share_is_ambiguous(here, reader):
    Path("dup.csv").write_text("a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(InputError) as caught:
        losscli.compute("mse", "dup.csv:a", "dup.csv:b")
    assert str(caught.value) == ("input (dup.csv:a): expected a column name that names one column, but 'a' names "
                                 "columns 0, 2 (0-based); pick one by index, as in :0")
    # by index, and the unique name, still read: mse([3, 6], [2, 5]) = 1
    assert losscli.compute("mse", "dup.csv:2", "dup.csv:b").item() == 1.0


def test_a_shared_header_name_is_ambiguous_in_a_large_csv_too(here, monkeypatch, reader):
    monkeypatch.setattr("losscli.io.table.PIECE_BYTES", 16)  # a streamed (CsvRows) file of many pieces
    Path("dup.csv").write_text("a,b,a\n" + "".join(f"{i},{i},{i}\n" for i in range(20)))
    with pytest.raises(InputError, match=r"^input \(dup.csv:a\): expected a column name that names one column, "
                                         r"but 'a' names columns 0, 2 \(0-based\)"):
        Loader().load("dup.csv:a", role="input")
    assert Loader().load("dup.csv:b", role="input").array.tolist() == list(range(20))
