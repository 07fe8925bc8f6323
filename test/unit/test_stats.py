"""The interval helpers behind every learning table: known values, and coverage of the paired bootstrap."""
import numpy as np
import pytest

from robot_rl.core.stats import mean_interval, paired_difference, wilson


def test_wilson_interval_matches_the_closed_form_and_stays_in_0_1():
    est = wilson(50, 100)
    assert est.mean == 0.5 and est.low == pytest.approx(0.4038, abs=1e-3) and est.high == pytest.approx(0.5962, abs=1e-3)
    assert wilson(0, 20).low == 0.0 and wilson(0, 20).high == pytest.approx(0.161, abs=1e-3)
    assert wilson(20, 20).high == 1.0


def test_mean_interval_uses_students_t_for_few_seeds():
    est = mean_interval([0.5, 0.6, 0.7])
    assert est.mean == pytest.approx(0.6) and est.high - est.mean == pytest.approx(4.303 * 0.1 / np.sqrt(3), rel=1e-3)


def test_paired_difference_interval_covers_the_true_gap_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        seed_effect = rng.normal(0, 0.05, (3, 1))  # training seeds differ
        a = rng.random((3, 100)) < 0.7 + seed_effect
        b = rng.random((3, 100)) < 0.5 + seed_effect
        est = paired_difference(a, b, resamples=2000, seed=trial)
        covered += est.low <= 0.2 <= est.high
    assert 0.85 <= covered / 200 <= 0.995


def test_paired_difference_refuses_unpaired_shapes():
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(np.ones((3, 10)), np.ones((3, 9)))


def test_bench_results_file_is_long_format_json_with_one_row_per_line(tmp_path):
    import json

    from bench.report import write_results

    rows = [{"method": "poco", "seed": s, "metric": "final_success", "value": v} for s, v in ((0, 0.9), (1, 0.85))]
    path = write_results("toy", rows, tmp_path / "toy.json")
    assert json.loads(path.read_text()) == {"bench": "toy", "rows": rows}
    assert [json.loads(line.rstrip(",")) for line in path.read_text().splitlines()[1:-1]] == rows
    with pytest.raises(ValueError, match="row 0 lacks"):
        write_results("toy", [{"method": "poco", "seed": 0, "value": 1.0}], tmp_path / "bad.json")
