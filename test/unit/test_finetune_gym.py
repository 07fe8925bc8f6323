"""`robot-rl finetune-gym` on a user's own env (`--env module:factory`, `--action-adapter`): the learning loop runs
on it unchanged, and an env that does not fit the policy or cannot be loaded is refused with a message that names
the problem."""
import json
import sys
import textwrap

import pytest

from robot_rl.commands import main
from robot_rl.policies import save_policy
from policy_fixtures import tiny_sim_policy

FOREIGN_ENV = '''
import gymnasium as gym
import numpy as np

CALLS = {"adapter": 0}


class Reach(gym.Env):
    """A foreign env: a point that succeeds past x = 0.05 and fails (terminal) past x = -0.05."""
    def __init__(self, state_dim):
        self.observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (state_dim,), np.float32)})
        self.action_space = gym.spaces.Box(-1, 1, (7,), np.float32)
        self.state_dim = state_dim

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return self._obs(), {}

    def step(self, action):
        self.x += float(action[0]) * 0.01
        self.t += 1
        success, failed = self.x > 0.05, self.x < -0.05
        return self._obs(), float(success), success or failed, self.t >= 20, {"success": success}

    def _obs(self):
        return {"state": np.full(self.state_dim, self.x, np.float32)}


def make():
    return Reach(STATE_DIM)


def adapter(action):
    CALLS["adapter"] += 1
    return np.asarray(action)
'''


@pytest.fixture
def foreign(tmp_path, monkeypatch):
    policy = tiny_sim_policy(0, environment_state=False, hidden_dim=16, depth=1, flow_steps=2)
    save_policy(policy, tmp_path / "prior", version=0)
    (tmp_path / "my_env.py").write_text(f"STATE_DIM = {policy.spec.state_dim}\n" + textwrap.dedent(FOREIGN_ENV))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_env", None)


def test_finetune_gym_learns_on_a_module_factory_env(foreign, capsys):
    out = foreign / "tuned"
    code = main(["finetune-gym", str(foreign / "prior"), "--env", "my_env:make", "--action-adapter", "my_env:adapter",
                 "--env-steps", "40", "--eval-every", "40", "--eval-episodes", "2", "--out", str(out),
                 "--set", "poco.batch_size=8", "--set", "poco.num_candidates=2", "--set", "poco.critic_hidden=16",
                 "--set", "poco.critic_pretrain_updates=0", "--set", "poco.warmup_updates=0"])
    assert code == 0, capsys.readouterr().err
    import my_env
    assert my_env.CALLS["adapter"] >= 40                     # every env step went through the user's adapter
    assert json.loads((out / "config.json").read_text())["version"] == 1
    assert len((out / "curve.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("env, message", [
    ("my_env:nope", "'my_env:nope': cannot load it"),
    ("no_such_module:make", "cannot load it"),
    ("NoSuchEnv-v0", "NoSuchEnv-v0"),
])
def test_an_env_that_cannot_be_loaded_is_named(foreign, capsys, env, message):
    assert main(["finetune-gym", str(foreign / "prior"), "--env", env, "--out", str(foreign / "x")]) == 2
    assert message in capsys.readouterr().err


def test_an_env_whose_state_does_not_fit_the_policy_is_refused(foreign, capsys):
    (foreign / "small_env.py").write_text("from my_env import Reach\n\ndef make():\n    return Reach(3)\n")
    assert main(["finetune-gym", str(foreign / "prior"), "--env", "small_env:make", "--out", str(foreign / "x")]) == 2
    assert "has 3 values, the policy's state" in capsys.readouterr().err
