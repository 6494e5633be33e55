"""Remote inputs (losscli.io.remote) against real servers on 127.0.0.1, no mocks of the client libraries: moto's
standalone S3 server (uploaded to with boto3, losscli pointed at it by AWS_ENDPOINT_URL) and an http.server that
honours Range requests and counts what it serves. Values against torch.nn.functional on the same arrays."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


def test_s3_csv_columns_equal_torch(s3):
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
