"""A full disk, a read-only one, and an output path that is a file: one clear line naming
the path, exit 1, nothing written before lost, and a clean resume once the cause is gone.

The small filesystems are tmpfs mounts in a user and mount namespace of the test's own
(`unshare`); where the machine allows none, those tests are skipped and say why."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import RESUMABLE_IN_TWO_GROUPS, TIMINGS

from clampdsl.compile import compile_source
from clampdsl.durable import write_atomically
from clampdsl.train.checkpoint import read

SPEC = RESUMABLE_IN_TWO_GROUPS


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d"
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", probe]
    return subprocess.run(command, capture_output=True).returncode == 0


needs_namespaces = pytest.mark.skipif(
    not namespaces_work(), reason="no unprivileged user+mount namespaces to mount a tmpfs in"
)


def in_small_filesystem(folder, steps: str) -> None:
    """Runs a shell script in a namespace where `folder/disk` is a tmpfs; `run N` runs the
    spec there, writing its exit code and stderr to `folder/N.rc`, `folder/N.err`; the
    script ends by copying the run directory out, to `folder/kept`."""
    script = f"""
set -u
cd {folder}
mkdir -p disk
run() {{ {sys.executable} -m clampdsl run spec.clamp --out disk --compile off \\
          >/dev/null 2>$1.err; echo $? >$1.rc; }}
{steps}
cp -r disk kept
"""
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
    subprocess.run(command, check=True, timeout=600)


def outcome(folder, name) -> tuple[int, str]:
    return int((folder / f"{name}.rc").read_text()), (folder / f"{name}.err").read_text()


def results(root) -> tuple[str, dict]:
    (directory,) = (root / "spec").iterdir()
    summary = json.loads((directory / "summary.json").read_text())
    metrics = (directory / "metrics.jsonl").read_text()
    return metrics, {k: v for k, v in summary.items() if k not in TIMINGS}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unbroken")
    (folder / "spec.clamp").write_text(SPEC)
    command = [sys.executable, "-m", "clampdsl", "run", "spec.clamp", "--out", "out"]
    subprocess.run([*command, "--compile", "off"], cwd=folder, check=True, capture_output=True)
    return results(folder / "out")


def assert_failed_cleanly(code: int, stderr: str, cause: str) -> None:
    assert code == 1, stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert cause in line and "disk/spec/" in line  # names the file it could not write
    assert "the same command resumes" in line


def assert_kept_checkpoints_whole(root) -> None:
    (directory,) = (root / "spec").iterdir()
    plan = compile_source(SPEC, str(directory / "spec.clamp"))
    for file in (directory / "checkpoints").glob("*.pt"):
        assert read(file, plan.content_hash())["step"] >= 0  # no torn file


@needs_namespaces
@pytest.mark.parametrize("size", ["8k", "96k", "240k"])
def test_a_full_disk_stops_cleanly_and_resumes(tmp_path, size, unbroken):
    (tmp_path / "spec.clamp").write_text(SPEC)
    in_small_filesystem(
        tmp_path,
        f"mount -t tmpfs -o size={size} tmpfs disk\n"
        "run full\n"
        "cp -r disk at_failure\n"
        "mount -o remount,size=16m disk\n"
        "run room\n",
    )
    assert_failed_cleanly(*outcome(tmp_path, "full"), "No space left on device")
    if (tmp_path / "at_failure" / "spec").is_dir():
        assert_kept_checkpoints_whole(tmp_path / "at_failure")
    code, stderr = outcome(tmp_path, "room")
    assert code == 0, stderr
    assert results(tmp_path / "kept") == unbroken


@needs_namespaces
def test_a_read_only_disk_stops_cleanly_and_resumes(tmp_path, unbroken):
    (tmp_path / "spec.clamp").write_text(SPEC)
    in_small_filesystem(
        tmp_path,
        "mount -t tmpfs -o size=16m tmpfs disk\n"
        "CLAMPDSL_KILL_AT=step@52 run killed\n"  # the first group done, the second begun
        "mount -o remount,ro disk\n"
        "run read_only\n"
        "mount -o remount,rw disk\n"
        "run writable\n",
    )
    assert outcome(tmp_path, "killed")[0] == 137  # SIGKILL, as the shell reports it
    assert_failed_cleanly(*outcome(tmp_path, "read_only"), "Read-only file system")
    code, stderr = outcome(tmp_path, "writable")
    assert code == 0, stderr
    assert results(tmp_path / "kept") == unbroken


def test_an_output_path_that_is_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "spec.clamp").write_text(SPEC)
    (tmp_path / "taken").write_text("not a folder")
    command = [sys.executable, "-m", "clampdsl", "run", "spec.clamp", "--out", "taken"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "error: taken" in done.stderr and "Not a directory" in done.stderr
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_a_write_whose_rename_fails_names_its_target_and_leaves_no_temporary(tmp_path):
    (tmp_path / "taken").mkdir()  # `export --to DIR`: a folder where the file would go
    with pytest.raises(OSError) as raised:
        write_atomically(tmp_path / "taken", b"rows")
    assert raised.value.filename == str(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
