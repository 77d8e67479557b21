"""The attention zoo: one file per module, each registered by name in :mod:`.registry`."""
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

__all__ = [
    "ATTENTION",
    "create_attention",
    "list_attention",
    "register_attention",
    "SELayer",
    "CBAM",
    "BAM",
    "DoubleAttention",
    "SRM",
    "GCModule",
    "SKLayer",
    "LCT",
    "GCT",
    "ECALayer",
    "TripletAttention",
    "GaussianContextTransformer",
    "CoordAtt",
    "SimAM",
    "WindowAttention2d",
    # the classic pytorch-attention names that differ from ours (README: "Switching from pytorch-attention")
    "CoordinateAttention",
    "simam_module",
]
