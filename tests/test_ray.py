"""The Ray backend (executors/ray.py) on a real local Ray cluster: a spec gives the very
summary a local run gives, in a run directory that `load` and `report` read as any; a
worker killed mid-group is retried and resumes from its checkpoint, while a group that
fails for a data reason is reported, not retried, and the other finishes; what Ray wrote,
a local run resumes. Skipped without the ray extra."""

import json
import os
import subprocess
import sys

import pytest
from conftest import RESUMABLE_IN_TWO_GROUPS, run_results

import clampdsl
from clampdsl.compile import compile_source
from clampdsl.durable import RunError
from clampdsl.executors.group import GroupTask
from clampdsl.report.store import run_directory

ray = pytest.importorskip("ray")
on_ray = pytest.importorskip("clampdsl.executors.ray")

SPEC = RESUMABLE_IN_TWO_GROUPS  # two groups of 40 steps, checkpoints at 15, 30 and 40
# The Python API as a script drives it: each group's start step, and the failure if any.
DRIVER = """
import json, sys
import clampdsl
from clampdsl.api import GroupsFailed
from clampdsl.executors import choose

starts, failure = [], None
def on_group(index, runs, total, start):
    starts.append([index, start])
    return lambda step, losses: None
try:
    clampdsl.run("spec.clamp", "out", compile="off", executor=choose("ray", address=sys.argv[1]),
                 on_group=on_group)
except GroupsFailed as error:
    failure = str(error)
print(json.dumps({"starts": starts, "failure": failure}))
"""


def clampdsl_run(folder, *options, env=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "clampdsl", "run", "spec.clamp", "--out", "out"]
    return subprocess.run(
        [*command, "--compile", "off", *options],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The spec's metrics and summary from `--backend local`, on one torch thread (as each
    Ray task of a small group trains)."""
    folder = tmp_path_factory.mktemp("local")
    (folder / "spec.clamp").write_text(SPEC)
    run = clampdsl_run(folder, "--backend", "local", "--threads", "1")
    assert run.returncode == 0, run.stderr
    return run_results(folder)


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU Ray cluster (Ray has no local mode), its address for `--address`."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_a_spec_on_ray_gives_the_summary_a_local_run_gives(tmp_path, local):
    (tmp_path / "spec.clamp").write_text(SPEC)
    run = clampdsl_run(tmp_path, "--backend", "ray")  # starts a local cluster of its own
    assert run.returncode == 0, run.stderr
    assert "every group a Ray task" in run.stdout
    assert run_results(tmp_path) == local  # metrics row for row, summary value for value
    (directory,) = (tmp_path / "out" / "spec").iterdir()
    assert not list(directory.glob(".probe-*"))  # the storage check leaves nothing behind
    assert clampdsl.load(tmp_path / "spec.clamp", tmp_path / "out").reused  # as any run
    again = subprocess.run(
        [sys.executable, "-m", "clampdsl", "report", "spec.clamp", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and "faster" in again.stdout, again.stderr


def test_a_killed_worker_is_retried_a_failing_group_is_not_and_local_resumes(
    tmp_path, cluster, local
):
    (tmp_path / "spec.clamp").write_text(SPEC)
    checkpoints = run_directory(tmp_path / "out", compile_source(SPEC, "spec.clamp"))
    (checkpoints / "checkpoints").mkdir(parents=True)
    (checkpoints / "checkpoints" / "group1.pt").write_text("damaged, with none before it")
    killed = tmp_path / "killed"
    # The 20th step of group 1 (after its checkpoint at 15), in the first worker only.
    env = os.environ | {"CLAMPDSL_KILL_AT": "step@20", "CLAMPDSL_KILL_ONCE": str(killed)}
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, cluster],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert driver.returncode == 0, driver.stderr
    told = json.loads(driver.stdout.splitlines()[-1])
    assert killed.exists()
    assert sorted(told["starts"]) == [[0, 0], [0, 15]]  # retried from its checkpoint
    assert "group 2 failed" in told["failure"] and "group1.pt" in told["failure"]
    assert "group 1 failed" not in told["failure"]

    (checkpoints / "checkpoints" / "group1.pt").unlink()
    resumed = clampdsl_run(tmp_path, "--backend", "local", "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert run_results(tmp_path) == local


def test_storage_the_driver_does_not_see_is_refused_by_name(tmp_path, cluster):
    elsewhere = ray.put(str(tmp_path / "elsewhere" / "probe"))  # what a node wrote, not here
    with pytest.raises(RunError, match="what the Ray node on host1 wrote is not here"):
        on_ray._check_probe("host1", tmp_path, elsewhere, "token")


@pytest.mark.parametrize(
    ("experiments", "device", "expected"),
    [
        ("experiment e\n", "cpu", {"num_cpus": 1}),
        ("experiment e:\n    seeds 1..32\n", "cpu", {"num_cpus": 2}),
        ("experiment e\n", "cuda", {"num_cpus": 1, "num_gpus": on_ray.MIN_GPU_SHARE}),
    ],
    ids=["a small group", "a group of 32 runs", "on CUDA"],
)
def test_a_groups_task_is_sized_from_the_group(experiments, device, expected):
    plan = compile_source(RESUMABLE_IN_TWO_GROUPS.split("experiment")[0] + experiments)
    task = GroupTask(plan, 0, "checkpoints", device, "off")
    assert on_ray.task_resources(task, node_cpus=16) == expected
    assert on_ray.task_resources(task, node_cpus=1)["num_cpus"] == 1
