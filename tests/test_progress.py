"""edgepose.progress: the one progress bar of the CLI, the bench, downloads and export."""
from __future__ import annotations

import math

import pytest

from edgepose.progress import ProgressBar, meter


def test_meter_fills_a_fraction_of_the_width():
    assert meter(0.5, 10) == "#####....."
    assert meter(0.0, 4) == "...." and meter(1.0, 4) == "####"
    assert meter(2.0, 4) == "####" and meter(-1.0, 4) == "...." and meter(math.nan, 4) == "...."
    assert len(meter(0.3)) == 30


def test_items_redrawn_in_place_on_a_terminal(capsys):
    bar = ProgressBar("calibration images", total=3, live=True, unit="images")
    for _ in range(3):
        bar.update()
    assert bar.count == 3
    drawn = capsys.readouterr().err
    # the first update draws; the last (the work complete) draws whatever the time
    assert drawn.startswith("\rcalibration images [" + meter(1 / 3) + "] 1/3 ")
    assert drawn.split("\r")[-1].startswith(f"calibration images [{meter(1.0)}] 3/3 ")
    assert drawn.endswith("images/s") and "\n" not in drawn
    bar.close()
    final = capsys.readouterr().err
    assert final.startswith("\rcalibration images [") and final.endswith(" images/s\n")
    bar.close()  # a second close writes nothing
    assert capsys.readouterr().err == ""


def test_elsewhere_only_the_final_line_is_written(capsys):
    bar = ProgressBar("edgepose run", total=4, live=False)
    for _ in range(4):
        bar.update()
    assert capsys.readouterr().err == ""
    bar.close()
    line = capsys.readouterr().err
    assert line.startswith(f"edgepose run [{meter(1.0)}] 4/4 ") and line.endswith(" fps\n")
    assert "\r" not in line


def test_without_a_total_it_counts(capsys):
    bar = ProgressBar("edgepose run", live=False)
    bar.update()
    bar.update(2)
    bar.close()
    assert capsys.readouterr().err.startswith("edgepose run 3 frames ")


def test_a_registry_progress_callback_in_bytes(capsys):
    bar = ProgressBar("movenet-lightning", live=False)
    bar(0, 2_900_000)
    bar(2_900_000, 2_900_000)
    bar.close()
    line = capsys.readouterr().err
    assert line.startswith(f"movenet-lightning [{meter(1.0)}] 2.9/2.9 MB ")
    assert line.endswith(" MB/s\n")
    unknown = ProgressBar("x", live=False)
    unknown(1_500_000, None)
    unknown.close()
    assert capsys.readouterr().err.startswith("x 1.5 MB ")


def test_a_line_of_ones_own_cleared_and_padded(capsys):
    bar = ProgressBar(live=True)
    bar.show("a long first line", force=True)
    bar.show("short", force=True)       # pads over the longer one
    assert capsys.readouterr().err == "\ra long first line\rshort" + " " * 12
    bar.show("throttled")               # within a tenth of a second: not drawn
    assert capsys.readouterr().err == ""
    bar.clear()
    assert capsys.readouterr().err == "\r" + " " * 17 + "\r"
    bar.clear()                         # nothing drawn: nothing to clear
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("live", [True, False])
def test_disabled_or_never_fed_writes_nothing(capsys, live):
    bar = ProgressBar("quiet", total=2, enabled=False, live=live)
    bar.update()
    bar(5, 10)
    bar.show("x", force=True)
    bar.close()
    ProgressBar("idle", live=live).close()
    assert capsys.readouterr().err == ""
    assert bar.count == 1
