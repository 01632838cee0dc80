"""A few hundred cases of benchmarks/fuzz.py: every reader of outside input, fed mutated valid
inputs, fails only with its documented error (the script runs 10,000 per reader)."""
import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("fuzz", Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fuzz)

CASES = {"artifact": 120, "config": 100, "checkpoint": 40, "yuv": 80, "params": 150, "results": 80}


@pytest.mark.parametrize("reader", sorted(CASES))
def test_readers_fail_only_with_their_documented_errors(reader, tmp_path):
    report = fuzz.fuzz(reader, CASES[reader], seed=7, work=tmp_path)
    assert not report["findings"], report["findings"][0]["traceback"]
    assert sum(report["outcomes"].values()) == CASES[reader]
    assert set(report["outcomes"]) - {"ok"} <= {e.__name__ for e in fuzz.ALLOWED[reader]}


def test_the_fuzzer_reports_an_undocumented_error(monkeypatch, tmp_path):
    def broken(work):
        return lambda rng: {}["missing"]
    monkeypatch.setitem(fuzz.READERS, "config", broken)
    report = fuzz.fuzz("config", 3, work=tmp_path)
    assert report["outcomes"] == {"UNDOCUMENTED KeyError": 3} and len(report["findings"]) == 3
