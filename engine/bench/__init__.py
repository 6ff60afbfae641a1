"""`kirec bench`: a matrix of methods × backbones × datasets × seeds, trained through the one pipeline (reusing
finished runs), and its results table with significance tests (issue #13)."""

from engine.bench.runner import BenchOutcome, CellRun, run_bench
from engine.bench.spec import BenchSpec, Cell, load_spec

__all__ = ["BenchOutcome", "BenchSpec", "Cell", "CellRun", "load_spec", "run_bench"]
