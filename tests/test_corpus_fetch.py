"""`lmbench corpus fetch`: recipes, verified and resumable downloads from a local HTTP server, corpora by name."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading

import pytest
from conftest import assert_clean_error, run_cli

from lmbench.errors import LmbenchError
from lmbench.text import fetch
from lmbench.text.sources import load_corpus

TRAIN = "the cat sat on the mat\nthe dog sat on the log\n"
VALID = "the cat sat on the log\n"
TEST = "the dog sat on the mat\n"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves the server's files (a dict path → bytes), honouring `Range: bytes=N-`; records each request."""

    def do_GET(self):  # noqa: N802
        data = self.server.files.get(self.path)
        self.server.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = 0
        ranged = self.headers.get("Range")
        if ranged and ranged.startswith("bytes=") and ranged.endswith("-"):
            start = int(ranged[6:-1])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _archive() -> bytes:
    """A .tar.gz holding a corpus in a sub-folder, like the real archives."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("train", TRAIN), ("valid", VALID), ("test", TEST), ("README", "about")):
            data = text.encode()
            info = tarfile.TarInfo(f"./toy/{name}.tok")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _recipe(tmp_path, url, sha256, name="toy"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
name = "{name}"
description = "a toy corpus"
url = "{url}"
sha256 = "{sha256}"
license = "CC0"
unpack = "tar.gz"
tokenizer = "whitespace"

[files]
train = "toy/train.tok"
valid = "toy/valid.tok"
test = "toy/test.tok"
""")
    return path


@pytest.fixture
def data(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("LMBENCH_DATA", str(root))
    return root


def _leftovers(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def test_fetch_verifies_unpacks_and_the_name_works_as_a_corpus(server, data, tmp_path):
    archive = _archive()
    server.files["/toy.tar.gz"] = archive
    recipe = _recipe(tmp_path, f"http://127.0.0.1:{server.server_port}/toy.tar.gz",
                     hashlib.sha256(archive).hexdigest())
    result = run_cli("corpus", "fetch", recipe, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dest = data / "corpora" / "toy"
    assert (dest / "train.txt").read_text() == TRAIN and (dest / "test.txt").read_text() == TEST
    assert not (data / "downloads" / "toy.tar.gz").exists()  # the verified archive is removed once unpacked
    corpora = load_corpus("toy")  # by name, from any working directory
    assert corpora.tokenizer.kind == "whitespace"  # the recipe's tokenizer
    assert (corpora.train.n_sentences, corpora.train.n_tokens) == (len(TRAIN.splitlines()), len(TRAIN.split()))
    assert (corpora.test.n_sentences, corpora.test.n_tokens) == (len(TEST.splitlines()), len(TEST.split()))


def test_tampered_archive_is_refused_and_nothing_is_left(server, data, tmp_path):
    archive = _archive()
    server.files["/toy.tar.gz"] = archive[:-1] + bytes([archive[-1] ^ 1])  # one bit flipped in transit
    recipe = _recipe(tmp_path, f"http://127.0.0.1:{server.server_port}/toy.tar.gz",
                     hashlib.sha256(archive).hexdigest())
    assert_clean_error(run_cli("corpus", "fetch", recipe, cwd=tmp_path), "SHA-256", "nothing was installed")
    assert _leftovers(data) in ([], ["downloads"])  # no archive, no partial file, no corpus directory


def test_partial_download_resumes_with_a_range_request(server, data, tmp_path):
    archive = _archive()
    server.files["/toy.tar.gz"] = archive
    recipe = _recipe(tmp_path, f"http://127.0.0.1:{server.server_port}/toy.tar.gz",
                     hashlib.sha256(archive).hexdigest())
    half = len(archive) // 2
    (data / "downloads").mkdir(parents=True)
    (data / "downloads" / "toy.tar.gz.part").write_bytes(archive[:half])  # an interrupted earlier download
    fetch.fetch(str(recipe))
    assert server.requests == [("/toy.tar.gz", f"bytes={half}-")]  # only the rest was asked for
    assert (data / "corpora" / "toy" / "valid.txt").read_text() == VALID


def test_offline_error_says_what_to_download_and_where(data, tmp_path):
    recipe = _recipe(tmp_path, "http://127.0.0.1:9/toy.tar.gz", "0" * 64)  # port 9: nothing listens
    line = assert_clean_error(run_cli("corpus", "fetch", recipe, cwd=tmp_path), "http://127.0.0.1:9/toy.tar.gz")
    assert str(data / "downloads" / "toy.tar.gz") in line
    assert not (data / "corpora").exists()


def test_unknown_checksum_is_refused_and_unfetched_names_say_how(data, tmp_path):
    recipe = _recipe(tmp_path, "http://127.0.0.1:9/toy.tar.gz", "unknown")
    assert_clean_error(run_cli("corpus", "fetch", recipe, cwd=tmp_path), "no verified SHA-256",
                       str(data / "corpora" / "toy"))
    line = assert_clean_error(run_cli("corpus", "info", "wikitext-2", cwd=tmp_path),
                              "lmbench corpus fetch wikitext-2")
    assert str(data / "corpora" / "wikitext-2") in line and "wiki.train.tokens" in line


def test_shipped_recipes_parse_and_cover_the_standard_corpora():
    found = fetch.recipes()
    assert {"ptb", "wikitext-2", "wikitext-103", "wikitext-103-raw", "tinyshakespeare", "tatoeba-kor-eng"} <= set(found)
    for recipe in found.values():
        assert recipe.license and recipe.url.startswith(("http://", "https://"))
        assert recipe.sha256 is not None or recipe.sha256_source  # an unknown checksum says why


def test_bad_recipe_fields_are_refused(tmp_path):
    with pytest.raises(LmbenchError, match="sha256 must be 64 hex digits"):
        fetch.parse_recipe(_recipe(tmp_path, "http://x/y.tgz", "abc").read_text(), "r.toml")
    text = _recipe(tmp_path, "http://x/y.tgz", "unknown").read_text().replace('"tar.gz"', '"rar"')
    with pytest.raises(LmbenchError, match="unpack must be one of"):
        fetch.parse_recipe(text, "r.toml")


def test_data_directory_follows_the_platform_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LMBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(fetch.sys, "platform", "linux")
    assert fetch.data_dir() == tmp_path / "xdg" / "lmbench"
    monkeypatch.setenv("LMBENCH_DATA", str(tmp_path / "mine"))
    assert fetch.data_dir() == tmp_path / "mine"
