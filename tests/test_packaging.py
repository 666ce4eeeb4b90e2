"""The wheel carries the grammar: an installed clampdsl validates specs from anywhere."""

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile

from conftest import ROOT


def test_installed_wheel_validates_from_another_directory(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("clampdsl-*.whl")
    assert "clampdsl/grammars/clamp.lark" in zipfile.ZipFile(wheel).namelist()

    environment = tmp_path / "env"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    _see_these_dependencies(python)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(ROOT / "specs", elsewhere / "specs")  # the main spec uses specs/lib
    code = (
        "import clampdsl, sys; assert 'env' in clampdsl.__file__, clampdsl.__file__; "
        "from clampdsl.cli import app; app(['validate', 'specs/three_subcircuits.clamp'])"
    )
    result = subprocess.run(
        [str(python), "-c", code], cwd=elsewhere, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "specs/three_subcircuits.clamp: ok" in result.stdout


def _see_these_dependencies(python) -> None:
    """Lets a new environment import the packages this interpreter has (lark, attrs, …).

    Not `system_site_packages`: from inside a virtualenv that is the base interpreter's
    packages, not the virtualenv's. A plain path in a `.pth` file adds a directory without
    running the `.pth` files inside it, so an editable clampdsl there stays out of sight."""
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with open(f"{site_packages}/dependencies.pth", "w") as pth:
        pth.write("\n".join(sorted(paths)) + "\n")
