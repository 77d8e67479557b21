"""Pieces shared by the backbones of every family, one concept per module; every model imports shared
pieces from here only (``from ..layers import Mlp``). Not model files: the backbone auto-import reads
only the family folders (``cnn/``, ``vit/``, ``mlp/``).
"""
from .activations import ACTIVATIONS, ActSpec, QuickGELU, get_act
from .attention import Attention, Block
from .checks import (
    check_block_args, check_common_args, check_heads, check_patch_grid_args, check_per_stage, check_probability,
    check_rate,
)
from .conv import ConvNormAct, conv1x1, conv3x3, make_divisible
from .drop import DropPath, drop_path, linear_drop_path_rates
from .image_backbone import ImageBackbone, check_image_batch, check_input_size, describe_sizes
from .init import (
    LINEAR_INITS, init_kaiming_fan_out_, init_mixer_weights, init_mobile_weights, init_trunc_normal_, lecun_normal_,
)
from .mbconv import MBConv, StochasticResidual
from .mlp import ConvMlp, Mlp
from .mobile import ConvResidual, PooledClassifierNet, make_classifier
from .norms import LayerNorm2d, NormLayer, Permute
from .patch_embed import LAYOUTS, PatchEmbed
from .patch_tokens import PatchTokenModel
from .permutator import PermutatorBlock, reweight_branches
from .pooling import Pooling
from .pos_embed import resize_pos_embed

__all__ = [
    "ACTIVATIONS", "ActSpec", "QuickGELU", "get_act",
    "Attention", "Block",
    "check_block_args", "check_common_args", "check_heads", "check_patch_grid_args", "check_per_stage",
    "check_probability", "check_rate",
    "ConvNormAct", "conv1x1", "conv3x3", "make_divisible",
    "DropPath", "drop_path", "linear_drop_path_rates",
    "ImageBackbone", "check_image_batch", "check_input_size", "describe_sizes",
    "LINEAR_INITS", "init_kaiming_fan_out_", "init_mixer_weights", "init_mobile_weights", "init_trunc_normal_",
    "lecun_normal_",
    "MBConv", "StochasticResidual",
    "ConvMlp", "Mlp",
    "ConvResidual", "PooledClassifierNet", "make_classifier",
    "LayerNorm2d", "NormLayer", "Permute",
    "LAYOUTS", "PatchEmbed",
    "PatchTokenModel",
    "PermutatorBlock", "reweight_branches",
    "Pooling",
    "resize_pos_embed",
]
