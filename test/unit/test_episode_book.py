"""The episode manager's bookkeeping without ROS: why an episode ends, its result, and when the next one may start."""
import logging

from robot_rl.configs.episode import EpisodeConfig
from robot_rl.core import episodes
from robot_rl.core.episodes import REWARD_WAIT_S, EpisodeBook, StampTally, grid_gaps

LOG = logging.getLogger("episode_book_test")


def running_book(tmp_path, **cfg) -> EpisodeBook:
    book = EpisodeBook(EpisodeConfig(results_path=str(tmp_path / "results.jsonl"), **cfg), LOG)
    book.reset_done({"seed": 7, "task": "reach", "stamp": 10.0}, now=10.0)
    book.start_running()
    return book


def test_a_reward_reporting_success_ends_the_episode_at_its_own_stamp(tmp_path):
    book = running_book(tmp_path, max_steps=100)
    book.on_reward(9.0, book.episode, True, "sim")         # older than the episode: ignored
    book.on_reward(11.0, book.episode + 1, True, "sim")    # another episode's record: ignored
    assert book.end_request is None
    book.on_reward(11.0, book.episode, True, "sim")
    result = book.finish(now=11.5)                          # the node's clock lags the record: the record's stamp
    assert (result.outcome, result.steps, result.seed) == ("success", 15, 7)
    assert (tmp_path / "results.jsonl").read_text().count("\n") == 1


def test_timeout_after_max_steps_and_interrupt_on_the_arms_watchdog(tmp_path):
    book = running_book(tmp_path, max_steps=15)
    book.check_running(10.0 + 14 / 15)
    assert book.end_request is None
    book.check_running(10.0 + 15 / 15)
    assert book.end_request == ("timeout", "15 steps")
    other = running_book(tmp_path, max_steps=15)
    other.on_arm_status(10.5, "ready", "", watchdog=True)
    assert other.end_request[0] == "interrupted" and "watchdog" in other.end_request[1]


def test_a_success_the_reward_node_was_late_with_still_ends_a_timed_out_episode_as_success(tmp_path):
    """The reward node lags the robot's clock: the limit is read while records up to it are still on their way."""
    def timed_out_book():
        book = running_book(tmp_path, max_steps=15)
        book.on_reward(10.2, book.episode, False, "classifier")
        book.check_running(11.2)                                        # the limit (11.0) read late
        book.phase = "ending"
        book.arm_disabled()
        return book

    book = timed_out_book()
    assert book.end_request[0] == "timeout" and not book.ready_to_finish()  # records up to 11.0 still to come
    book.on_reward(10.6, book.episode, True, "classifier")
    result = book.finish(now=11.3)
    assert (result.outcome, result.steps, result.reason) == ("success", 9, "classifier reported success")
    late = timed_out_book()
    late.on_reward(11.07, late.episode, True, "classifier")           # past the limit: the timeout stands
    assert late.ready_to_finish()
    result = late.finish(now=11.3)
    assert (result.outcome, result.steps) == ("timeout", 15)              # at the limit, not when it was read


def test_a_timed_out_episode_waits_for_a_lagging_reward_node_while_its_records_keep_coming(tmp_path, monkeypatch):
    """On a busy machine a classifier can score the steps before the limit many seconds late: no fixed wall wait ends
    the episode while its records still come; once none has come for REWARD_WAIT_S, it ends."""
    wall = [100.0]
    monkeypatch.setattr(episodes.time, "monotonic", lambda: wall[0])
    book = running_book(tmp_path, max_steps=15)
    book.on_reward(10.1, book.episode, False, "classifier")
    book.check_running(11.2)                                         # the limit (11.0) read late
    book.phase = "ending"
    book.arm_disabled()
    for k in range(1, 9):                                            # one record every 2 s for 16 s
        wall[0] += 2.0
        assert not book.ready_to_finish(), k
        book.on_reward(10.1 + 0.1 * k, book.episode, k == 8, "classifier")
    result = book.finish(now=11.3)
    assert (result.outcome, result.reason) == ("success", "classifier reported success")
    stalled = running_book(tmp_path, max_steps=15)
    stalled.on_reward(10.1, stalled.episode, False, "classifier")
    stalled.check_running(11.2)
    stalled.phase = "ending"
    stalled.arm_disabled()
    wall[0] += REWARD_WAIT_S - 0.5
    assert not stalled.ready_to_finish()
    wall[0] += 1.0                                                   # the reward node stopped: the timeout stands
    assert stalled.ready_to_finish() and stalled.finish(now=11.3).outcome == "timeout"


def test_online_rl_waits_for_newer_weights_that_the_policy_node_runs(tmp_path):
    book = running_book(tmp_path, policy_sync="each_episode")
    book.published_version, book.active_version = 0, 0
    assert not book.waiting_for_weights()                  # the first episode runs the prior
    book.version_at_end = 0                                 # it ended on version 0
    assert book.waiting_for_weights()                       # nothing newer yet
    book.published_version = 1
    assert book.waiting_for_weights()                       # published, not yet running in the policy node
    book.active_version = 1
    assert not book.waiting_for_weights()


def test_continuous_sync_waits_for_the_first_weights_a_lagging_learner_and_every_episodes_updates_at_the_end(
        tmp_path):
    book = running_book(tmp_path, policy_sync="continuous", num_episodes=3, max_lag_episodes=1)
    assert book.waiting_for_weights()                       # before the first episode: the learner's weights
    book.published_version = book.active_version = 0
    assert not book.waiting_for_weights()

    def run_episode():
        book.request_end("timeout", "test")
        book.finish(now=12.0)

    run_episode()                                           # episode 0 owes updates: one episode of lag is allowed
    assert not book.waiting_for_weights()
    run_episode()                                           # episodes 0 and 1 owe updates: wait for the learner
    assert book.waiting_for_weights()
    book.trained_through = 0
    assert not book.waiting_for_weights()
    run_episode()
    assert book.done and book.waiting_for_weights()         # the exit waits for every episode's updates
    book.trained_through = 1
    assert book.waiting_for_weights()
    book.trained_through = 2
    assert not book.waiting_for_weights()


def counters(executed: int, idle: int = 0, watchdog: int = 0) -> dict[str, float]:
    return {"points_executed": float(executed), "ticks_idle": float(idle), "ticks_watchdog": float(watchdog),
            "chunks": 3.0}


def test_the_ended_result_carries_the_steps_the_driver_executed_by_its_own_counters(tmp_path):
    book = running_book(tmp_path, max_steps=15)
    book.on_arm_status(10.0, "disabled", "", False, counters(100, 5))   # the previous episode's: no count yet
    book.on_arm_status(10.0, "ready", "", False, counters(100, 5))      # enabled: the count starts here
    book.on_arm_status(10.5, "ready", "", False, counters(107, 5))      # periodic, while running
    book.check_running(11.0)
    book.phase = "ending"
    assert not book.ready_to_finish()                                   # the arm is not disabled yet
    book.arm_disabled()
    assert not book.ready_to_finish()                                   # its final counters are on their way
    book.on_arm_status(11.07, "disabled", "", False, counters(113, 6, 1))
    assert book.ready_to_finish() and book.executed_counts() == (15, 2, 11.07)
    result = book.finish(now=11.0)
    assert (result.steps, result.executed_steps, result.held_steps) == (15, 15, 2)
    assert book.executed_counts() == (None, None, None)                 # the next episode counts afresh


def test_a_driver_without_counters_leaves_the_executed_steps_unknown(tmp_path):
    book = running_book(tmp_path, max_steps=15)
    book.on_arm_status(10.0, "ready", "", False, {})
    book.request_end("stopped", "operator")
    book.phase = "ending"
    book.arm_disabled()
    assert book.ready_to_finish()                                       # nothing to wait for
    assert book.finish(now=10.5).executed_steps is None


def test_a_stamp_tally_counts_gaps_on_its_grid_and_settles_after_the_end():
    assert grid_gaps([0.0, 0.1, 0.2, 0.5, 0.6, 0.7]) == 2
    tally = StampTally(episode=4)
    tally.kept = [i * 0.1 for i in range(12) if i != 6]                 # one input never came
    tally.drop("queue_full")
    assert not tally.settled(2.0)                                       # its end is not known yet
    tally.ended(1.1, expected=12)
    assert not tally.settled(1.1) and tally.settled(1.2)
    report = tally.result(surplus=None)
    assert (report["kept"], report["lost"], report["dropped"]) == (11, 1, {"queue_full": 1, "inputs_missing": 1})
    assert report["cause"] == "1 queue_full, 1 inputs_missing"
