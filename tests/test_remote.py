"""Remote inputs (losscli.io.remote) against real servers on 127.0.0.1, no mocks of the client libraries: moto's
standalone S3 server (uploaded to with boto3, losscli pointed at it by AWS_ENDPOINT_URL), gcp-storage-emulator for
gs://, Azurite for az:// (uploaded to with adlfs) and an http.server that honours Range requests and counts what it
serves. Values against torch.nn.functional on the same arrays."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import threading
import time
from functools import partial
from http.client import HTTPConnection
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app

pytest.importorskip("s3fs")
pytest.importorskip("aiohttp")
boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "losscli-test"
runner = CliRunner()
rng = np.random.default_rng(7)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def value(*args) -> float:
    result = invoke(*args, "-f", "json", "-q")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["value"]


def npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


@pytest.fixture(scope="module")
def s3(free_port):
    """A moto S3 server on a free port, and the AWS environment that points losscli (and boto3) at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    server.stop()


def put(client, key: str, data: bytes) -> str:
    client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{BUCKET}/{key}"


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` answered 206; every response's body size is recorded."""

    served: list[int]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not path.is_file() or match is None:
            return super().do_GET()
        data = path.read_bytes()
        start = int(match[1])
        stop = min(int(match[2]) + 1 if match[2] else len(data), len(data))
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        self.wfile.write(data[start:stop])
        self.served.append(stop - start)

    def copyfile(self, source, outputfile) -> None:  # a whole file (no Range)
        data = source.read()
        outputfile.write(data)
        self.served.append(len(data))


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    """An HTTP server on 127.0.0.1 serving a temporary folder: (folder, base URL, the sizes of bodies served)."""
    folder = tmp_path_factory.mktemp("www")
    served: list[int] = []
    handler = type("Handler", (_RangeHandler,), {"served": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_s3_npy_equals_torch(s3):
    x, y = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(50, 3)).astype(np.float32)
    pred, target = put(s3, "a/pred.npy", npy_bytes(x)), put(s3, "a/target.npy", npy_bytes(y))
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("mse", pred, target) == pytest.approx(expected, rel=1e-6)


def test_s3_csv_columns_equal_torch(s3, reader):
    x, y = rng.normal(size=40), rng.normal(size=40)
    text = "pred,target\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(x, y))
    url = put(s3, "a/results.csv", text.encode())
    expected = F.l1_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("l1", f"{url}:pred", f"{url}:target") == pytest.approx(expected, rel=1e-12)


def test_s3_parquet_row_groups_equal_torch(s3):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    logits = rng.normal(size=(300, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=300)
    out = io.BytesIO()
    table = pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), 5), "label": labels})
    pq.write_table(table, out, row_group_size=64)
    url = put(s3, "a/eval.parquet", out.getvalue())
    expected = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    assert value("cross-entropy", f"{url}:logits", f"{url}:label") == pytest.approx(expected, rel=1e-6)


def test_s3_glob_of_shards(s3):
    x, y = rng.normal(size=(90, 2)).astype(np.float32), rng.normal(size=(90, 2)).astype(np.float32)
    for i, part in enumerate(np.split(x, 3)):
        put(s3, f"run-7/preds-{i}.npy", npy_bytes(part))
    put(s3, "run-7/other.npy", npy_bytes(x))  # not matched by the pattern
    target = put(s3, "run-7/target.npy", npy_bytes(y))
    expected = F.smooth_l1_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("smooth-l1", f"s3://{BUCKET}/run-7/preds-*.npy", target) == pytest.approx(expected, rel=1e-6)


def test_remote_gate_file_resolves_relative_paths(s3):
    x, y = rng.normal(size=20).astype(np.float32), rng.normal(size=20).astype(np.float32)
    put(s3, "g/data/pred.npy", npy_bytes(x))
    put(s3, "g/target.npy", npy_bytes(y))
    gate = put(s3, "g/gates/gates.toml", b'[[check]]\nname = "mse"\nloss = "mse"\n'
               b'files = ["../data/pred.npy", "../target.npy"]\nmax = 100\n')
    run = losscli.check(gate)
    [outcome] = run.outcomes
    assert outcome.status.value == "pass", outcome.reasons
    assert outcome.value == pytest.approx(F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item(), rel=1e-6)
    result = invoke("check", gate)
    assert result.exit_code == 0, result.stderr


def test_storage_option_reaches_fsspec(s3, free_port):
    """--storage-option endpoint_url=... points at a closed port: the run fails fast, naming the URL."""
    url = put(s3, "a/so.npy", npy_bytes(np.ones(3, np.float32)))
    start = time.monotonic()
    result = invoke("mse", url, url, "--storage-option", f"endpoint_url=http://127.0.0.1:{free_port()}")
    assert time.monotonic() - start < 30
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert url in line and "failed 3 times" in line


def test_storage_option_must_be_key_value():
    result = invoke("mse", "samples/regression/pred.npy", "samples/regression/target.npy", "--storage-option", "anon")
    assert result.exit_code == 2
    assert "--storage-option: expected key=value, but got 'anon'" in result.stderr


def test_missing_object_is_one_line(s3):
    url = f"s3://{BUCKET}/a/nothing-here.npy"
    result = invoke("mse", url, url)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert f"at {url}, but there is no such object" in line


def test_https_npy_and_safetensors(http):
    from safetensors.numpy import save_file

    folder, base, _ = http
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    np.save(folder / "pred.npy", x)
    save_file({"pred": x, "target": y}, str(folder / "both.safetensors"))
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("mse", f"{base}/pred.npy", f"{base}/both.safetensors:target") == pytest.approx(expected, rel=1e-6)
    assert value("mse", f"{base}/both.safetensors:pred", f"{base}/both.safetensors:target") == pytest.approx(
        expected, rel=1e-6)


def test_http_missing_and_unreachable_are_one_line(http, free_port):
    _, base, _ = http
    result = invoke("mse", f"{base}/absent.npy", f"{base}/absent.npy")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no such object" in result.stderr
    dead = f"http://127.0.0.1:{free_port()}/p.npy"
    start = time.monotonic()
    result = invoke("mse", dead, dead)
    assert time.monotonic() - start < 30
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert dead in line and "failed 3 times" in line


def test_streamed_remote_npy_is_read_by_ranges(http):
    """A 32 MB .npy over HTTP is read chunk by chunk: no response is more than a few MB, and it is read once."""
    folder, base, served = http
    x = rng.normal(size=(1 << 21, 4)).astype(np.float32)
    y = np.zeros_like(x)
    np.save(folder / "big.npy", x)
    np.save(folder / "zeros.npy", y)
    served.clear()
    got = value("mse", f"{base}/big.npy", f"{base}/zeros.npy")
    assert got == pytest.approx(float(np.mean(x.astype(np.float64) ** 2)), rel=1e-5)
    size = (folder / "big.npy").stat().st_size
    assert max(served) <= 8 << 20, max(served)  # remote.RANGE_BYTES
    assert sum(served) <= 2.2 * size  # both files, each read once (and headers)


def test_server_ignoring_range_is_refused(tmp_path):
    """A server that answers a ranged request with the whole object (plain SimpleHTTPRequestHandler): one line,
    never a misread array."""
    np.save(tmp_path / "p.npy", np.arange(1 << 16, dtype=np.float32))
    handler = type("Plain", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/p.npy"
        result = invoke("mse", url, url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert url in line and "ignored the range" in line


def test_s3_npz_named_file_and_sniffed_name(s3):
    """An .npz member, a named file (--weight) and an object without a suffix (sniffed) at URLs."""
    x, y = rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=(12, 3)).astype(np.float32)
    w = rng.uniform(size=(12, 3)).astype(np.float32)
    out = io.BytesIO()
    np.savez(out, pred=x, target=y)
    archive = put(s3, "n/arrays.npz", out.getvalue())
    weight = put(s3, "n/weight", npy_bytes(w))  # no suffix: read as the .npy its first bytes name
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w)).item()
    got = value("mse", f"{archive}:pred", f"{archive}:target", "--weight", weight)
    assert got == pytest.approx(expected, rel=1e-6)


# -- folders and globs: a prefix ending in / is read as a directory of shards is; globs over HTTP(S) --------------


def test_s3_folder_is_read_as_shards_in_sorted_order(s3):
    """s3://bucket/run-9/ reads the .npy objects directly in it, in sorted name order (as a local directory of
    shards): not the .txt beside them, nor what is in a sub-folder."""
    x, y = rng.normal(size=(60, 2)).astype(np.float32), rng.normal(size=(60, 2)).astype(np.float32)
    for i, part in enumerate(np.split(x, 3)):
        put(s3, f"run-9/shard-{i}.npy", npy_bytes(part))
    put(s3, "run-9/notes.txt", b"not a shard")
    put(s3, "run-9/older/shard-0.npy", npy_bytes(y))
    target = put(s3, "run-9-target.npy", npy_bytes(y))
    expected = F.l1_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("l1", f"s3://{BUCKET}/run-9/", target) == pytest.approx(expected, rel=1e-6)
    result = losscli.compute("l1", f"s3://{BUCKET}/run-9/", target)
    assert result.inputs[0].shape == (60, 2) and result.item() == pytest.approx(expected, rel=1e-6)


def test_s3_folder_without_shards_and_missing_folder_are_one_line(s3):
    put(s3, "run-10/notes.txt", b"not a shard")
    result = invoke("mse", f"s3://{BUCKET}/run-10/", f"s3://{BUCKET}/run-10/")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert f"input (s3://{BUCKET}/run-10/): expected a folder of .npy shards, but it holds no .npy file" in line
    missing = f"s3://{BUCKET}/run-nowhere/"
    result = invoke("mse", missing, missing)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert f"expected a folder of .npy shards at {missing}, but there is no such object" in line


@pytest.fixture(scope="module")
def http_shards(http):
    """Three .npy shards and a text file in a folder of the HTTP server (which serves the folder's listing page),
    and a target beside the folder: (base URL, concatenated shards, target)."""
    folder, base, _ = http
    (folder / "shards").mkdir()
    x, y = rng.normal(size=(45, 3)).astype(np.float32), rng.normal(size=(45, 3)).astype(np.float32)
    for i, part in enumerate(np.split(x, 3)):
        np.save(folder / "shards" / f"p-{i}.npy", part)
    (folder / "shards" / "readme.txt").write_text("not a shard")
    np.save(folder / "shards-target.npy", y)
    return base, x, y


def test_http_glob_and_folder_read_the_listing_page(http_shards):
    base, x, y = http_shards
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("mse", f"{base}/shards/p-*.npy", f"{base}/shards-target.npy") == pytest.approx(expected, rel=1e-6)
    assert value("mse", f"{base}/shards/", f"{base}/shards-target.npy") == pytest.approx(expected, rel=1e-6)
    first_two = F.mse_loss(torch.from_numpy(x[:30]), torch.from_numpy(y[:30])).item()
    assert losscli.compute("mse", f"{base}/shards/p-[01].npy", y[:30]).item() == pytest.approx(first_two, rel=1e-6)


@pytest.mark.parametrize(("spec", "expected"), [
    ("shards/p-*.npy?sig=abc", "expected a glob over HTTP(S) without a query (?...): the glob reads the folder's "
                               "page for its links, which a query does not select"),
    ("shards/z-*.npy", "expected .npy shards matching the pattern, but no file matches it"),
    ("shards/*", "expected .npy shards, but the pattern also matches {base}/shards/readme.txt"),
    ("nowhere/", "expected a folder of .npy shards at {base}/nowhere/, but there is no such object"),
])
def test_http_glob_and_folder_mistakes_are_one_line(http_shards, spec, expected):
    base = http_shards[0]
    result = invoke("mse", f"{base}/{spec}", f"{base}/shards-target.npy")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line == f"error: input ({base}/{spec}): {expected.format(base=base)}"


# -- storage options belong to one call -----------------------------------------------------------------------


def test_compute_storage_options_reach_fsspec_and_stay_in_the_call(s3, free_port):
    """compute(storage_options=...) for one call: a closed endpoint fails that call (one InputError naming the
    URL), and the calls before and after it, without options, read the store as configured."""
    x, y = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
    pred, target = put(s3, "o/pred.npy", npy_bytes(x)), put(s3, "o/target.npy", npy_bytes(y))
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert losscli.compute("mse", pred, target).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(losscli.InputError, match=rf"^input \({re.escape(pred)}\): .* from {re.escape(pred)}, but "
                                                 r"reading it failed 3 times: "):
        losscli.compute("mse", pred, target, storage_options={"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    assert losscli.compute("mse", pred, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("options", "expected"), [
    (42, "storage_options: expected a mapping of option names to values, but got int"),
    ({1: "x"}, "storage_options: expected option names as non-empty strings, but got 1"),
])
def test_compute_storage_options_must_be_a_mapping_of_names(options, expected):
    with pytest.raises(losscli.OptionError, match=f"^{re.escape(expected)}$"):
        losscli.compute("mse", np.ones(2), np.ones(2), storage_options=options)


def test_check_help_has_storage_option():
    result = invoke("check", "--help")
    assert result.exit_code == 0
    assert "--storage-option" in result.stdout and "KEY=VALUE" in result.stdout


def test_check_storage_option_must_be_key_value():
    result = invoke("check", "samples/gates.toml", "--storage-option", "anon")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --storage-option: expected key=value, but got 'anon'"


def test_check_storage_option_reaches_the_gate_file(s3, free_port):
    """A closed endpoint given to `losscli check`: the remote gate file itself is read with it (one line, exit 2)."""
    gate = put(s3, "cg/gates.toml", b'[[check]]\nname = "m"\nloss = "mse"\nfiles = ["p.npy", "p.npy"]\nmax = 1\n')
    result = invoke("check", gate, "--storage-option", f"endpoint_url=http://127.0.0.1:{free_port()}")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: gate file ({gate}): expected a TOML gate file from {gate}, but reading it "
                           "failed 3 times: ")


# -- gs:// against gcp-storage-emulator ---------------------------------------------------------------------------

GBUCKET = "losscli-gcs"


def _emulator(free_port):
    """gcp-storage-emulator (a GCS JSON API server in Python) on a free port of 127.0.0.1, in memory, with one
    bucket; started and its URL returned."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=GBUCKET)
    server.start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory, free_port):
    """Two emulators: gcsfs (and so losscli) finds the first through STORAGE_EMULATOR_HOST, the second only through
    a storage option (endpoint_url). Yields the gcsfs filesystems that upload to each, and the second's URL.

    gcsfs is the real client. Its experimental bucket-layout lookup (gRPC, which the emulator does not serve) is
    turned off before gcsfs is imported; Google's credential lookup is kept on this machine (anonymous access
    is what losscli uses with STORAGE_EMULATOR_HOST set; the metadata server, were it asked, is a closed port)."""
    first, first_url = _emulator(free_port)
    second, second_url = _emulator(free_port)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        env.setenv("STORAGE_EMULATOR_HOST", first_url)
        env.setenv("NO_GCE_CHECK", "true")
        env.setenv("GCE_METADATA_HOST", f"127.0.0.1:{free_port()}")
        env.setenv("GCE_METADATA_IP", f"127.0.0.1:{free_port()}")
        env.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud")))
        env.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        import gcsfs

        uploads = gcsfs.GCSFileSystem(token="anon"), gcsfs.GCSFileSystem(token="anon", endpoint_url=second_url)
        assert type(uploads[0]).__name__ == "GCSFileSystem", "gcsfs was imported before the fixture"
        yield uploads, second_url
    second.stop()
    first.stop()


def gput(fs, key: str, data: bytes) -> str:
    fs.pipe(f"{GBUCKET}/{key}", data)
    return f"gs://{GBUCKET}/{key}"


def npy_and_csv_equal_torch(put: Callable[[str, bytes], str]) -> None:
    """An .npy file and a CSV file's columns, uploaded by ``put(key, data) -> URL``, give torch's values."""
    x, y = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(40, 3)).astype(np.float32)
    pred, target = put("a/pred.npy", npy_bytes(x)), put("a/target.npy", npy_bytes(y))
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("mse", pred, target) == pytest.approx(expected, rel=1e-6)
    a, b = rng.normal(size=25), rng.normal(size=25)
    text = "pred,target\n" + "".join(f"{float(p)!r},{float(t)!r}\n" for p, t in zip(a, b))
    table = put("a/results.csv", text.encode())
    expected = F.l1_loss(torch.from_numpy(a), torch.from_numpy(b)).item()
    assert value("l1", f"{table}:pred", f"{table}:target") == pytest.approx(expected, rel=1e-12)


def test_gs_npy_and_csv_equal_torch(gcs):
    (fs, _), _ = gcs
    npy_and_csv_equal_torch(lambda key, data: gput(fs, key, data))


def test_gs_glob_and_folder_of_shards(gcs):
    (fs, _), _ = gcs
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    for i, part in enumerate(np.split(x, 3)):
        gput(fs, f"run-7/preds-{i}.npy", npy_bytes(part))
    gput(fs, "run-7/notes.txt", b"not a shard")
    target = gput(fs, "run-7-target.npy", npy_bytes(y))
    expected = F.smooth_l1_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("smooth-l1", f"gs://{GBUCKET}/run-7/preds-*.npy", target) == pytest.approx(expected, rel=1e-6)
    assert value("smooth-l1", f"gs://{GBUCKET}/run-7/", target) == pytest.approx(expected, rel=1e-6)


def test_gs_missing_object_is_one_line(gcs):
    url = f"gs://{GBUCKET}/a/nothing-here.npy"
    result = invoke("mse", url, url)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line == f"error: input ({url}): expected a .npy file at {url}, but there is no such object"


def test_gs_unreachable_emulator_is_one_line(gcs, free_port):
    """A closed endpoint: gcsfs retries each request itself (6 tries, about 30 s of backoff), then one line."""
    url = f"gs://{GBUCKET}/a/pred.npy"
    start = time.monotonic()
    result = invoke("mse", url, url, "--storage-option", f"endpoint_url=http://127.0.0.1:{free_port()}")
    assert time.monotonic() - start < 90
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: input ({url}): expected a .npy file from {url}, but reading it failed 6 times "
                           "(gcsfs's own tries): ClientConnectorError: ")


def _same_url_two_stores(gcs, key: str) -> tuple[str, str, float, float]:
    """The same URLs, holding other arrays in each emulator: (pred URL, target URL, mse in the first, in the
    second)."""
    (first, second), _ = gcs
    found = []
    for fs in (first, second):
        x, y = rng.normal(size=(64, 2)).astype(np.float32), rng.normal(size=(64, 2)).astype(np.float32)
        pred, target = gput(fs, f"{key}/pred.npy", npy_bytes(x)), gput(fs, f"{key}/target.npy", npy_bytes(y))
        found.append(F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item())
    return pred, target, found[0], found[1]


def test_two_computes_with_other_options_do_not_leak(gcs):
    """The same gs:// URLs through two emulators: each compute() reads through its own options, in either order,
    side by side in threads, and when one loader's rows are read after another loaded the same URLs."""
    from concurrent.futures import ThreadPoolExecutor

    from losscli.io import Loader

    pred, target, in_first, in_second = _same_url_two_stores(gcs, "leak")
    other = {"endpoint_url": gcs[1]}
    assert losscli.compute("mse", pred, target, storage_options=other).item() == pytest.approx(in_second, rel=1e-6)
    assert losscli.compute("mse", pred, target).item() == pytest.approx(in_first, rel=1e-6)
    assert losscli.compute("mse", pred, target, storage_options=other).item() == pytest.approx(in_second, rel=1e-6)
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(losscli.compute, "mse", pred, target, storage_options=other if i % 2 else None)
                 for i in range(8)]
        got = [call.result().item() for call in calls]
    assert got == pytest.approx([in_second if i % 2 else in_first for i in range(8)], rel=1e-6)
    second_loader, first_loader = Loader(storage_options=other), Loader()
    loaded_second = [second_loader.load(url, role=role) for url, role in ((pred, "input"), (target, "target"))]
    loaded_first = [first_loader.load(url, role=role) for url, role in ((pred, "input"), (target, "target"))]
    assert losscli.compute("mse", *loaded_second).item() == pytest.approx(in_second, rel=1e-6)  # rows read now
    assert losscli.compute("mse", *loaded_first).item() == pytest.approx(in_first, rel=1e-6)


def test_check_storage_option_reaches_the_gate_file_and_its_files(gcs, tmp_path):
    """A gate file and its inputs that only the second emulator holds: `losscli check --storage-option
    endpoint_url=...` reads them all there (a remote gate file and a local one naming URLs); without it, the
    first emulator has no such gate file (one line, exit 2)."""
    (_, second), second_url = gcs
    x, y = rng.normal(size=20).astype(np.float32), rng.normal(size=20).astype(np.float32)
    gput(second, "only-here/data/pred.npy", npy_bytes(x))
    target = gput(second, "only-here/target.npy", npy_bytes(y))
    toml = f'[[check]]\nname = "mse"\nloss = "mse"\nfiles = ["../data/pred.npy", "{target}"]\nmax = 100\n'
    gate = gput(second, "only-here/gates/gates.toml", toml.encode())
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    option = ["--storage-option", f"endpoint_url={second_url}"]
    result = invoke("check", gate, *option, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["checks"][0]["value"] == pytest.approx(expected, rel=1e-6)
    run = losscli.check(gate, storage_options={"endpoint_url": second_url})
    assert run.outcomes[0].value == pytest.approx(expected, rel=1e-6)
    local = tmp_path / "gates.toml"
    local.write_text(toml.replace("../data/pred.npy", f"gs://{GBUCKET}/only-here/data/pred.npy"))
    assert invoke("check", local, *option).exit_code == 0
    result = invoke("check", gate)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line == f"error: gate file ({gate}): expected a TOML gate file at {gate}, but there is no such object"


def test_dask_workers_read_s3_with_the_calls_storage_options(s3, monkeypatch):
    """--engine dask on s3:// shards: the workers, started without AWS_ENDPOINT_URL, reach the store through
    the storage options that travel with each task, and the value is the local engine's to the last digit."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    x, y = rng.normal(size=(90, 4)).astype(np.float32), rng.normal(size=(90, 4)).astype(np.float32)
    for i, (a, b) in enumerate([(0, 40), (40, 41), (41, 90)]):
        put(s3, f"dask/p-{i}.npy", npy_bytes(x[a:b]))
        put(s3, f"dask/t-{i}.npy", npy_bytes(y[a:b]))
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setattr("losscli.engine.cluster.CHUNKS_PER_PARTITION", 2)
    options = {"endpoint_url": endpoint}
    files = (f"s3://{BUCKET}/dask/p-*.npy", f"s3://{BUCKET}/dask/t-*.npy")
    local = losscli.compute("mse", *files, storage_options=options, streaming=losscli.Streaming(chunk_rows=9))
    with losscli.Cluster(workers=1) as cluster:
        found = losscli.compute("mse", *files, storage_options=options, engine=cluster,
                                streaming=losscli.Streaming(chunk_rows=9))
    assert found.value == local.value
    assert local.item() == pytest.approx(F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item(), rel=1e-6)


# -- az:// against Azurite ----------------------------------------------------------------------------------------

# Azurite's blob service, installed by README's test command (test_readme_installs_the_azurite_the_tests_run)
AZURITE = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_INSTALL = "npm install --prefix .ci/node --no-audit --no-fund --loglevel=error azurite@3.35.0"
AZURITE_WAIT = 30  # seconds for it to answer
CONTAINER = "losscli-az"
# the emulator's one account and its key, published in Azurite's README ("well-known storage account and key")
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int) -> str:
    """The connection string of Azurite's account on 127.0.0.1:``port``, as Azure's tools write it."""
    return (f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZ_ACCOUNT};")


def _answers(port: int) -> bool:
    """Whether an HTTP server answers on 127.0.0.1:``port`` (with any status: Azurite refuses an unsigned request)."""
    connection = HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", f"/{AZ_ACCOUNT}?comp=list")
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


def _stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory, free_port):
    """Azurite's blob service (``azurite-blob``, Node) on a free port of 127.0.0.1: in memory, its telemetry off, one
    container. adlfs (and so losscli) finds it through AZURE_STORAGE_CONNECTION_STRING, the only AZURE_STORAGE_*
    variable set. Yields adlfs's filesystem that uploads and the connection string. Stopped after the module
    (terminated, killed when it does not end in time)."""
    if not AZURITE.exists():
        pytest.fail(f"Azurite is not installed ({AZURITE.relative_to(ROOT)} is missing): run `{AZURITE_INSTALL}` in "
                    f"{ROOT} (README's test command does)", pytrace=False)
    import adlfs

    folder = tmp_path_factory.mktemp("azurite")  # its working directory: with --inMemoryPersistence it writes nothing
    port = free_port()
    command = [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", port, "--inMemoryPersistence", "--silent",
               "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
    with open(folder / "azurite.log", "w") as log:
        process = subprocess.Popen([str(c) for c in command], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + AZURITE_WAIT
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Azurite did not answer on 127.0.0.1:{port} in {AZURITE_WAIT} s (exit status "
                            f"{process.poll()}):\n{(folder / 'azurite.log').read_text()[-2000:]}", pytrace=False)
            time.sleep(0.1)
        connection = connection_string(port)
        with pytest.MonkeyPatch.context() as env:
            for name in [name for name in os.environ if name.startswith("AZURE_STORAGE_")]:
                env.delenv(name)
            env.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
            fs = adlfs.AzureBlobFileSystem(connection_string=connection, skip_instance_cache=True)  # not losscli's
            fs.mkdir(CONTAINER)
            yield fs, connection
    finally:
        _stop_process(process)


def aput(fs, key: str, data: bytes) -> str:
    fs.pipe(f"{CONTAINER}/{key}", data)
    return f"az://{CONTAINER}/{key}"


def test_readme_installs_the_azurite_the_tests_run():
    """The command that the fixture's message names is the one README's test command (and so CI) runs."""
    assert AZURITE_INSTALL in (ROOT / "README.md").read_text()


def test_az_npy_and_csv_equal_torch(azurite):
    fs, _ = azurite
    npy_and_csv_equal_torch(lambda key, data: aput(fs, key, data))


def test_az_connection_string_as_storage_option(azurite, monkeypatch):
    """Without AZURE_STORAGE_CONNECTION_STRING, the connection string given as a storage option (the command
    line's and compute()'s) reaches adlfs."""
    fs, connection = azurite
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    x, y = rng.normal(size=(16, 2)).astype(np.float32), rng.normal(size=(16, 2)).astype(np.float32)
    pred, target = aput(fs, "o/pred.npy", npy_bytes(x)), aput(fs, "o/target.npy", npy_bytes(y))
    expected = F.huber_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    got = value("huber", pred, target, "--storage-option", f"connection_string={connection}")
    assert got == pytest.approx(expected, rel=1e-6)
    result = losscli.compute("huber", pred, target, storage_options={"connection_string": connection})
    assert result.item() == pytest.approx(expected, rel=1e-6)


def test_az_glob_and_folder_of_shards(azurite):
    fs, _ = azurite
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    for i, part in enumerate(np.split(x, 3)):
        aput(fs, f"run/p-{i}.npy", npy_bytes(part))
    aput(fs, "run/notes.txt", b"not a shard")
    aput(fs, "run/older/p-0.npy", npy_bytes(y))  # in a sub-folder: not a shard of run/
    target = aput(fs, "run-target.npy", npy_bytes(y))
    expected = F.smooth_l1_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value("smooth-l1", f"az://{CONTAINER}/run/p-*.npy", target) == pytest.approx(expected, rel=1e-6)
    assert value("smooth-l1", f"az://{CONTAINER}/run/", target) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("url", [f"az://{CONTAINER}/a/nothing-here.npy", "az://no-such-container/p.npy"])
def test_az_missing_object_is_one_line(azurite, url):
    result = invoke("mse", url, url)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line == f"error: input ({url}): expected a .npy file at {url}, but there is no such object"


def test_az_object_deleted_after_loading_is_one_line(azurite):
    """An object removed between loading (its header) and reading its rows: azure-core's 404 behind adlfs's
    FileNotFoundError says it is missing, not a failed read."""
    from losscli.io import Loader

    fs, _ = azurite
    url = aput(fs, "gone/pred.npy", npy_bytes(np.ones((8, 2), np.float32)))
    loaded = Loader().load(url, role="input")
    fs.rm(f"{CONTAINER}/gone/pred.npy")
    with pytest.raises(losscli.InputError, match=rf"^expected a file at {re.escape(url)}, but there is no such "
                                                 r"object$"):
        losscli.compute("mse", loaded, np.ones((8, 2), np.float32))


def test_az_unreachable_endpoint_is_one_line(azurite, free_port):
    """A closed endpoint: azure-storage-blob retries each request itself (4 tries, 18 + 24 + 42 s apart, which
    adlfs gives no storage option to shorten), so losscli asks once; then one line."""
    fs, _ = azurite
    url = aput(fs, "a/unreached.npy", npy_bytes(np.ones(3, np.float32)))  # there, but not where the option points
    start = time.monotonic()
    result = invoke("mse", url, url, "--storage-option", f"connection_string={connection_string(free_port())}")
    assert time.monotonic() - start < 150
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: input ({url}): expected a .npy file from {url}, but reading it failed 4 times "
                           "(azure-storage-blob's own tries): ServiceRequestError: ")


def test_az_check_gate_files_naming_az_urls(azurite, tmp_path, monkeypatch):
    """`losscli check` with a gate file in the container (its relative paths resolved against its URL) and with a
    local gate file naming az:// URLs, read through --storage-option connection_string=..."""
    fs, connection = azurite
    x, y = rng.normal(size=20).astype(np.float32), rng.normal(size=20).astype(np.float32)
    pred = aput(fs, "g/data/pred.npy", npy_bytes(x))
    target = aput(fs, "g/target.npy", npy_bytes(y))
    toml = f'[[check]]\nname = "mse"\nloss = "mse"\nfiles = ["../data/pred.npy", "{target}"]\nmax = 100\n'
    gate = aput(fs, "g/gates/gates.toml", toml.encode())
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
    result = invoke("check", gate, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["checks"][0]["value"] == pytest.approx(expected, rel=1e-6)
    assert losscli.check(gate).outcomes[0].value == pytest.approx(expected, rel=1e-6)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    local = tmp_path / "gates.toml"
    local.write_text(toml.replace("../data/pred.npy", pred).replace("max = 100", "max = 0.01"))
    result = invoke("check", local, "--storage-option", f"connection_string={connection}", "-f", "json")
    assert result.exit_code == 1, result.stderr  # the loss is above max = 0.01: failed, not an error
    [check] = json.loads(result.stdout)["checks"]
    assert check["status"] == "fail" and check["value"] == pytest.approx(expected, rel=1e-6)
