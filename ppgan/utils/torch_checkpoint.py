"""Read PyTorch ``.pth`` checkpoints into numpy arrays without importing torch.

Two on-disk layouts are understood:

* the zip format written by ``torch.save`` since PyTorch 1.6: ``<prefix>/data.pkl`` holds the
  object tree, ``<prefix>/data/<key>`` the raw bytes of each storage, and an optional
  ``<prefix>/byteorder`` record says which endianness those bytes use;
* the legacy format (PyTorch < 1.6, or ``_use_new_zipfile_serialization=False``): five
  consecutive pickles-and-blobs in one stream -- a magic number, a protocol version, a sys-info
  dict, the object tree, the list of storage keys -- followed, per key, by an int64 element count
  and the storage's little-endian bytes. The released Wav2Lip checkpoints use this layout.

Unlike ``torch.load`` the unpickler only resolves the handful of globals a checkpoint of tensors
needs, so loading an untrusted file cannot run arbitrary code. Tensors become numpy arrays with the
saved dtype, shape and strides; ``bfloat16`` (which numpy lacks) is widened to ``float32``.
"""
import codecs
import collections
import errno
import io
import logging
import os
import pickle
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import UserError, one_line

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "NotACheckpointError",
    "UnsupportedCheckpointError",
    "load_torch_checkpoint",
]

# Constants of torch/serialization.py's legacy writer.
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001


class CheckpointError(UserError, ValueError):
    """The file cannot be read as a PyTorch checkpoint; the message names the file."""


class NotACheckpointError(CheckpointError):
    """The file is not a PyTorch checkpoint at all (text, image, empty, ...)."""


class UnsupportedCheckpointError(CheckpointError):
    """A PyTorch file this reader refuses: tar format, TorchScript, or pickled Python objects."""


@dataclass(frozen=True)
class _StorageType:
    """What a ``torch.<X>Storage`` global stands for: the element dtype of its raw bytes."""

    name: str
    dtype: np.dtype  # little-endian element type as stored on disk
    is_bfloat16: bool = False


def _storage_types() -> Dict[str, _StorageType]:
    table = {
        "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
        "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
        "ByteStorage": "u1", "BoolStorage": "?", "ComplexFloatStorage": "<c8",
        "ComplexDoubleStorage": "<c16", "UntypedStorage": "u1",
    }
    types = {name: _StorageType(name, np.dtype(code)) for name, code in table.items()}
    # numpy has no bfloat16: keep the raw 16-bit patterns and widen them once the view is built.
    types["BFloat16Storage"] = _StorageType("BFloat16Storage", np.dtype("<u2"), is_bfloat16=True)
    return types


_STORAGE_TYPES = _storage_types()

# `torch.float32` & co. can appear as plain values (e.g. in AMP settings); map them to numpy.
_TORCH_DTYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "float32", "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "complex64": "complex64",
    "complex128": "complex128",
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store ``bytes`` as ``_codecs.encode(str, 'latin1')``; allow only that."""
    if encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _is_contiguous(size: Tuple[int, ...], stride: Tuple[int, ...]) -> bool:
    # Same rule as torch: strides of size-1 dimensions do not matter.
    expected = 1
    for n, s in zip(reversed(size), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's object tree, resolving only tensor-related globals.

    ``load_storage(key, storage_type, numel)`` supplies the 1-D numpy array behind a storage key;
    the two file formats differ only in where those bytes live. With ``load_storage=None`` the
    tree is only walked (tensors become None), which the legacy reader needs to learn which
    storages follow the pickle.
    """

    def __init__(self, file: BinaryIO, path: str,
                 load_storage: Optional[Callable[[str, _StorageType, int], np.ndarray]]):
        # utf-8 for Python-2 `str` objects, as torch.load does.
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._load_storage = load_storage
        self.storages_seen: Dict[str, Tuple[_StorageType, int]] = {}

    def _error(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self._path}: {message}")

    # -- globals -----------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        allowed = self._allowed_global(module, name)
        if allowed is None:
            hint = ""
            if module not in ("builtins", "__builtin__", "torch", "torch._utils"):
                hint = (" (was a whole model or another Python object saved instead of a"
                        " state_dict?)")
            raise UnsupportedCheckpointError(
                f"{self._path}: refusing to load Python object {module}.{name}; only tensors and "
                f"plain containers are allowed{hint}")
        return allowed

    def _allowed_global(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils":
            return {
                "_rebuild_tensor_v2": self._rebuild_tensor_v2,
                "_rebuild_tensor": self._rebuild_tensor,
                "_rebuild_parameter": self._rebuild_parameter,
                "_rebuild_parameter_with_state": self._rebuild_parameter_with_state,
            }.get(name)
        # Very old GPU checkpoints may name `torch.cuda.FloatStorage`; everything loads to CPU.
        if module in ("torch", "torch.cuda") and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        if module == "torch" and name in _TORCH_DTYPES:
            return np.dtype(_TORCH_DTYPES[name])
        if (module, name) == ("torch", "Size"):
            return tuple
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "complex"):
            return {"set": set, "frozenset": frozenset, "complex": complex}[name]
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        return None

    # -- storages ----------------------------------------------------------------------------
    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise self._error(f"unexpected persistent id {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise UnsupportedCheckpointError(
                f"{self._path}: contains a pickled nn.Module; save and convert its state_dict "
                "instead")
        if kind != "storage" or len(pid) not in (5, 6):
            raise self._error(f"unexpected persistent id of kind {kind!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise self._error(f"unknown storage type {storage_type!r}")
        self.storages_seen.setdefault(str(key), (storage_type, int(numel)))
        if self._load_storage is None:
            return storage_type, None
        storage = self._load_storage(str(key), storage_type, int(numel))
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return storage_type, storage
        # Pre-1.0 PyTorch could save a storage that is a window into another one.
        _view_key, offset, view_numel = view
        if offset < 0 or view_numel < 0 or offset + view_numel > storage.size:
            raise self._error(f"storage view {view!r} lies outside storage {key!r}")
        return storage_type, storage[offset:offset + view_numel]

    # -- tensors -----------------------------------------------------------------------------
    def _rebuild_tensor(self, storage: Any, storage_offset: int, size: Sequence[int],
                        stride: Sequence[int]) -> Optional[np.ndarray]:
        if not (isinstance(storage, tuple) and len(storage) == 2
                and isinstance(storage[0], _StorageType)):
            raise self._error("tensor refers to something that is not a storage")
        storage_type, data = storage
        if data is None:  # walking the tree only
            return None
        size, stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)
        if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride):
            raise self._error(f"invalid tensor geometry size={size} stride={stride}")
        array = self._strided_view(data, int(storage_offset), size, stride)
        if storage_type.is_bfloat16:
            # bfloat16 is the upper half of a float32: shift the bits back into place.
            array = np.asarray(array.astype(np.uint32) << 16).view(np.float32)
        return array

    def _strided_view(self, data: np.ndarray, offset: int, size: Tuple[int, ...],
                      stride: Tuple[int, ...]) -> np.ndarray:
        numel = int(np.prod(size, dtype=np.int64))
        if numel == 0:
            return np.empty(size, dtype=data.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        # as_strided does no bounds checking, so a corrupt file could otherwise read stray memory.
        if offset < 0 or last >= data.size:
            raise self._error(
                f"tensor (offset {offset}, size {size}, stride {stride}) overruns its storage "
                f"of {data.size} elements")
        if _is_contiguous(size, stride):
            # A plain view: tensors sharing a storage keep sharing memory, as in torch.
            return data[offset:offset + numel].reshape(size)
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[offset:], shape=size, strides=[s * itemsize for s in stride], writeable=False)
        return np.array(view)  # an owned, C-contiguous copy of the transposed/expanded view

    def _rebuild_tensor_v2(self, storage: Any, storage_offset: int, size: Sequence[int],
                           stride: Sequence[int], requires_grad: Any = False,
                           backward_hooks: Any = None, metadata: Any = None
                           ) -> Optional[np.ndarray]:
        return self._rebuild_tensor(storage, storage_offset, size, stride)

    def _rebuild_parameter(self, data: Any, requires_grad: Any = False,
                           backward_hooks: Any = None) -> Any:
        return data

    def _rebuild_parameter_with_state(self, data: Any, requires_grad: Any = False,
                                      backward_hooks: Any = None, state: Any = None) -> Any:
        return data


def _read_array(stream: BinaryIO, dtype: np.dtype, numel: int) -> np.ndarray:
    """Reads exactly ``numel`` elements into a fresh writable array, or returns fewer on EOF."""
    array = np.empty(numel, dtype=dtype)
    buffer = memoryview(array.view(np.uint8))
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])
        if not count:
            return array[:filled // dtype.itemsize]
        filled += count
    return array


def _to_native(array: np.ndarray, big_endian: bool) -> np.ndarray:
    if big_endian and array.dtype.itemsize > 1:
        array = array.view(array.dtype.newbyteorder(">"))
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _single_line(error: BaseException) -> str:
    return one_line(f"{type(error).__name__}: {error}")


# -- zip format --------------------------------------------------------------------------------
def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if not pickles:
            raise NotACheckpointError(
                f"{path}: zip archive without a data.pkl, not a PyTorch checkpoint")
        prefix = pickles[0][:-len("data.pkl")]
        if f"{prefix}constants.pkl" in names or any(n.startswith(f"{prefix}code/") for n in names):
            raise UnsupportedCheckpointError(
                f"{path}: is a TorchScript archive (torch.jit.save), not a checkpoint of tensors")
        big_endian = False
        if f"{prefix}byteorder" in names:
            order = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise CheckpointError(f"{path}: unknown byte order {order!r}")
            big_endian = order == "big"

        cache: Dict[str, np.ndarray] = {}

        def load_storage(key: str, storage_type: _StorageType, numel: int) -> np.ndarray:
            if key not in cache:
                record = f"{prefix}data/{key}"
                try:
                    info = archive.getinfo(record)
                except KeyError:
                    raise CheckpointError(f"{path}: storage record {record} is missing") from None
                if info.file_size != numel * storage_type.dtype.itemsize:
                    raise CheckpointError(
                        f"{path}: storage {key} has {info.file_size} bytes, expected "
                        f"{numel} x {storage_type.dtype.itemsize}")
                with archive.open(record) as stream:
                    data = _read_array(stream, storage_type.dtype, numel)
                    cache[key] = _to_native(data, big_endian)
            return cache[key]

        with archive.open(pickles[0]) as stream:
            return _RestrictedUnpickler(io.BytesIO(stream.read()), path, load_storage).load()


# -- legacy format -----------------------------------------------------------------------------
class _HeaderUnpickler(pickle.Unpickler):
    """For the legacy header pickles (ints, a dict and a list of strings): no globals at all."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} in a legacy header")


def _is_legacy(path: str) -> bool:
    # The magic-number pickle is 15 bytes. Unpickling only a short prefix from memory means an
    # arbitrary file cannot make the unpickler chase a huge length field.
    with open(path, "rb") as f:
        head = f.read(64)
    try:
        return _HeaderUnpickler(io.BytesIO(head)).load() == _LEGACY_MAGIC_NUMBER
    except Exception:  # any garbage simply means "not this format"
        return False


def _load_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        header = _HeaderUnpickler(f)
        if header.load() != _LEGACY_MAGIC_NUMBER:
            raise NotACheckpointError(f"{path}: not a PyTorch checkpoint")
        version = header.load()
        if version != _LEGACY_PROTOCOL_VERSION:
            raise UnsupportedCheckpointError(
                f"{path}: unsupported legacy protocol version {version!r}")
        sys_info = header.load()
        big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian", True) is False

        main_start = f.tell()
        # The storages' bytes come after the pickle that references them, so pass 1 only walks
        # the tree to learn their dtypes and lengths. Reading straight from the file leaves it
        # positioned just after the pickle.
        walker = _RestrictedUnpickler(f, path, load_storage=None)
        walker.load()
        seen = walker.storages_seen
        main_end = f.tell()
        keys = _HeaderUnpickler(f).load()
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError(f"{path}: malformed storage key list")

        storages: Dict[str, np.ndarray] = {}
        for key in keys:
            if key not in seen:
                raise CheckpointError(f"{path}: data for unreferenced storage {key!r}")
            storage_type, expected = seen[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != expected:
                raise CheckpointError(
                    f"{path}: storage {key} holds {numel} elements, expected {expected}")
            data = _read_array(f, storage_type.dtype, numel)
            if data.size != numel:
                raise CheckpointError(f"{path}: file is truncated inside storage {key}")
            storages[key] = _to_native(data, big_endian)
        missing = set(seen) - set(storages)
        if missing:
            raise CheckpointError(f"{path}: no data for storage(s) {sorted(missing)[:3]}")

        f.seek(main_start)
        main_pickle = f.read(main_end - main_start)

    def load_storage(key: str, storage_type: _StorageType, numel: int) -> np.ndarray:
        return storages[key]

    # Pass 2: the same tree again, now with the real storages behind every tensor.
    return _RestrictedUnpickler(io.BytesIO(main_pickle), path, load_storage).load()


# -- entry point -------------------------------------------------------------------------------
def load_torch_checkpoint(path: "str | os.PathLike[str]") -> Any:
    """Loads a ``torch.save`` file as the same nested structure with numpy arrays for tensors.

    Raises ``FileNotFoundError`` for a missing file and a ``CheckpointError`` (a ``ValueError``)
    with a one-line message naming the file for anything that is not a readable checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        if os.path.exists(path):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    try:
        if zipfile.is_zipfile(path):
            logger.debug("%s: zip-format checkpoint", path)
            return _load_zip(path)
        if _is_legacy(path):
            logger.debug("%s: legacy-format checkpoint", path)
            return _load_legacy(path)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, struct.error, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path}: corrupt PyTorch checkpoint ({_single_line(error)})") from error
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise CheckpointError(f"{path}: damaged or truncated zip archive")
    if tarfile.is_tarfile(path):
        raise UnsupportedCheckpointError(
            f"{path}: uses the pre-0.4 tar checkpoint format, which is not supported; "
            "re-save it with a newer PyTorch")
    raise NotACheckpointError(f"{path}: not a PyTorch checkpoint (neither zip nor legacy format)")
