"""Chunk executor timing rules, on an explicit clock."""
import numpy as np
import pytest

from robot_rl.core.executor import ChunkExecutor
from robot_rl.core.types import JOINT_SPACE_NAMES, ActionChunk

DT = 0.1


def chunk(stamp, values, names=JOINT_SPACE_NAMES):
    pts = np.array([[v] * len(names) for v in values], dtype=float)
    return ActionChunk(stamp=stamp, dt=DT, names=tuple(names), points=pts)


def test_points_issued_one_per_tick_from_the_observation_stamp():
    ex = ChunkExecutor(DT, watchdog_s=0.3)
    assert ex.submit(chunk(1.0, [1, 2, 3]), now=1.0) == 3
    executed = [ex.tick(1.0 + k * DT) for k in range(3)]
    assert [t.status for t in executed] == ["new"] * 3
    assert [t.point.values[0] for t in executed] == [1, 2, 3]


def test_points_already_due_are_dropped_on_arrival():
    ex = ChunkExecutor(DT, watchdog_s=0.3)
    # computed from an observation 0.2 s ago: points 0 and 1 were due at 1.0 and 1.1
    assert ex.submit(chunk(1.0, [1, 2, 3, 4]), now=1.2) == 2
    assert ex.stats.points_dropped_late == 2
    assert ex.tick(1.2).point.values[0] == 3


def test_new_chunk_replaces_the_unexecuted_tail():
    ex = ChunkExecutor(DT, watchdog_s=1.0)
    ex.submit(chunk(1.0, [1, 2, 3, 4]), now=1.0)
    ex.tick(1.0)
    ex.submit(chunk(1.1, [10, 20]), now=1.1)
    assert [ex.tick(1.1 + k * DT).point.values[0] for k in range(2)] == [10, 20]
    assert ex.tick(1.3).status == "idle"


def test_missed_ticks_execute_the_newest_due_point_and_count_the_skip():
    ex = ChunkExecutor(DT, watchdog_s=1.0)
    ex.submit(chunk(1.0, [1, 2, 3, 4]), now=1.0)
    tick = ex.tick(1.21)  # the loop overran: points 0..2 are all due
    assert tick.point.values[0] == 3 and ex.stats.points_skipped == 2
    assert tick.lateness == pytest.approx(0.01)


def test_watchdog_after_silence_then_recovers():
    ex = ChunkExecutor(DT, watchdog_s=0.3)
    ex.submit(chunk(1.0, [1]), now=1.0)
    assert ex.tick(1.0).status == "new"
    assert [ex.tick(1.0 + k * DT).status for k in (1, 2)] == ["idle", "idle"]
    assert ex.tick(1.3).status == "watchdog"
    ex.submit(chunk(1.4, [5]), now=1.4)
    assert ex.tick(1.4).status == "new"


def test_temporal_ensembling_blends_overlapping_points_only():
    ex = ChunkExecutor(DT, watchdog_s=1.0, ensemble_weight=0.5)
    ex.submit(chunk(1.0, [0, 0, 0]), now=1.0)
    ex.tick(1.0)
    ex.submit(chunk(1.1, [10, 10, 10]), now=1.1)  # overlaps old points issued at 1.1 and 1.2
    values = [ex.tick(1.1 + k * DT).point.values[0] for k in range(3)]
    assert values == [5, 5, 10]


def test_invalid_construction_is_refused():
    with pytest.raises(ValueError):
        ChunkExecutor(0.0, 1.0)
    with pytest.raises(ValueError):
        ChunkExecutor(DT, 1.0, ensemble_weight=1.5)
