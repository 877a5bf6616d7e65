"""The layout: suites and corpus recipes live once, in corpora/ at the top of the repository, and an installed
(non-editable) lmbench still finds them, because setup.py installs that folder as lmbench/corpora."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

from conftest import REPO

from lmbench.bench.suite import builtin_suites


def test_a_checkout_reads_the_suites_from_corpora():
    suites = builtin_suites()
    assert {"quick", "standard", "paper"} <= set(suites)
    assert all(path.parent == REPO / "corpora" / "suites" for path in suites.values())
    # One copy in the repository: no suite file inside the package directory to drift from it.
    assert not list((REPO / "lmbench").rglob("*.toml")), "suites belong in corpora/suites/, not in lmbench/"


def test_a_wheel_carries_the_suites_and_an_installed_lmbench_lists_them(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("lmbench", "corpora"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", tmp_path / "dist", source], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("lmbench-*.whl")
    expected = {p.name: p.read_bytes() for p in (REPO / "corpora" / "suites").glob("*.toml")}
    recipes = {p.name: p.read_bytes() for p in (REPO / "corpora" / "recipes").glob("*.toml")}
    with zipfile.ZipFile(wheel) as z:
        packaged = {n.rpartition("/")[2]: z.read(n) for n in z.namelist() if n.startswith("lmbench/corpora/suites/")}
        packaged_recipes = {n.rpartition("/")[2]: z.read(n) for n in z.namelist()
                            if n.startswith("lmbench/corpora/recipes/")}
    assert packaged == expected
    assert recipes and packaged_recipes == recipes
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:  # a wheel is installed by unpacking it (what pip does, less the scripts)
        z.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-m", "lmbench", "suites", "--json"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert set(json.loads(listed.stdout)["suites"]) == {p.removesuffix(".toml") for p in expected}
    where = subprocess.run([sys.executable, "-c", "import lmbench.text.fetch as f; print(f.corpora_root())"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert where.stdout.strip() == str(site / "lmbench" / "corpora")
