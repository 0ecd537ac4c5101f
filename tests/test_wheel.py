"""hf_spam as a user installs it: a wheel, in a fresh virtual environment outside the source tree.

The study runner starts each recipe as ``python -m hf_spam.commands.<recipe>`` from the installed package,
so a study runs where no ``recipes/`` folder exists. The fresh environment gets its dependencies from the
one running the tests (a ``.pth`` line), never the source tree: the test checks where hf_spam came from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "outputs", "build", "dist", "*.egg-info", "__pycache__"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the hf_spam wheel installed (no access to the source tree)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=SOURCE_IGNORE)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root)]
    subprocess.run([*build, str(source)], check=True, capture_output=True, timeout=600)
    wheel = next(root.glob("hf_spam-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([python, "-c", purelib], text=True).strip())
    (site / "dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )  # torch & co., not hf_spam
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    shutil.rmtree(source)  # nothing of the source tree is left to import
    return venv


@pytest.mark.slow
def test_a_tiny_study_runs_from_the_installed_wheel(
    installed, sms_file, tiny_gpt2_dir, gpt2_tokenizer_dir, tmp_path
):
    python = installed / "bin" / "python"
    where = subprocess.check_output(
        [python, "-c", "import hf_spam; print(hf_spam.__file__)"], text=True, cwd=tmp_path
    )
    assert where.startswith(str(installed)), where  # the wheel's hf_spam, not the source tree's
    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump({
        "name": "tiny", "seeds": [1],
        "shared": {"data_source": str(sms_file), "max_train_samples": 32, "max_eval_samples": 16},
        "rows": [
            {"name": "floor", "recipe": "tfidf"},
            {"name": "gpt2", "recipe": "gpt2", "args": {
                "model": str(tiny_gpt2_dir), "weights": "random", "tokenizer": str(gpt2_tokenizer_dir),
                "num_epochs": 1, "batch_size": 8, "trainable": "all", "eval_every": 0}},
        ],
        "questions": [{"title": "GPT-2 vs TF-IDF", "rows": ["floor", "gpt2"]}],
    }))  # fmt: skip
    compare = installed / "bin" / "hf-spam-compare"  # the console script the wheel installs
    out = subprocess.run([compare, str(study), "--output_dir", str(tmp_path / "out")], capture_output=True,
                         text=True, cwd=tmp_path, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.splitlines()[0])
    assert {summary["ran"], summary["failed"]} == {2, 0}, out.stderr[-3000:]
    for row in ("floor", "gpt2"):
        run = tmp_path / "out" / "tiny" / row / "seed1"
        command = json.loads((run / "args.json").read_text())["command"]
        assert command[0].startswith(str(installed)), command[0]  # run as python -m from the wheel
        assert json.loads((run / "metrics.json").read_text())["splits"]["test"]["n"] == 16
    assert (tmp_path / "out" / "tiny" / "report.md").is_file()
