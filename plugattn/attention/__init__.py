"""The attention zoo: one file per module, each registered by name in :mod:`.registry`."""
from .._names import ATTENTION_NAMES
from .registry import ATTENTION, create_attention, list_attention, register_attention
from .se import SELayer
from .cbam import CBAM
from .bam import BAM
from .double_attention import DoubleAttention
from .srm import SRM
from .gc import GCModule
from .sk import SKLayer
from .lct import LCT
from .gct import GCT
from .eca import ECALayer
from .triplet import TripletAttention
from .gaussian_context import GaussianContextTransformer
from .coord import CoordAtt, CoordinateAttention
from .simam import SimAM, simam_module
from .window import WindowAttention2d

__all__ = list(ATTENTION_NAMES)  # plugattn/_names.py, shared with plugattn/__init__.py
