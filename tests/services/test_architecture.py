"""The headless engine must never pull in the TUI toolkit: checked in a fresh interpreter."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_never_imports_textual():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "engine").rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(modules) > 10  # the walk really found the engine
    assert out.stdout.strip() == "", f"engine imported textual modules: {out.stdout.strip()}"


def test_cli_help_does_not_import_torch_or_textual():
    """`kirec --help` stays fast: heavy libraries load inside commands, not at import."""
    code = (
        "import sys\n"
        "import kirec_tui.cli\n"
        "print(','.join(m for m in ('torch', 'textual', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
