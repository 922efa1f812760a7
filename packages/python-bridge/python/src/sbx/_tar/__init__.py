"""Safe tar packing and unpacking on the local disk, as ``sb.fs.upload`` and ``download`` use them."""

from .limit import TarSizeLimit
from .names import TarEntryError, entry_parts
from .pack import PackResult, pack_tree
from .unpack import UnpackResult, unpack_tar

__all__ = ["TarSizeLimit", "TarEntryError", "entry_parts", "PackResult", "pack_tree", "UnpackResult", "unpack_tar"]
