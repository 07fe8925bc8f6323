"""JSON records carried in std_msgs/String: one schema module, validated on publish and on receive.

Low-rate, method-specific data (reward terms, episode outcomes, policy versions, arm status) travel as these records;
everything high-rate uses typed messages. Each record names its kind and schema version, so a consumer refuses a
record that is not what it expects instead of guessing.
"""
from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1


class RecordError(ValueError):
    """A record that does not parse or does not match its schema; the message says which field and why."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    schema_version: int = SCHEMA_VERSION
    stamp: float = Field(description="seconds on the robot clock (sim time in simulation)")


class RewardRecord(Record):
    kind: Literal["reward"] = "reward"
    episode: int = Field(ge=0)
    step: int = Field(ge=0)
    reward: float
    terms: dict[str, float] = Field(default_factory=dict, description="every term of the reward, named")
    success: bool = False
    done: bool = False
    source: str


class EpisodeStatus(Record):
    kind: Literal["episode_status"] = "episode_status"
    episode: int = Field(ge=0)
    state: Literal["idle", "resetting", "running", "ended"]
    task: str = ""
    seed: int | None = None
    outcome: Literal["success", "failure", "timeout", "stopped", "interrupted"] | None = None
    steps: int = 0
    duration_s: float = 0.0
    reason: str = ""
    executed_steps: int | None = Field(None, ge=0, description="on ended: the control ticks the driver executed an "
                                       "action in (holds included), by its own counters; None: it reports none")
    held_steps: int | None = Field(None, ge=0, description="on ended: of those, the ticks it held position (no new "
                                                            "point was due)")

    @property
    def expected_actions(self) -> int | None:
        """The actions the driver sent on `executed_action` (holds are not actions); None: it reports no counts."""
        return None if self.executed_steps is None else self.executed_steps - (self.held_steps or 0)


class PolicyVersion(Record):
    kind: Literal["policy_version"] = "policy_version"
    version: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    policy_type: str
    message: str = Field("", description="on policy/active: why the last weights received were refused, if they were")
    trained_through: int = Field(-1, ge=-1, description="on policy/version: the newest online episode whose updates "
                                                         "these weights hold (-1: none)")


class ArmStatus(Record):
    kind: Literal["arm_status"] = "arm_status"
    state: Literal["disabled", "ready", "estop", "error"]
    message: str = ""
    rejected: dict[str, int] = Field(default_factory=dict)
    clipped: dict[str, int] = Field(default_factory=dict)
    last_rejection: str = ""
    executor: dict[str, float] = Field(default_factory=dict)
    watchdog: bool = Field(False, description="ready, but no new action for the watchdog's ticks after the last one "
                                              "(the policy or teleop went silent): holding position")


class Accounting(BaseModel):
    """One node's tally of one episode: what it kept against the ticks the driver executed (episode/status), every
    tick it left out under a cause. `excluded` ticks are left out by design (after the terminal reward, holds in
    another action space), `dropped` ones are lost; `lost` = expected - kept - excluded, `rewards_lost` = kept ticks
    without their reward record, `cause` says both in words ("" when nothing was lost)."""

    model_config = ConfigDict(extra="forbid")
    episode: int = Field(ge=0)
    expected: int | None = Field(ge=0, description="ticks to keep, from episode/status (None: the driver reports no "
                                                   "counters)")
    kept: int = Field(ge=0, description="transitions stored / frames written / reward records published")
    rewards: int | None = Field(None, ge=0, description="of those, with their reward record matched (None: n/a)")
    excluded: dict[str, int] = Field(default_factory=dict)
    dropped: dict[str, int] = Field(default_factory=dict)
    lost: int | None = Field(description="None when `expected` is unknown")
    rewards_lost: int = Field(0, ge=0)
    cause: str = ""


class LearnerStatus(Record):
    """What the learner is doing (learner/status): its weights' version, store size and the newest episode's row."""

    kind: Literal["learner_status"] = "learner_status"
    state: Literal["warming_up", "waiting", "training", "error"]
    version: int = Field(ge=0)
    updates: int = Field(ge=0)
    store_steps: int = Field(ge=0)
    online_episodes: int = Field(ge=0)
    message: str = Field("", description="in error: what failed (the learner keeps serving its last good weights)")
    last_episode: dict[str, float | int | str | None] = Field(default_factory=dict,
                                                            description="the newest learner_log.jsonl row")
    last_accounting: Accounting | None = Field(None, description="the newest ended episode: executed steps against "
                                                                 "transitions stored and rewards matched")


class RewardStatus(Record):
    """The reward node's tally of its newest ended episode (reward/status), once its last inputs have arrived."""

    kind: Literal["reward_status"] = "reward_status"
    accounting: Accounting


class RecorderStatus(Record):
    """The recorder's tally of its newest episode (recorder/status), once the dataset writer has saved or failed it."""

    kind: Literal["recorder_status"] = "recorder_status"
    state: Literal["saved", "failed", "discarded"]
    accounting: Accounting


class CameraStatus(Record):
    """The stream's health, latched on `cameras/<name>/status`."""

    kind: Literal["camera_status"] = "camera_status"
    camera: str
    state: Literal["starting", "streaming", "stale", "resetting"]
    message: str = ""
    frames: int = 0          # frames published
    misses: int = 0          # read timeouts in total
    resets: int = 0          # hardware resets done
    dropped_stale: int = 0   # frames read but not published (not newer / too old)
    fps: float = 0.0         # measured over the last status period


class TaskState(Record):
    """Privileged simulator state (object poses, success). Sim only: it has no hardware counterpart."""

    kind: Literal["task_state"] = "task_state"
    task: str
    success: bool
    state: dict


RECORD_TYPES: dict[str, type[Record]] = {
    cls.model_fields["kind"].default: cls
    for cls in (RewardRecord, EpisodeStatus, PolicyVersion, ArmStatus, LearnerStatus, RewardStatus,
                RecorderStatus, CameraStatus, TaskState)
}


def encode(record: Record) -> str:
    """Validate (again, so a mutated record cannot slip through) and serialise."""
    type(record).model_validate(record.model_dump())
    return record.model_dump_json()


def decode(text: str, expected: type[Record]) -> Record:
    """Parse a record of type `expected`; raises RecordError naming what is wrong."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"{expected.__name__}: not JSON ({err.msg} at char {err.pos})") from None
    if not isinstance(payload, dict):
        raise RecordError(f"{expected.__name__}: expected a JSON object, got {type(payload).__name__}")
    kind = expected.model_fields["kind"].default
    if payload.get("kind") != kind:
        raise RecordError(f"{expected.__name__}: kind is {payload.get('kind')!r}, expected {kind!r}")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(
            f"{expected.__name__}: schema_version {payload.get('schema_version')!r}, this build reads {SCHEMA_VERSION}"
        )
    try:
        return expected.model_validate(payload)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise RecordError(f"{expected.__name__}: {problems}") from None
