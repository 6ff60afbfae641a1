"""The Train screen's device panel on a real GPU (skipped without CUDA; run by benchmarks/gpu_check.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from test_tui_train import SIZE, open_train

from kirec_tui.app import KirecApp

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


async def test_the_device_panel_shows_the_gpu_while_training_on_it(tmp_path, tiny_dataset):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={}, poll_seconds=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot, tiny_dataset, epochs=3)
        screen.query_one("#train-form").set_value("device", "cuda")
        await pilot.press("ctrl+r")
        await screen.worker.wait()
        await pilot.pause()
        assert screen.final_status == "FINISHED", screen.worker.error
        panel = str(screen.query_one("#device-panel").render())
        name = torch.cuda.get_device_name(0)
        assert f"cuda:0 ({name})" in panel and "utilisation" in panel and "memory" in panel
        assert "utilisation ?" not in panel  # NVML answered, not only torch's counters
        shots = os.environ.get("KIREC_GPU_SCREENSHOTS")  # where gpu_check.sh collects the picture
        if shots:
            app.save_screenshot(filename="train-screen-cuda.svg", path=str(Path(shots)))
