"""Read a PyTorch legacy (non-zip) checkpoint into numpy arrays, without torch.

The pretrained backbone ships only as a ``.pth`` file; torch is a large dependency we do not
want, and ``torch.load`` would run arbitrary pickle code. A whitelisting unpickler gives us the
tensors and nothing else.
"""

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# Written by torch.save as the first pickle of every legacy checkpoint.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointFormatError(ValueError):
    """The file is not a (supported) legacy PyTorch checkpoint."""


class RefusedGlobalError(pickle.UnpicklingError):
    """The pickle asked for a global outside the whitelist; nothing was called."""


class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: only its element dtype matters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _TensorRef:
    """A tensor whose storage bytes come after the pickle; materialised once they are read."""

    def __init__(
        self,
        storage: tuple[str, _StorageType],
        offset: int,
        size: tuple[int, ...],
        stride: tuple[int, ...],
    ) -> None:
        self.storage_key = storage[0]
        self.dtype = storage[1].dtype
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)


def _rebuild_tensor_v2(
    storage: tuple[str, _StorageType],
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data: _TensorRef, requires_grad: bool, backward_hooks: Any) -> _TensorRef:
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only whitelisted globals, so a crafted file cannot call anything else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobalError(
                f"refused global {module}.{name}: not allowed in a tensor checkpoint"
            ) from None

    def persistent_load(self, pid: Any) -> tuple[str, _StorageType]:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r}")
        return key, storage_type


def _unpickle(f: BinaryIO) -> Any:
    return _RestrictedUnpickler(f).load()


def _read_storage(f: BinaryIO, dtype: np.dtype) -> np.ndarray:
    header = f.read(8)
    numel = int.from_bytes(header, "little", signed=True) if len(header) == 8 else -1
    data = f.read(numel * dtype.itemsize) if numel >= 0 else b""
    if numel < 0 or len(data) != numel * dtype.itemsize:
        raise CheckpointFormatError("truncated checkpoint: storage data ends early")
    return np.frombuffer(data, dtype=dtype)


def _materialise(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    itemsize = storage.dtype.itemsize
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    negative = ref.offset < 0 or any(s < 0 for s in ref.stride)
    if negative or (all(ref.size) and last >= storage.size):
        raise CheckpointFormatError(f"tensor view exceeds its storage {ref.storage_key}")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :],
        shape=ref.size,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view, order="C")  # an owned, writeable copy, not a view of the file buffer


def load_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load a legacy ``torch.save`` state dict as ``{name: contiguous numpy array}``.

    Raises ``RefusedGlobalError`` (a ``pickle.UnpicklingError``) for any global outside the tensor
    whitelist and ``CheckpointFormatError`` (a ``ValueError``) for a file that is not a legacy
    PyTorch checkpoint.
    """
    with open(path, "rb") as f:
        try:
            magic = _unpickle(f)
        except RefusedGlobalError:
            raise
        except Exception as exc:
            raise CheckpointFormatError(f"{path} is not a legacy PyTorch checkpoint") from exc
        if magic != LEGACY_MAGIC_NUMBER:
            raise CheckpointFormatError(
                f"{path} is not a legacy PyTorch checkpoint (wrong magic number)"
            )
        if _unpickle(f) != LEGACY_PROTOCOL_VERSION:
            raise CheckpointFormatError(f"{path}: unsupported PyTorch legacy protocol version")
        sys_info = _unpickle(f)
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian")):
            raise CheckpointFormatError(f"{path}: only little-endian checkpoints are supported")
        state = _unpickle(f)
        storage_keys = _unpickle(f)
        if not isinstance(state, dict):
            raise CheckpointFormatError(f"{path}: the checkpoint does not hold a state dict")
        refs = {k: v for k, v in state.items() if isinstance(v, _TensorRef)}
        if len(refs) != len(state):
            raise CheckpointFormatError(f"{path}: state dict holds non-tensor values")
        dtypes = {ref.storage_key: ref.dtype for ref in refs.values()}
        if set(storage_keys) != set(dtypes):
            raise CheckpointFormatError(f"{path}: storage list does not match the tensors")
        storages = {key: _read_storage(f, dtypes[key]) for key in storage_keys}
    return {name: _materialise(ref, storages[ref.storage_key]) for name, ref in refs.items()}
