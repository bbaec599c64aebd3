"""``benchmarks.memory_growth`` reads what a daemon left, including what a full disk or a kill cut."""

from __future__ import annotations

import contextlib
import io
import json
import tracemalloc
from pathlib import Path

from benchmarks import memory_growth


def test_a_cut_heap_file_loses_its_row_not_the_report(tmp_path: Path):
    tracemalloc.start()
    try:
        for seconds in (300, 600, 900):
            tracemalloc.take_snapshot().dump(str(tmp_path / f"snapshot-{seconds:07d}.tracemalloc"))
    finally:
        tracemalloc.stop()
    (tmp_path / "snapshot-0000300.heap.json").write_text(json.dumps(
        {"rss_kib": 102400, "python_traced": None, "malloc_in_use": 40 << 20, "malloc_free_held": 8 << 20,
         "malloc_mmapped": 6 << 20, "sqlite": 1 << 20}))
    (tmp_path / "snapshot-0000600.heap.json").write_text("")  # the disk was full
    (tmp_path / "snapshot-0000900.heap.json").write_text('{"rss_kib": 1')  # killed mid-write
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert memory_growth.main([str(tmp_path)]) == 0
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows == ["| 300 | 100.0 | – | 40.0 | 8.0 | 6.0 | 1.0 |"]
    assert "growth from" in out.getvalue()
