"""The base of every backbone (:class:`ImageBackbone`) and the one input check it runs
(:func:`check_image_batch`): a (B, in_chans, H, W) batch of a size the model takes."""
from __future__ import annotations

import functools
from typing import Callable, Optional, Tuple

import torch
import torch.fx
import torch.nn as nn


def check_input_size(x: torch.Tensor, expected: Tuple[int, int], model: str) -> torch.Tensor:
    """Return ``x`` if its spatial size is ``expected`` (H, W), else ``ValueError`` naming both sizes.

    For models defined at one input size (token-mixing MLPs sized to the patch count, global filters
    sized to the grid); :func:`check_image_batch` calls it for them. Proxies pass through untouched.

    Example:
        >>> check_input_size(torch.zeros(1, 3, 224, 224), (224, 224), "MlpMixer").shape
        torch.Size([1, 3, 224, 224])
    """
    if isinstance(x, torch.fx.Proxy):
        return x
    if x.dim() != 4 or tuple(x.shape[2:]) != tuple(expected):
        raise ValueError(
            f"{model} is defined for {expected[0]}x{expected[1]} inputs only (its token mixing is sized to "
            f"that patch grid), got input of shape {tuple(x.shape)}; resize the input to "
            f"{expected[0]}x{expected[1]} or build the model with img_size set to your size"
        )
    return x


def describe_sizes(fixed_hw: Optional[Tuple[int, int]], multiple: int) -> str:
    """The input sizes a backbone takes, in words.

    Example:
        >>> describe_sizes((224, 224), 1), describe_sizes(None, 64)
        ('H = W = 224 only', 'H, W multiples of 64')
    """
    if fixed_hw is not None:
        return f"H = W = {fixed_hw[0]} only" if fixed_hw[0] == fixed_hw[1] else f"H x W = {fixed_hw[0]}x{fixed_hw[1]} only"
    return "any H, W large enough for its downsampling" if multiple == 1 else f"H, W multiples of {multiple}"


def check_image_batch(x: torch.Tensor, in_chans: int, model: str, fixed_hw: Optional[Tuple[int, int]] = None,
                      multiple: int = 1) -> torch.Tensor:
    """Return ``x`` if it is a (B, in_chans, H, W) batch of a size ``model`` takes, else one clear error
    saying what the model expects: a ``TypeError`` for a non-tensor, a ``ValueError`` for a wrong rank
    (a 3-D image gets the hint to add the batch axis), a wrong channel count or a size the model cannot
    take (``fixed_hw``: defined for that size only; ``multiple``: H and W must be multiples of it).

    Every backbone calls it once, from :class:`ImageBackbone`'s ``forward``; it is ``torch.fx.wrap``-ed,
    so a traced model keeps it as one call node that runs on the real tensors.

    Example:
        >>> check_image_batch(torch.zeros(2, 3, 32, 32), 3, "ResNet").shape
        torch.Size([2, 3, 32, 32])
        >>> check_image_batch(torch.zeros(3, 224, 224), 3, "MlpMixer", fixed_hw=(224, 224))
        Traceback (most recent call last):
        ...
        ValueError: MlpMixer expects a (B, 3, H, W) batch with H = W = 224 only, got a 3-D input of shape (3, 224, 224): it lacks the batch axis; use x.unsqueeze(0)
    """
    if isinstance(x, torch.fx.Proxy):
        return x
    expects = f"{model} expects a (B, {in_chans}, H, W) batch with {describe_sizes(fixed_hw, multiple)}"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{expects}, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() != 4:
        hint = ""
        if x.dim() == 3 and shape[0] == in_chans:
            hint = ": it lacks the batch axis; use x.unsqueeze(0)"
        raise ValueError(f"{expects}, got a {x.dim()}-D input of shape {shape}{hint}")
    if shape[1] != in_chans:
        raise ValueError(
            f"{expects}, got {shape[1]} channels (input of shape {shape}); build the model with in_chans={shape[1]}"
            + (" or pass channels first (B, C, H, W)" if shape[3] == in_chans else "")
        )
    if fixed_hw is not None:
        return check_input_size(x, fixed_hw, model)
    if shape[2] % multiple or shape[3] % multiple:
        raise ValueError(f"{expects}, got a {shape[2]}x{shape[3]} input (input of shape {shape})")
    return x


torch.fx.wrap("check_image_batch")  # traced graphs keep the check as one node, run on real tensors


def _checking_input(forward: Callable) -> Callable:
    @functools.wraps(forward)
    def forward_with_input_check(self: "ImageBackbone", x: torch.Tensor, *args, **kwargs):
        x = check_image_batch(x, self.in_chans, type(self).__name__, self.input_hw, self.input_multiple)
        return forward(self, x, *args, **kwargs)

    return forward_with_input_check


class ImageBackbone(nn.Module):
    """The base of every backbone: its ``forward(x)`` first checks ``x`` with :func:`check_image_batch`
    -- once, here, for every model -- against ``in_chans`` and the sizes the model takes (``input_hw``
    for models defined at one size, ``input_multiple`` for models that need H, W divisible by it).

    A subclass's own ``forward`` is wrapped when the class is defined (``__init_subclass__``), so model
    code stays plain; ``forward_features`` takes what ``forward`` takes and is not checked again.

    Example:
        >>> class Tiny(ImageBackbone):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.in_chans = 1
        ...     def forward(self, x):
        ...         return x.mean((2, 3))
        >>> Tiny()(torch.zeros(2, 1, 5, 5)).shape
        torch.Size([2, 1])
        >>> Tiny()(torch.zeros(2, 3, 5, 5))
        Traceback (most recent call last):
        ...
        ValueError: Tiny expects a (B, 1, H, W) batch with any H, W large enough for its downsampling, got 3 channels (input of shape (2, 3, 5, 5)); build the model with in_chans=3
    """

    in_chans: int = 3
    input_hw: Optional[Tuple[int, int]] = None
    input_multiple: int = 1

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            cls.forward = _checking_input(cls.__dict__["forward"])
