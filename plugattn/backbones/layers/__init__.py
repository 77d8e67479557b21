"""Pieces shared by the backbones of every family: the input check (``ImageBackbone``), conv-norm-act,
stochastic depth, activations, initialisers, MBConv and the mobile networks' common parts."""
from .core import (  # noqa: F401
    ACTIVATIONS, ConvNormAct, DropPath, ImageBackbone, QuickGELU, check_image_batch, check_input_size, check_per_stage,
    drop_path, get_act, init_kaiming_fan_out_, init_trunc_normal_, lecun_normal_, linear_drop_path_rates, make_divisible,
)
