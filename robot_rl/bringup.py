"""Start a node graph from a YAML graph file without `ros2 launch`.

    python -m robot_rl.bringup config/graphs/sim_scripted.yaml [--namespace robot1] [--set node.key=value ...]

Each node runs as its own process (`python -m robot_rl.nodes.<exe> --ros-args ...`) with the graph's parameter files.
Everything is validated before the first process starts: executables, parameter files, and every parameter key and
value against the node's typed config, so a typo stops the graph with an error naming the key and the file.
Values that several nodes must agree on have one source per graph (SHARED_VALUES): the control rate is the driver's
(`mujoco_bridge` or `arm` `control_hz`), the step penalty the reward node's, the policy sync (which weights an episode
waits for) and the discount (γ of DEG's potential shaping) the learner's. Every other node that holds one gets the source's value, and a graph that sets a different
one is refused, naming both nodes.
SIGINT/SIGTERM are forwarded; the bringup exits non-zero when a node dies, and 0 when the graph's `exit_when` node
finishes cleanly.

Graph file:
    name: sim_scripted
    namespace: robot1              # one namespace per robot
    params_files: [config/sim.yaml]
    exit_when: episode_manager     # optional
    nodes:
      - executable: mujoco_bridge
        name: mujoco_bridge        # optional, defaults to the executable
        params: {task: reach}      # optional per-node overrides (-p)

A fleet graph (several robots, one learner) adds `robots`, the robots' namespaces, each with the parameters in which
its nodes differ from the others' ({} for none); every node marked `per_robot: true` runs once in each of them,
the others once in `namespace`, and the learner is given `robots` (learner.robots). `exit_when` then waits for
that node in every robot:
    namespace: fleet
    robots: {robot1: {}, robot2: {mujoco_bridge: {seed: 1000}}}
    nodes:
      - {executable: mujoco_bridge, per_robot: true}
      - executable: learner
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from robot_rl.configs import ROS_NAME, config_model, flatten_defaults, is_namespace, unflatten
from robot_rl.nodes import NODE_EXECUTABLES

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the checkout (in a colcon install: site-packages)
ROS_BUILTIN_KEYS = {"use_sim_time"}


class GraphError(ValueError):
    pass


@dataclass
class NodeSpec:
    executable: str
    name: str
    params: dict = field(default_factory=dict)
    robot: str | None = None  # the namespace of the robot it runs for (fleet graphs); None: the graph's namespace

    @property
    def key(self) -> str:
        """Unique in the graph: the name, with the robot's namespace in a fleet ("robot2/episode_manager")."""
        return self.name if self.robot is None else f"{self.robot}/{self.name}"


@dataclass
class Graph:
    name: str
    namespace: str
    params_files: list[Path]
    nodes: list[NodeSpec]
    exit_when: str | None
    source: Path
    robots: list[str] = field(default_factory=list)  # a fleet graph's robot namespaces

    def namespace_of(self, spec: NodeSpec) -> str:
        return self.namespace if spec.robot is None else spec.robot


def data_root() -> Path:
    """The folder holding config/ and urdf/: the checkout when robot_rl runs from one, else the package's ament share
    directory (a colcon install puts them under share/robot_rl, not next to the code in site-packages)."""
    if (PACKAGE_ROOT / "config" / "graphs").is_dir():
        return PACKAGE_ROOT
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        return Path(get_package_share_directory("robot_rl"))
    except (PackageNotFoundError, OSError) as err:  # OSError: no AMENT_PREFIX_PATH at all
        raise GraphError(f"robot_rl has no config/ next to its code ({PACKAGE_ROOT}) and is not in the ament index "
                         f"({err}): run it from the checkout, or source the setup.bash of its colcon install") from None


def graph_file(graph: str | Path) -> Path:
    """A graph by name (`sim_scripted`: config/graphs/sim_scripted.yaml of `data_root()`) or by path."""
    if isinstance(graph, str) and ROS_NAME.match(graph):
        return data_root() / "config" / "graphs" / f"{graph}.yaml"
    return Path(graph)


def resolve(path: str | Path, base: Path) -> Path:
    """Paths in graph files are relative to `data_root()` (or absolute)."""
    p = Path(path)
    return p if p.is_absolute() else (base / p)


def _load_yaml(path: Path) -> object:
    try:
        with path.open() as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise GraphError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise GraphError(f"{path}: not valid YAML: {err}") from None


def load_graph(path: str | Path, base: Path | None = None) -> Graph:
    """The graph file at `path` (relative to the working directory or to `base`, default `data_root()`)."""
    base = data_root() if base is None else base
    path = resolve(path, Path.cwd()) if Path(path).exists() else resolve(path, base)
    raw = _load_yaml(path)
    if not isinstance(raw, dict):
        raise GraphError(f"{path}: a graph file is a mapping with 'name' and 'nodes'")
    allowed = {"name", "namespace", "robots", "params_files", "exit_when", "nodes"}
    if unknown := sorted(set(raw) - allowed):
        raise GraphError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    if not isinstance(raw.get("nodes"), list) or not raw["nodes"]:
        raise GraphError(f"{path}: 'nodes' must be a non-empty list")
    nodes = []
    for i, entry in enumerate(raw["nodes"]):
        if not isinstance(entry, dict) or "executable" not in entry:
            raise GraphError(f"{path}: nodes[{i}] needs an 'executable'")
        if unknown := sorted(set(entry) - {"executable", "name", "params", "per_robot"}):
            raise GraphError(f"{path}: nodes[{i}] unknown key(s) {unknown}")
        exe = entry["executable"]
        if exe not in NODE_EXECUTABLES:
            raise GraphError(f"{path}: nodes[{i}].executable {exe!r} is not a robot_rl node {sorted(NODE_EXECUTABLES)}")
        name = entry.get("name", exe)
        if not isinstance(name, str) or not ROS_NAME.match(name):
            raise GraphError(f"{path}: nodes[{i}].name {name!r} is not a valid ROS node name")
        if name in {n.name for n in nodes}:
            raise GraphError(f"{path}: nodes[{i}].name {name!r} is used twice; give one of them another 'name'")
        params = entry.get("params") or {}
        if not isinstance(params, dict):
            raise GraphError(f"{path}: nodes[{i}].params must be a mapping of parameter names to values")
        nodes.append(NodeSpec(exe, name, dict(params), robot="" if entry.get("per_robot") else None))
    files = raw.get("params_files") or []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise GraphError(f"{path}: 'params_files' must be a list of file paths")
    files = [resolve(p, base) for p in files]
    for f in files:
        if not f.is_file():
            raise GraphError(f"{path}: params file {f} does not exist")
    namespace = str(raw.get("namespace", "")).strip("/")
    if not is_namespace(namespace):
        raise GraphError(f"{path}: namespace {namespace!r} is not a valid ROS namespace")
    robots = _robots(raw.get("robots"), nodes, path)
    if any(n.robot is not None for n in nodes) and not robots:
        raise GraphError(f"{path}: nodes marked per_robot need 'robots', the robots' namespaces")
    nodes = [n for n in nodes if n.robot is None] + [
        NodeSpec(n.executable, n.name, _merged(n.params, robots[robot].get(n.name, {})), robot)
        for robot in robots for n in nodes if n.robot is not None]
    graph = Graph(str(raw.get("name", path.stem)), namespace, files, nodes, raw.get("exit_when"), path, list(robots))
    if graph.exit_when is not None and graph.exit_when not in {n.name for n in nodes}:
        raise GraphError(f"{path}: exit_when {graph.exit_when!r} names no node of the graph")
    return graph


def _robots(raw, nodes: list[NodeSpec], path: Path) -> dict[str, dict]:
    """A fleet graph's `robots`: namespace -> {per-robot node name: its parameters in that robot}."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        raw = {robot: {} for robot in raw}
    if not isinstance(raw, dict) or not raw:
        raise GraphError(f"{path}: 'robots' maps each robot's namespace to its nodes' own parameters, e.g. "
                         f"{{robot1: {{}}, robot2: {{mujoco_bridge: {{seed: 1000}}}}}}")
    per_robot = {n.name for n in nodes if n.robot is not None}
    for robot, params in raw.items():
        if not isinstance(robot, str) or not robot.strip("/") or not is_namespace(robot.strip("/")):
            raise GraphError(f"{path}: robots: {robot!r} is not a valid ROS namespace")
        if not isinstance(params or {}, dict) or not all(isinstance(v, dict) for v in (params or {}).values()):
            raise GraphError(f"{path}: robots.{robot} must map node names to parameter mappings")
        if unknown := sorted(set(params or {}) - per_robot):
            raise GraphError(f"{path}: robots.{robot} sets parameters of {unknown}, which are not per_robot nodes "
                             f"{sorted(per_robot)}")
    return {robot.strip("/"): dict(params or {}) for robot, params in raw.items()}


def _merged(base: dict, override: dict) -> dict:
    """`base` with `override`'s dotted keys set on top (a copy)."""
    params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in _flatten(override).items():
        apply_key(params, key, value)
    return params


@dataclass(frozen=True)
class SharedValue:
    """One quantity several nodes hold: `sources` (executable, key) own it, `followers` receive it."""
    what: str
    sources: tuple[tuple[str, str], ...]
    followers: tuple[tuple[str, str], ...]


SHARED_VALUES = (
    SharedValue("control rate", sources=(("mujoco_bridge", "control_hz"), ("arm", "control_hz")),
                followers=(("policy", "control_hz"), ("episode_manager", "control_hz"), ("learner", "control_hz"),
                           ("teleop", "control_hz"), ("recorder", "fps"))),
    SharedValue("step penalty", sources=(("reward", "step_penalty"),),
                followers=(("learner", "poco.step_penalty"),)),
    SharedValue("policy sync", sources=(("learner", "policy_sync"),),
                followers=(("episode_manager", "policy_sync"),)),
    SharedValue("discount", sources=(("learner", "poco.gamma"),), followers=(("reward", "deg.gamma"),)),
)


def node_parameters(params_file: Path, node_name: str, namespace: str) -> dict:
    """The `ros__parameters` that a params file gives to /namespace/node_name (exact names and /** wildcards)."""
    raw = _load_yaml(params_file)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GraphError(f"{params_file}: a params file maps node names to 'ros__parameters'")
    fqn = f"/{namespace}/{node_name}" if namespace else f"/{node_name}"
    found: dict = {}
    for key, section in raw.items():
        if not _matches(str(key), fqn):
            continue
        if not isinstance(section, dict) or set(section) != {"ros__parameters"}:
            raise GraphError(f"{params_file}: section {key!r} must hold exactly 'ros__parameters'")
        if not isinstance(section["ros__parameters"] or {}, dict):
            raise GraphError(f"{params_file}: {key}.ros__parameters must be a mapping of parameter names to values")
        found.update(_flatten(section["ros__parameters"] or {}))
    return found


def _matches(pattern: str, fqn: str) -> bool:
    pattern = pattern if pattern.startswith("/") else "/" + pattern
    if pattern in ("/**", fqn):
        return True
    if pattern.startswith("/**/"):
        return fqn.endswith("/" + pattern[4:])
    return False


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def node_values(graph: Graph, spec: NodeSpec) -> tuple[dict, dict]:
    """The parameters the graph gives one node (params files, then its `params`), and where each came from."""
    values: dict = {}
    origin: dict = {}
    for f in graph.params_files:
        for key, value in node_parameters(f, spec.name, graph.namespace_of(spec)).items():
            values[key], origin[key] = value, str(f)
    for key, value in _flatten(spec.params).items():
        values[key], origin[key] = value, f"{graph.source} (nodes: {spec.name}.params)"
    return values, origin


def validate(graph: Graph) -> None:
    """Check every parameter each node will receive against its typed config, then give every node the graph's
    shared values (SHARED_VALUES); raise GraphError naming the key and the file, or both nodes of a disagreement."""
    for spec in graph.nodes:
        if graph.robots and spec.executable == "learner" and spec.robot is None:
            params, _ = node_values(graph, spec)
            if params.get("robots", graph.robots) != graph.robots:
                raise GraphError(f"{graph.source}: learner {spec.name!r} sets robots {params['robots']}, the graph's "
                                 f"are {graph.robots}; set them once, in the graph's 'robots'")
            apply_key(spec.params, "robots", list(graph.robots))
    for spec in graph.nodes:
        model = config_model(spec.executable)
        declared = set(flatten_defaults(model)) | ROS_BUILTIN_KEYS
        values, origin = node_values(graph, spec)
        for key in values:
            if key not in declared:
                raise GraphError(f"{origin[key]}: node {spec.name!r} has no parameter {key!r}")
        try:
            model.model_validate(unflatten({k: v for k, v in values.items() if k not in ROS_BUILTIN_KEYS}))
        except ValidationError as err:
            e = err.errors()[0]
            key = ".".join(map(str, e["loc"]))
            raise GraphError(f"{origin.get(key, graph.source)}: node {spec.name!r} parameter {key!r}: {e['msg']}") \
                from None
    for shared in SHARED_VALUES:
        share(graph, shared)


def share(graph: Graph, shared: SharedValue) -> None:
    """Set `shared` on every follower that does not set it, from the graph's source; refuse a source or follower that
    sets another value. Without a source node (a learner on another host) the followers must agree with each other."""
    def held(pairs) -> list[tuple[NodeSpec, str, object, str | None]]:
        """(node, key, value, where it was set or None for the default) for every node holding the value."""
        out = []
        for spec in graph.nodes:
            for exe, key in pairs:
                if spec.executable == exe:
                    values, origin = node_values(graph, spec)
                    out.append((spec, key, values.get(key, flatten_defaults(config_model(exe))[key]), origin.get(key)))
        return out

    sources, followers = held(shared.sources), held(shared.followers)
    explicit = [f for f in followers if f[3] is not None]
    reference = (sources or explicit or [None])[0]
    if reference is None:
        return
    ref_spec, ref_key, ref_value, ref_origin = reference
    for spec, key, value, origin in sources + followers:
        if value != ref_value and (origin is not None or (spec, key, value, origin) in sources):
            raise GraphError(
                f"{graph.source}: the {shared.what} must be one value per graph, but node {spec.name!r} has "
                f"{key} {value} ({origin or 'default'}) and node {ref_spec.name!r} has {ref_key} {ref_value} "
                f"({ref_origin or 'default'}); set it once, on {ref_spec.name!r}")
        if origin is None:
            apply_key(spec.params, key, ref_value)


def apply_key(params: dict, dotted: str, value) -> dict:
    """`params` with `section.key` set (nested mappings created as needed)."""
    *sections, leaf = dotted.split(".")
    node = params
    for s in sections:
        node = node.setdefault(s, {})
    node[leaf] = value
    return params


def control_hz(graph: Graph) -> float:
    """The graph's control rate, after `validate`: its driver's `control_hz` (or the default)."""
    for spec in graph.nodes:
        for exe, key in SHARED_VALUES[0].sources:
            if spec.executable == exe:
                values, _ = node_values(graph, spec)
                return float(values.get(key, flatten_defaults(config_model(exe))[key]))
    raise GraphError(f"{graph.source}: no driver node ({', '.join(e for e, _ in SHARED_VALUES[0].sources)})")


def node_config(graph: Graph, executable: str):
    """The typed config the graph (after `validate`) gives its node of `executable`, as that node will read it: what a
    tool outside the graph uses to act as the node would (`robot-rl reward relabel`)."""
    spec = next((n for n in graph.nodes if n.executable == executable), None)
    if spec is None:
        raise GraphError(f"{graph.source}: no {executable!r} node")
    values, _ = node_values(graph, spec)
    return config_model(executable).model_validate(
        unflatten({k: v for k, v in values.items() if k not in ROS_BUILTIN_KEYS}))


def apply_overrides(graph: Graph, namespace: str | None, sets: list[str]) -> None:
    if namespace is not None:
        graph.namespace = namespace.strip("/")
        if not is_namespace(graph.namespace):
            raise GraphError(f"--namespace {namespace!r} is not a valid ROS namespace")
    for item in sets:
        target, _, value = item.partition("=")
        node_name, _, key = target.partition(".")
        chosen = [n for n in graph.nodes if node_name in (n.name, n.key)]  # NODE: every robot's; ROBOT/NODE: one
        if not key or not chosen:
            raise GraphError(f"--set {item!r}: expected NODE.KEY=VALUE with NODE one of "
                             f"{sorted({n.name for n in graph.nodes} | {n.key for n in graph.nodes})}")
        for spec in chosen:
            apply_key(spec.params, key, yaml.safe_load(value))


def graph_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables every node of a graph needs, each taken from `environ` (default os.environ) where it sets one (a
    user's MUJOCO_GL=glfw or ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET wins). The bringup and the launch files both set
    exactly these (docs/architecture.md, 'Running it'): without them the bridge cannot render on a headless machine
    and DDS runs without the 16 MB shared-memory profile."""
    environ = os.environ if environ is None else environ
    needed = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(Path(environ.get("TMPDIR", "/tmp")) / "robot_rl_ros_log"),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(data_root() / "config" / "fastdds.xml"),
        "MUJOCO_GL": "egl",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return {key: environ.get(key, value) for key, value in needed.items()}


def ros_environment(base: Mapping[str, str] | None = None) -> dict:
    """`base` (default os.environ) with `graph_environment` added: the environment of every node process."""
    env = dict(os.environ if base is None else base)
    env.update(graph_environment(env))
    return env


def remappings(namespace: str) -> list[tuple[str, str]]:
    """The topic remappings of a node in `namespace`: in a namespace /clock too, so that two sim graphs (or two
    robots of a fleet) in one domain do not run on each other's clock."""
    return [("/clock", f"/{namespace}/clock")] if namespace else []


def node_command(graph: Graph, spec: NodeSpec) -> list[str]:
    cmd = [sys.executable, "-m", NODE_EXECUTABLES[spec.executable], "--ros-args", "-r", f"__node:={spec.name}"]
    namespace = graph.namespace_of(spec)
    if namespace:
        cmd += ["-r", f"__ns:=/{namespace}"]
    for source, target in remappings(namespace):
        cmd += ["-r", f"{source}:={target}"]
    for f in graph.params_files:
        cmd += ["--params-file", str(f)]
    for key, value in _flatten(spec.params).items():
        cmd += ["-p", f"{key}:={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return cmd


class GraphProcess:
    """The running graph: one subprocess per node, output prefixed with the node name."""

    def __init__(self, graph: Graph, env: dict | None = None, quiet: bool = False):
        self.graph = graph
        self.env = ros_environment(env)
        self.quiet = quiet
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, list[str]] = {}

    def start(self) -> None:
        for spec in self.graph.nodes:
            self._start_node(spec)

    def _start_node(self, spec: NodeSpec) -> None:
        proc = subprocess.Popen(node_command(self.graph, spec), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.procs[spec.key] = proc
        self.logs.setdefault(spec.key, [])
        threading.Thread(target=self._pump, args=(spec.key, proc), daemon=True).start()

    def restart(self, key: str) -> None:
        """Start node `key` (NodeSpec.key) again with the same command line (after it died or was killed); its log
        continues."""
        if self.procs[key].poll() is None:
            raise RuntimeError(f"node {key!r} is still running")
        self._start_node(next(spec for spec in self.graph.nodes if spec.key == key))

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.logs[name].append(line.rstrip())
            if not self.quiet:
                print(f"[{name}] {line.rstrip()}", flush=True)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the exit_when node has ended (0; in a fleet, in every robot) or any node dies (its code,
        non-zero); stops the others."""
        deadline = None if timeout is None else time.monotonic() + timeout
        finishing = {spec.key for spec in self.graph.nodes if spec.name == self.graph.exit_when}
        try:
            while True:
                for key, proc in self.procs.items():
                    code = proc.poll()
                    if code is None or (key in finishing and code == 0):
                        continue
                    print(f"[bringup] node {key!r} exited with code {code}; stopping the graph", flush=True)
                    return code or 1
                if finishing and all(self.procs[key].poll() == 0 for key in finishing):
                    return 0
                if deadline is not None and time.monotonic() > deadline:
                    print(f"[bringup] graph {self.graph.name!r} still running after {timeout} s; stopping it", flush=True)
                    return 124
                time.sleep(0.05)
        finally:
            self.stop()

    def stop(self, grace_s: float = 5.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def prepare(path: str | Path, namespace: str | None = None, sets: list[str] = (), base: Path | None = None) -> Graph:
    """A graph file with its --namespace / --set overrides, validated and given its shared values: ready to start
    (by the bringup, or by the launch files, the same way)."""
    graph = load_graph(path, base)
    apply_overrides(graph, namespace, list(sets))
    validate(graph)
    return graph


def start_graph(path: str | Path, namespace: str | None = None, sets: list[str] = (), env: dict | None = None,
                quiet: bool = True) -> GraphProcess:
    """`prepare` and start the graph's processes (tests and benches; `run_graph` also forwards signals and waits)."""
    proc = GraphProcess(prepare(path, namespace, sets), env, quiet)
    proc.start()
    return proc


def run_graph(path: str | Path, namespace: str | None = None, sets: list[str] = (), timeout: float | None = None,
              env: dict | None = None, quiet: bool = False) -> int:
    graph = prepare(path, namespace, sets)
    proc = GraphProcess(graph, env, quiet)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def forward(signum, _frame):
        print(f"[bringup] signal {signum}: stopping graph {graph.name!r}", flush=True)
        raise KeyboardInterrupt

    for s in previous:
        signal.signal(s, forward)
    try:
        proc.start()
        return proc.wait(timeout)
    except KeyboardInterrupt:
        proc.stop()
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.bringup", description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", help="a graph file (config/graphs/sim_scripted.yaml) or name (sim_scripted)")
    parser.add_argument("--namespace", help="robot namespace (overrides the graph's)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.KEY=VALUE", help="override a parameter")
    parser.add_argument("--timeout", type=float, help="stop the graph after this many seconds (exit 124)")
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: the environment's, else random)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(args.domain_id)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    try:
        return run_graph(graph_file(args.graph), args.namespace, args.set, args.timeout, env)
    except GraphError as err:
        print(f"[bringup] {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
