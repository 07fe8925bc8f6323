"""The main job (`robot-rl demo`) end to end in miniature, on camera images: demonstrations with rendered frames →
an image BC prior → evaluation, POCO online and re-evaluation through the ROS graph, with the learner storing each
state's camera frames. Also: demo config files are checked before anything runs."""
import json

import numpy as np
import pytest

from robot_rl.demo import load_demo_config, run_demo
from robot_rl.rl.replay import load_episodes

pytestmark = pytest.mark.graph


def test_image_demo_runs_the_whole_job_and_the_learner_keeps_the_frames(tmp_path):
    cfg = load_demo_config(
        "config/demo_images.yaml", task="reach", cameras=["front"], image_size=32, demo_episodes=2, bc_steps=5,
        bc_batch_size=8, hidden_dim=16, online_episodes=1, eval_episodes=1, max_steps=15, out=str(tmp_path),
        poco={"batch_size": 8, "num_candidates": 2, "warmup_updates": 0, "critic_pretrain_updates": 2,
                      "critic_hidden": 16})
    summary = run_demo(cfg)
    assert 0.0 <= summary["success_prior"] <= 1.0 and 0.0 <= summary["success_finetuned"] <= 1.0
    change = summary["change"]  # paired on the one evaluation seed both runs used
    assert change["n"] == 1 and change["mean"] == summary["success_finetuned"] - summary["success_prior"]
    assert summary["online_over_evaluation"] > 0
    spec = json.loads((tmp_path / "learner" / "checkpoint" / "config.json").read_text())["spec"]
    assert spec["cameras"] == ["front"] and not spec["environment_state"]
    online = load_episodes(tmp_path / "learner" / "replay")
    assert len(online) == 1
    frames = online[0].images["front"]
    assert frames.shape == (len(online[0].actions) + 1, 32, 32, 3) and frames.dtype == np.uint8
    assert frames.std() > 0  # rendered scenes, not blank buffers
    log = [json.loads(line) for line in (tmp_path / "learner" / "learner_log.jsonl").read_text().splitlines()]
    assert log[-1]["steps"] == len(online[0].actions) and np.isfinite(log[-1]["critic_loss"])
    assert (tmp_path / "learning_curve.png").stat().st_size > 0


@pytest.mark.parametrize("content, message", [
    ("cameras: front\n", "cameras"),
    ("bc_stepz: 10\n", "bc_stepz"),
    ("- a list\n", "mapping"),
])
def test_bad_demo_config_names_the_file_and_key(tmp_path, content, message):
    path = tmp_path / "demo.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        load_demo_config(path)
    assert str(path) in str(err.value)
