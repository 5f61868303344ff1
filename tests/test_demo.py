"""The demo (README's main command) and the example scripts run and report what they claim."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from connectome import demo

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


def test_demo_engine_part_edits_in_place_and_keeps_the_function(capsys):
    args = ["--part", "engine", "--neurons", "300", "--fanout", "40", "--batch", "4", "--repeat", "1"]
    assert demo.main(args) == 0
    out = capsys.readouterr().out
    for step in ("built", "prune 10%", "grow 10%", "rewire 10%", "add 30 neurons x2", "remove 15 neurons"):
        assert step in out
    assert "function unchanged by add_neurons: max |dy| = 0 (ok)" in out


def test_demo_learning_part(capsys):
    code = demo.main(["--part", "learning", "--epochs", "2"])
    out = capsys.readouterr().out
    assert code == 0
    if HAVE_SKLEARN:
        assert "SET: test accuracy" in out and "L1: test accuracy" in out
        assert "predictions bitwise equal: True" in out
    else:  # the part says what to install and is skipped, with success
        assert "pip install scikit-learn" in out


def test_demo_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--epochs", "0"])
    assert "--epochs=0: expected >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "script, expect",
    [
        ("digits.py", "SET "),
        ("digits_reference.py", "SET "),
        ("digits_l1.py", "final density below 5%"),
        ("neurogenesis.py", "grown"),
    ],
)
def test_digits_examples_run(script, expect):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if HAVE_SKLEARN:
        assert proc.returncode == 0, proc.stderr
        assert expect in proc.stdout and "test acc" in proc.stdout
    else:
        assert proc.returncode != 0 and "pip install scikit-learn" in proc.stderr
