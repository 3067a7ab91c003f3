"""The released artefact: `pip wheel --no-deps .` builds a wheel with the version of
pyproject.toml, and that wheel alone (no repository) runs `reconcile --version` and
`reconcile plan --sandbox` from a fresh virtual environment.

Offline: the wheel is built with the setuptools of the test environment (`--no-build-isolation`,
the test extra pins one that meets `[build-system]`), and the fresh environment takes the
wheel's dependencies from the test environment's site-packages through a `.pth` file instead of an
index. The wheel itself is installed `--no-index`, and nothing of the repository is on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SHIPPED = ("pyproject.toml", "README.md", "reconciler", "reconciler_sandbox")


def _setuptools_builds_wheels() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)


pytestmark = pytest.mark.skipif(not _setuptools_builds_wheels(),
                                reason="needs setuptools>=70.1 (the test extra): pip install -e '.[test]'")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # a fresh environment: nothing that points the tool elsewhere (zenpy's routing, which the
    # sandboxes' own tests set in this process; the sandbox endpoint overrides) or finds packages
    dropped = ("PYTHONPATH", "CI", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "ZENPY_FORCE_SCHEME",
               "ZENPY_FORCE_NETLOC", "RECONCILE_SANDBOX_GITLAB_URL", "RECONCILE_SANDBOX_ZENDESK_NETLOC")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the shipped sources (the build writes build/ and
    *.egg-info beside them; never in the working tree)."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SHIPPED:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, src / name, **(
            {"ignore": ignore} if (ROOT / name).is_dir() else {}))
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                "-w", dist, src, cwd=src)
    assert built.returncode == 0, built.stderr
    [path] = dist.glob("reconciler-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel; its dependencies come from this one."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    made = run(sys.executable, "-m", "venv", "--without-pip", home, cwd=home.parent)
    assert made.returncode == 0, made.stderr
    python = home / "bin" / "python"
    installed = run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel,
                    cwd=home.parent)
    assert installed.returncode == 0, installed.stderr
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=home.parent)
    (Path(purelib.stdout.strip()) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return home


def test_the_wheel_carries_the_version_the_seeds_and_the_schemas(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(metadata).decode())
    assert wheel.name == f"reconciler-{PROJECT['version']}-py3-none-any.whl"
    assert meta["Version"] == PROJECT["version"]
    seeds = {f"reconciler_sandbox/seeds/{p.name}" for p in (ROOT / "reconciler_sandbox" / "seeds").glob("*.yaml")}
    schemas = {p.relative_to(ROOT).as_posix() for p in (ROOT / "reconciler").rglob("*.json")}
    assert seeds and schemas >= {"reconciler/schemas/inventory.schema.json", "reconciler/plan.schema.json"}
    assert seeds | schemas <= names
    assert not [n for n in names if n.startswith(("tests/", "inventory/", "benchmarks/"))]
    # a plain install needs nothing of the test extra (vcrpy included: --record writes with PyYAML)
    plain = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert plain and not [r for r in plain if r.startswith(("vcrpy", "pytest"))]


def test_the_installed_wheel_runs_without_the_repository(venv, tmp_path):
    bin_ = venv / "bin"
    where = run(bin_ / "python", "-c", "import reconciler, reconciler_sandbox; "
                "print(reconciler.__file__); print(reconciler_sandbox.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(Path(line).is_relative_to(venv) for line in where.stdout.split()), where.stdout
    version = run(bin_ / "reconcile", "--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"reconcile, version {PROJECT['version']}\n")
    shutil.copytree(ROOT / "inventory", tmp_path / "inventory")  # a team's own inventory
    plan = run(bin_ / "reconcile", "plan", "--sandbox", "--now", "2026-11-22T12:00:00Z", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "Plan:" in plan.stdout and "rotate" in plan.stdout
