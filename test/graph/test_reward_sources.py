"""Reward sources: each behind the one interface, then three sim graphs at once over real DDS with the reward
node on `deg+` (success from sim), `classifier` and `human` (the operator's mark_success service)."""
import numpy as np
import pytest
import torch
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_rl import bringup
from robot_rl.core.types import CONTROL_HZ
from robot_rl.data.collect_sim import collect_demos
from robot_rl.rewards.classifier import labelled_frames, load_classifier, train_classifier
from robot_rl.rewards.deg_tools import train_deg
from robot_rl.rewards.params import ClassifierParams, DEGSourceParams, SourceConfig
from robot_rl.rewards.sources import RewardInput, make_source
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe, wait_for

DEG_TERMS = {"coarse", "fine", "goal", "pointer", "progress", "similarity", "success"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A DEG model (reach demos) and a success classifier (pick_lift demos), trained briefly: plumbing, not
    quality, is under test here (test_deg.py checks the DEG diagnostics)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("reward_models")
    collect_demos("reach", 4, noise=0.3, seed=0, root=root / "reach", cameras=["front"])
    train_deg(root / "reach", "front", root / "deg", ["latent"], encoder_steps=40, guidance_steps=50)
    collect_demos("pick_lift", 4, noise=0.2, seed=0, root=root / "pick", cameras=["front"])
    frames, labels, _ = labelled_frames(root / "pick", "front")
    clf, _ = train_classifier(frames, labels, steps=60, batch=32)
    clf.save(root / "classifier")
    return {"deg": root / "deg", "classifier": root / "classifier", "frames": frames, "labels": labels}


def test_sim_and_human_sources():
    sim = make_source(SourceConfig(source="sim", step_penalty=-0.01))
    out = sim.step(RewardInput(0.0, task_state={"success": True}))
    assert (out.reward, out.success, out.done) == (pytest.approx(0.99), True, True)
    with pytest.raises(ValueError, match="task state"):
        sim.step(RewardInput(0.0))
    human = make_source(SourceConfig(source="human", success_reward=5.0, step_penalty=-0.1))
    assert human.step(RewardInput(0.0)).done is False
    out = human.step(RewardInput(1.0, operator="success"))
    assert (out.terms["success"], out.success, out.done) == (5.0, True, True)
    out = human.step(RewardInput(1.0, operator="failure"))
    assert (out.reward, out.success, out.done) == (pytest.approx(-0.1), False, True)


def test_sources_without_a_model_say_how_to_get_one():
    with pytest.raises(ValueError, match="classifier.model_path"):
        make_source(SourceConfig(source="classifier"))
    with pytest.raises(ValueError, match="robot-rl deg train"):
        make_source(SourceConfig(source="deg+"))


def test_classifier_source_confidence_threshold_and_termination(models):
    clf = load_classifier(models["classifier"])
    frames, labels = models["frames"], models["labels"]
    p = clf.confidence(frames)
    assert p[labels].mean() > p[~labels].mean()  # success frames score higher than failure frames
    frame = frames[int(np.argmax(p))]
    for threshold, terminate, success, done in ((0.01, True, True, True), (0.01, False, True, False),
                                                (0.999999, True, False, False)):
        src = make_source(SourceConfig(source="classifier", classifier=ClassifierParams(
            model_path=str(models["classifier"]), threshold=threshold, terminate_on_success=terminate)))
        out = src.step(RewardInput(0.0, image=frame))
        assert (out.success, out.done) == (success, done)
        assert out.terms["confidence"] == pytest.approx(float(p.max()), abs=1e-5)
    debounced = make_source(SourceConfig(source="classifier", classifier=ClassifierParams(
        model_path=str(models["classifier"]), threshold=0.01, consecutive=2)))
    assert [debounced.step(RewardInput(0.0, image=frame)).success for _ in range(2)] == [False, True]


def test_deg_plus_adds_theta_times_success(models):
    src = make_source(SourceConfig(source="deg+", success_source="sim",
                                   deg=DEGSourceParams(model_path=str(models["deg"]), theta=10.0)))
    image = models["frames"][0]
    src.prepare(RewardInput(0.0, image=image), "reach")
    src.reset()
    fail = src.step(RewardInput(0.0, image=image, task_state={"success": False}))
    win = src.step(RewardInput(0.1, image=image, task_state={"success": True}))
    assert DEG_TERMS <= set(fail.terms) and fail.terms["success"] == 0.0 and not fail.done
    assert win.terms["success"] == 10.0 and win.success and win.done
    assert win.reward == pytest.approx(win.terms["coarse"] + win.terms["fine"] + win.terms["goal"] + 10.0)


# ---- through the ROS graph ---------------------------------------------------------------------------------------
GRAPHS = {
    "deg": ("reach", 150, ["reward.source=deg+", "reward.success_source=sim"]),
    "classifier": ("pick_lift", 300, ["reward.source=classifier", "reward.classifier.threshold=0.5"]),
    "human": ("reach", 300, ["reward.source=human"]),
}


@pytest.fixture(scope="module")
def graph_run(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reward_graphs")
    probe = Probe("reward_probe")
    rewards = {name: [] for name in GRAPHS}
    statuses = {name: [] for name in GRAPHS}
    procs = {}
    try:
        for name, (task, steps, sets) in GRAPHS.items():
            ns = f"rw_{name}"
            probe.node.create_subscription(String, f"/{ns}/{contract.REWARD.name}",
                                           lambda m, n=name: rewards[n].append(
                                               records.decode(m.data, records.RewardRecord)), contract.REWARD.qos)
            probe.node.create_subscription(String, f"/{ns}/{contract.EPISODE_STATUS.name}",
                                           lambda m, n=name: statuses[n].append(
                                               records.decode(m.data, records.EpisodeStatus)),
                                           contract.EPISODE_STATUS.qos)
            procs[name] = bringup.start_graph("config/graphs/sim_scripted.yaml", ns, sets + [
                f"mujoco_bridge.task={task}", "mujoco_bridge.camera_width=64", "mujoco_bridge.camera_height=64",
                "episode_manager.num_episodes=1", f"episode_manager.max_steps={steps}",
                f"reward.deg.model_path={models['deg']}", f"reward.classifier.model_path={models['classifier']}",
                f"episode_manager.results_path={tmp / name}.jsonl", "episode_manager.autostart=false",
                # three graphs and a model per reward node share the CI's 2 cores: a reward outage of 2 s (the sim
                # config's rule, tested in test_fault_graph) is load here, not an outage
                "episode_manager.reward_timeout_s=10.0"])
        for name in GRAPHS:  # start once every reward node is up (loading torch and models takes a while)
            wait_for(lambda n=name: probe.node.count_publishers(f"/rw_{n}/{contract.REWARD.name}"), 120,
                     f"the {name} reward node")
            assert probe.call(Trigger, f"/rw_{name}/episode/start", Trigger.Request()).success
        wait_for(lambda: len(rewards["human"]) >= 10, 120, "ten reward records from the human-source graph")
        assert probe.call(Trigger, "/rw_human/episode/mark_success", Trigger.Request()).success
        codes = {name: proc.wait(timeout=300) for name, proc in procs.items()}
        yield {"codes": codes, "rewards": rewards, "statuses": statuses,
               "logs": {name: proc.logs for name, proc in procs.items()}}
    finally:
        for proc in procs.values():
            proc.stop()
        probe.close()


def ended(statuses):
    return [s for s in statuses if s.state == "ended"]


@pytest.mark.graph
def test_graphs_exit_cleanly(graph_run):
    assert graph_run["codes"] == {name: 0 for name in GRAPHS}, graph_run["logs"]


@pytest.mark.graph
def test_deg_plus_records_carry_every_term_and_the_pointer_moves_forward(graph_run):
    recs = graph_run["rewards"]["deg"]
    assert recs and all(r.source == "deg+" and DEG_TERMS <= set(r.terms) for r in recs)
    assert [r.step for r in recs] == list(range(len(recs)))
    pointers = [r.terms["pointer"] for r in recs]
    assert all(b >= a for a, b in zip(pointers, pointers[1:]))
    assert all(r.reward == pytest.approx(sum(r.terms[k] for k in ("coarse", "fine", "goal", "success"))) for r in recs)
    assert recs[-1].success and recs[-1].terms["success"] == 10.0       # the scripted expert reaches the goal
    assert [s.outcome for s in ended(graph_run["statuses"]["deg"])] == ["success"]


@pytest.mark.graph
def test_classifier_records_carry_confidence_and_its_success_ends_the_episode(graph_run):
    recs = graph_run["rewards"]["classifier"]
    assert recs and all(r.source == "classifier" and 0.0 <= r.terms["confidence"] <= 1.0 for r in recs)
    outcome = ended(graph_run["statuses"]["classifier"])[0]
    start = next(s.stamp for s in graph_run["statuses"]["classifier"] if s.state == "running")
    limit = start + GRAPHS["classifier"][1] / CONTROL_HZ  # records past it can come before the ended status
    if any(r.success and r.stamp <= limit for r in recs):
        assert outcome.outcome == "success" and "classifier" in outcome.reason
    else:
        assert outcome.outcome == "timeout"


@pytest.mark.graph
def test_human_mark_success_gives_a_final_success_record(graph_run):
    recs = graph_run["rewards"]["human"]
    assert all(r.source == "human" for r in recs) and len(recs) >= 10
    assert not any(r.success for r in recs[:-1])                         # only the operator decides
    last = recs[-1]
    assert last.success and last.done and last.terms["success"] == 1.0
    status = ended(graph_run["statuses"]["human"])[0]
    assert (status.outcome, status.reason) == ("success", "operator")
