"""Features: `file("PATH", key=…)` read in the reference's layout and splits, found and
checked at compile time (inside the spec's tree, of the right shape, no pickles), its bytes
in the plan's hash; the synthetic stand-ins, the default one unchanged."""

import hashlib
import io
import subprocess
import sys

import numpy
import pytest
import torch
from conftest import ROOT, clampdsl, spec

from clampdsl import compile_file, run
from clampdsl.compile.tree import ROOT_MARKER
from clampdsl.lang.diagnostics import SpecError
from clampdsl.tasks.fewshot import FewShotTask

SHAPE = (12, 5, 8)  # classes × exemplars × dim, as the reference's (1623, 5, 512)
TASK = 'task classes=6 new_classes=4 features=file("{path}"{key})'
H5_KEY = "resnet18/224/feat"


def features_spec(folder, path="data/features.npy", key="", name="spec.clamp"):
    """A spec in `folder` whose task reads features from `path`."""
    key = f', key="{key}"' if key else ""
    text = spec(TASK.format(path=path, key=key) + "\ntrain steps=20 batch=8\nexperiment base\n")
    file = folder / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


def saved(folder, array, name="data/features.npy"):
    file = folder / name
    file.parent.mkdir(parents=True, exist_ok=True)
    numpy.save(file, array)
    return file


def features(seed=0, shape=SHAPE):
    return numpy.random.default_rng(seed).random(shape, dtype=numpy.float32)


def error_of(file) -> str:
    with pytest.raises(SpecError) as raised:
        compile_file(file)
    return str(raised.value)


def test_an_npy_file_gives_the_references_class_and_exemplar_splits(tmp_path):
    array = features()
    data = saved(tmp_path, array)
    task = compile_file(features_spec(tmp_path)).runs[0].task
    stored = task.features.stored
    assert (task.features.kind, task.features.dim) == ("file", 8)
    assert (stored.classes, stored.exemplars) == (12, 5)
    assert stored.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    loaded = FewShotTask(task)
    # training classes are the file's first 6, new classes its last 4 (classes 8-11)
    expected = numpy.concatenate([array[:6], array[8:]])
    assert torch.equal(loaded.features, torch.from_numpy(expected))
    assert torch.equal(loaded.table, torch.from_numpy(expected[:, 0]))  # exemplar 0


def test_the_plan_shows_the_file_its_shape_and_its_sha256(tmp_path):
    data = saved(tmp_path, features())
    shown = clampdsl("plan", features_spec(tmp_path)).stdout
    sha256 = hashlib.sha256(data.read_bytes()).hexdigest()
    assert f'features: file("{data}"): 12 classes × 5 exemplars × 8, sha256 {sha256[:12]}' in shown


def test_the_plans_hash_follows_the_files_bytes_not_its_place(tmp_path):
    saved(tmp_path, features(0))
    first = compile_file(features_spec(tmp_path)).content_hash()
    saved(tmp_path, features(1))
    assert compile_file(features_spec(tmp_path)).content_hash() != first
    saved(tmp_path, features(0), "elsewhere/features.npy")
    moved = features_spec(tmp_path, "elsewhere/features.npy")
    assert compile_file(moved).content_hash() == first


def test_a_file_changed_after_compiling_is_refused_by_the_runtime(tmp_path):
    saved(tmp_path, features(0))
    task = compile_file(features_spec(tmp_path)).runs[0].task
    saved(tmp_path, features(1))
    with pytest.raises(RuntimeError, match="changed since its spec was compiled"):
        FewShotTask(task)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside.npy", "leads out of the top file's folder"),
        ("data/missing.npy", "no features file 'data/missing.npy'"),
        ("/etc/features.npy", "a features path is relative to the spec file"),
        ("data/features.txt", "features are read from .npy, .h5, .hdf5 files"),
    ],
)
def test_paths_outside_the_tree_or_missing_are_errors_at_the_path(tmp_path, path, message):
    saved(tmp_path / "specs", features())
    (tmp_path / "outside.npy").write_bytes(b"")
    (tmp_path / "specs" / "data" / "features.txt").write_text("1 2 3")
    file = features_spec(tmp_path / "specs", path)
    text = error_of(file)
    assert f"{file}:2:44: error: " in text and message in text  # at the path's string


def test_a_marked_tree_lets_a_spec_read_features_above_its_folder(tmp_path):
    saved(tmp_path, features())
    (tmp_path / ROOT_MARKER).write_text("")
    file = features_spec(tmp_path, "../data/features.npy", name="paper/spec.clamp")
    assert compile_file(file).runs[0].task.features.stored.classes == 12


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (numpy.zeros((12, 8), numpy.float32), "shape (12, 8): features are class × exemplar"),
        (numpy.zeros((12, 5, 0), numpy.float32), "shape (12, 5, 0)"),
        (numpy.zeros(SHAPE, numpy.int64), "its elements are '<i8', not floating-point"),
        (numpy.array([[[{"a": 1}]]], dtype=object), "Python objects, which only a pickle"),
    ],
    ids=["2-d", "no dims", "integers", "pickle"],
)
def test_wrong_shapes_types_and_pickles_are_errors(tmp_path, array, message):
    file = tmp_path / "data" / "features.npy"
    file.parent.mkdir()
    numpy.save(file, array, allow_pickle=True)
    assert message in error_of(features_spec(tmp_path))


def test_a_file_that_is_not_npy_is_an_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "features.npy").write_bytes(b"\x80\x04not an array")
    assert "not an .npy file" in error_of(features_spec(tmp_path))


def npy_bytes(array, shape=None) -> bytes:
    """An .npy file of `array`, its header naming `shape` (default: the array's)."""
    buffer = io.BytesIO()
    header = numpy.lib.format.header_data_from_array_1_0(array)
    numpy.lib.format.write_array_header_1_0(buffer, header | {"shape": shape or array.shape})
    buffer.write(array.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (npy_bytes(features())[:-100], "header names 480 numbers of 4 bytes, but it holds 1,820"),
        (npy_bytes(features()) + bytes(100), "but it holds 2,020 bytes of data"),
        (npy_bytes(features(), (12.0, 5, 8)), "shape (12.0, 5, 8) is not one of whole numbers"),
        (npy_bytes(features(), (10**20, 5, 8)), "but it holds 1,920 bytes of data"),
    ],
    ids=["truncated", "padded", "float", "huge"],
)
def test_an_npy_header_that_is_not_its_file_is_an_error_at_compile_time(tmp_path, data, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "features.npy").write_bytes(data)
    assert message in error_of(features_spec(tmp_path))


def test_too_few_classes_in_the_file_is_an_error(tmp_path):
    saved(tmp_path, features(shape=(9, 5, 8)))
    text = error_of(features_spec(tmp_path))
    assert "classes=6 and new_classes=4 take 10 classes; the features file holds 9" in text


def test_a_key_names_a_dataset_of_an_h5_file_only(tmp_path):
    saved(tmp_path, features())
    assert "an .npy file holds one array" in error_of(features_spec(tmp_path, key=H5_KEY))


def test_an_h5_dataset_is_read_under_its_key(tmp_path):
    h5py = pytest.importorskip("h5py")
    array = features()
    (tmp_path / "data").mkdir()
    with h5py.File(tmp_path / "data" / "features.h5", "w") as file:
        file[H5_KEY] = array
    task = compile_file(features_spec(tmp_path, "data/features.h5", H5_KEY)).runs[0].task
    assert task.features.stored.key == H5_KEY
    expected = numpy.concatenate([array[:6], array[8:]])
    assert torch.equal(FewShotTask(task).features, torch.from_numpy(expected))
    assert "no dataset 'other'" in error_of(features_spec(tmp_path, "data/features.h5", "other"))


def test_an_h5_dataset_whose_bytes_lie_in_other_files_is_refused(tmp_path):
    """A link into another file, raw storage in files of its own, a virtual dataset of
    another file's: each could read outside the spec's tree, and outside the file's hash."""
    h5py = pytest.importorskip("h5py")
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as file:
        file["feat"] = features()
    raw = tmp_path / "raw.bin"
    raw.write_bytes(features().tobytes())
    (tmp_path / "specs" / "data").mkdir(parents=True)
    with h5py.File(tmp_path / "specs" / "data" / "features.h5", "w") as file:
        file["linked"] = h5py.ExternalLink(str(outside), "/feat")
        file["group"] = h5py.ExternalLink(str(outside), "/")
        file["raw"] = h5py.ExternalLink(str(outside), "/")
        file.create_dataset("stored", SHAPE, "f4", external=[(str(raw), 0, raw.stat().st_size)])
        layout = h5py.VirtualLayout(SHAPE, "f4")
        layout[:] = h5py.VirtualSource(str(outside), "feat", SHAPE)
        file.create_virtual_dataset("virtual", layout)
        file["soft"] = h5py.SoftLink("/linked")
    for key, message in [
        ("linked", "'linked' is a link"),
        ("group/feat", "'group' is a link"),
        ("soft", "'soft' is a link"),
        ("stored", "keeps its data in other files"),
        ("virtual", "keeps its data in other files"),
    ]:
        spec_file = features_spec(tmp_path / "specs", "data/features.h5", key)
        assert message in error_of(spec_file), key


def test_without_h5py_an_h5_file_says_what_to_install(tmp_path):
    try:
        import h5py  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("h5py is installed")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "features.h5").write_bytes(b"")
    text = error_of(features_spec(tmp_path, "data/features.h5", H5_KEY))
    assert "pip install 'clampdsl[h5]'" in text


def test_validating_a_file_spec_imports_neither_torch_nor_numpy(tmp_path):
    saved(tmp_path, features())
    file = features_spec(tmp_path)
    code = (
        "import sys; from clampdsl import compile_file; "
        f"compile_file({str(file)!r}); "
        "print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_a_file_spec_trains(tmp_path):
    saved(tmp_path, features())
    result = run(features_spec(tmp_path), tmp_path / "runs", "cpu", compile="off")
    assert result.summaries[0].final["train.loss"] > 0


def test_the_default_stand_in_is_unchanged():
    """The features of the main spec's task, as the stand-in drew them before it had other
    kinds: bit for bit."""
    task = compile_file(ROOT / "specs" / "three_subcircuits.clamp").runs[0].task
    drawn = FewShotTask(task).features
    assert hashlib.sha256(drawn.numpy().tobytes()).hexdigest() == (
        "6e7e4a5b00638435de1f85533ccd9ca71949b595b819ac2d4e2c456f1830df02"
    )


def test_relu_lowrank_features_are_non_negative_low_rank_and_of_the_norm_asked(tmp_path):
    file = tmp_path / "spec.clamp"
    stand_in = "synthetic(kind=relu-lowrank, dim=64, correlation=0.5, rank=4, norm=20)"
    file.write_text(spec(f"task features={stand_in}\nexperiment base\n"))
    task = compile_file(file).runs[0].task
    drawn = FewShotTask(task).features  # [150, 5, 64]
    assert drawn.min() >= 0
    assert drawn[:, 0].norm(dim=-1).mean() == pytest.approx(20, rel=1e-5)
    # before the ReLU the classes differ in 4 dimensions: after it, most of their spread
    # still lies in a few
    spread = torch.linalg.svdvals(drawn[:, 0] - drawn[:, 0].mean(0))
    assert (spread[:8] ** 2).sum() / (spread**2).sum() > 0.9


@pytest.mark.parametrize(
    ("stand_in", "message"),
    [
        ("synthetic(rank=4)", "rank is an option of kind=relu-lowrank features"),
        ("synthetic(kind=relu-lowrank, scale=2)", "scale is an option of kind=gaussian"),
        ("synthetic(kind=relu-lowrank, dim=8, rank=16)", "rank=16 is more than dim=8"),
        ("synthetic(kind=relu-lowrank, dim=8)", "rank=16 is more than dim=8"),
        ("synthetic(kind=uniform)", "kind cannot be 'uniform'"),
        ('synthetic("a.npy")', "synthetic(...) takes options only"),
        ('file(key="x")', "file(...) takes the path of the features file first"),
    ],
)
def test_options_that_do_not_fit_the_features_are_errors(tmp_path, stand_in, message):
    file = tmp_path / "spec.clamp"
    file.write_text(spec(f"task features={stand_in}\nexperiment base\n"))
    assert message in error_of(file)
