"""Collect benchmarks/bench_*.py when pytest is pointed at this folder.

benchmarks/ is not in the default testpaths, so `pytest` alone never runs these;
`pytest benchmarks --benchmark-only` does."""

import pytest


def pytest_collect_file(file_path, parent):
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
