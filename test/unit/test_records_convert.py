"""JSON record schemas and message conversions: round trips, and clear errors for bad input."""
import numpy as np
import pytest
from sensor_msgs.msg import Image

from robot_rl.core.types import EE_SPACE_NAMES, ActionChunk
from robot_rl.ros import convert, records


def test_record_round_trip():
    rec = records.RewardRecord(stamp=1.5, episode=2, step=7, reward=0.99, terms={"success": 1.0, "step_penalty": -0.01},
                               success=True, done=True, source="sim")
    assert records.decode(records.encode(rec), records.RewardRecord) == rec


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"kind": "episode_status", "schema_version": 1, "stamp": 0, "episode": 0, "state": "running"}', "kind is"),
        ('{"kind": "reward", "schema_version": 99, "stamp": 0}', "schema_version 99"),
        ('{"kind": "reward", "schema_version": 1, "stamp": 0, "episode": -1, "step": 0, "reward": 0, "source": "s"}',
         "episode"),
        ('{"kind": "reward", "schema_version": 1, "stamp": 0, "episode": 0, "step": 0, "reward": 0, "source": "s",'
         ' "surprise": 1}', "surprise"),
    ],
)
def test_bad_records_name_the_problem(text, message):
    with pytest.raises(records.RecordError, match=message):
        records.decode(text, records.RewardRecord)


def test_encode_revalidates_mutated_records():
    rec = records.EpisodeStatus(stamp=0.0, episode=0, state="idle")
    rec.state = "exploded"
    with pytest.raises(Exception):
        records.encode(rec)


def test_chunk_message_round_trip_with_velocities():
    pts = np.cumsum(np.full((5, 7), 0.001), axis=0)
    chunk = ActionChunk(stamp=12.345, dt=1 / 15, names=EE_SPACE_NAMES, points=pts, source="teleop")
    msg = convert.chunk_to_msg(chunk)
    assert msg.points[2].time_from_start.nanosec == pytest.approx(3 / 15 * 1e9, abs=1)
    assert np.allclose(msg.points[0].velocities, 0.001 * 15)
    back = convert.msg_to_chunk(msg)
    assert back.stamp == pytest.approx(12.345, abs=1e-9) and back.dt == pytest.approx(1 / 15)
    assert back.names == EE_SPACE_NAMES and back.source == "teleop" and np.allclose(back.points, pts)


def test_malformed_chunk_messages_are_refused():
    msg = convert.chunk_to_msg(ActionChunk(1.0, 0.1, EE_SPACE_NAMES, np.zeros((3, 7))))
    msg.points[1].positions = [0.0] * 6
    with pytest.raises(convert.ConversionError, match="values for 7 names"):
        convert.msg_to_chunk(msg)
    msg = convert.chunk_to_msg(ActionChunk(1.0, 0.1, EE_SPACE_NAMES, np.zeros((3, 7))))
    msg.points[2].time_from_start = convert.to_duration(0.5)
    with pytest.raises(convert.ConversionError, match="time_from_start"):
        convert.msg_to_chunk(msg)
    msg.points = []
    with pytest.raises(convert.ConversionError, match="no points"):
        convert.msg_to_chunk(msg)


def test_image_round_trip_and_rejections():
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    msg = convert.image_to_msg(rgb, 3.0, "front_optical_frame")
    assert np.array_equal(convert.msg_to_image(msg), rgb)
    bad = Image(height=48, width=64, encoding="32FC1", step=256, data=bytes(48 * 256))
    with pytest.raises(convert.ConversionError, match="encoding"):
        convert.msg_to_image(bad)
    short = convert.image_to_msg(rgb, 3.0, "f")
    short.data = bytes(10)
    with pytest.raises(convert.ConversionError, match="bytes"):
        convert.msg_to_image(short)
    huge = Image(height=100000, width=100000, encoding="rgb8", step=300000)
    with pytest.raises(convert.ConversionError, match="size"):
        convert.msg_to_image(huge)


@pytest.mark.parametrize("seconds", [0.0, 2.9999999999, 6.999999999999, 7.0000000004, 12.3333333, 1e6 + 0.5])
def test_stamps_round_trip_to_the_nanosecond_even_next_to_whole_seconds(seconds):
    from robot_rl.ros.convert import from_duration, from_time, to_duration, to_time

    for to, back in ((to_time, from_time), (to_duration, from_duration)):
        msg = to(seconds)
        assert 0 <= msg.nanosec < 1_000_000_000
        assert abs(back(msg) - seconds) < 1e-9, (to.__name__, seconds, msg)
