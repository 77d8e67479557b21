"""Small models for the injection tests, at module level so pickle, torch.save and spawned DDP
workers can import them."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    """A basic residual block written differently from torchvision's: the shortcut is computed
    first, added with ``torch.add(shortcut, out)`` (skip operand first)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm_a = nn.BatchNorm2d(out_channels)
        self.conv_b = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm_b = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_b(self.conv_b(F.relu(self.norm_a(self.conv_a(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x)
        return F.relu(torch.add(skip, self.branch(x)))


class PlainBlock(nn.Module):
    """Conv-BN-ReLU, no residual addition."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class TinyResNet(nn.Module):
    """stem (8) -> block1 (8) -> block2 (16, stride 2) -> pool -> fc; has an unused module."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = PlainBlock(3, 8)
        self.block1 = ResidualBlock(8, 8)
        self.block2 = ResidualBlock(8, 16, stride=2)
        self.fc = nn.Linear(16, num_classes)
        self.unused = nn.Linear(2, 2)  # never called: its keys must survive injection
        self.register_buffer("scale", torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)) * self.scale)


class ShapeGatedBlock(nn.Module):
    """A block with Python control flow on the input's shape: not symbolically traceable."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 8:  # data-dependent control flow
            x = F.avg_pool2d(x, 2)
        return self.conv(x)


class GatedSubmoduleNet(nn.Module):
    """Traceable except for ``gate`` (a ShapeGatedBlock): fx tracing keeps ``gate`` as a leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = PlainBlock(3, 8)
        self.gate = ShapeGatedBlock(8)
        self.block = ResidualBlock(8, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.gate(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))


class DataDependentNet(nn.Module):
    """Control flow on tensor values in the root's forward: only the hook path can inject."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = PlainBlock(3, 8)
        self.block = ResidualBlock(8, 8)
        self.extra = PlainBlock(8, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if x.mean() > -1e9:  # always true, but a Python bool of a tensor value
            x = self.block(x)
        x = self.extra(x)
        return self.fc(x.mean(dim=(2, 3)))


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): the shortcut reads the normalized input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm_a = nn.BatchNorm2d(in_channels)
        self.conv_a = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.norm_b = nn.BatchNorm2d(out_channels)
        self.conv_b = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(x))
        shortcut = self.shortcut(out)
        out = self.conv_a(out)
        out = self.conv_b(F.relu(self.norm_b(out)))
        return out + shortcut


class TupleBlock(nn.Module):
    """Returns a tuple: not a feature-map site."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor):
        y = self.conv(x)
        return y, y


class TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = TupleBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.pair(x)
        return a + b


# ---- hand-written hosts of the identity-equivalence catalogue ---------------------------------

import collections  # noqa: E402

HostOutput = collections.namedtuple("HostOutput", ["logits", "features"])


def _collect_feature(module: nn.Module, args, output) -> None:
    """A host's own forward hook (registered in __init__): keeps the stem output."""
    module.collected = output


class HookedHost(nn.Module):
    """Registers its own forward hook and returns a namedtuple holding a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = PlainBlock(3, 8)
        self.block = ResidualBlock(8, 8)
        self.fc = nn.Linear(8, 4)
        self.stem.register_forward_hook(_collect_feature)

    def forward(self, x: torch.Tensor) -> HostOutput:
        y = self.block(self.stem(x))
        return HostOutput(self.fc(y.mean(dim=(2, 3))), {"stem": self.stem.collected, "block": y})


class KeywordHost(nn.Module):
    """Calls its blocks with keyword arguments only: ``self.block(x=x)``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = PlainBlock(3, 8)
        self.block = ResidualBlock(8, 8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.block(x=self.stem(x=x)))


class ArgsKwargsHost(nn.Module):
    """``forward(self, x, *args, **kwargs)``, as ultralytics' models: not symbolically traceable."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = PlainBlock(3, 8)
        self.block = ResidualBlock(8, 8)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> list:
        scale = kwargs.get("scale", 1.0)
        y = self.block(self.stem(x)) * scale
        return [y, *args]


class RarelyTakenHost(nn.Module):
    """Data-dependent control flow: ``rare`` runs only when the input's mean exceeds a threshold."""

    def __init__(self, threshold: float = 10.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.stem = PlainBlock(3, 8)
        self.common = ResidualBlock(8, 8)
        self.rare = ResidualBlock(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if x.mean() > self.threshold:
            return self.rare(x)
        return self.common(x)


class NestedResidual(nn.Module):
    """A residual block whose branch is itself two residual blocks."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.inner = nn.Sequential(ResidualBlock(channels, channels), ResidualBlock(channels, channels))
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(self.inner(x))


class NestedHost(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = PlainBlock(3, 8)
        self.stage = NestedResidual(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.stem(x))


class SharedActBlock(nn.Module):
    """Conv-BN, then an activation module shared with other blocks."""

    def __init__(self, channels: int, act: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.norm = nn.BatchNorm2d(channels)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.norm(self.conv(x)))


class SharedModuleHost(nn.Module):
    """One ``nn.ReLU`` instance used by two blocks (registered under both)."""

    def __init__(self) -> None:
        super().__init__()
        act = nn.ReLU()
        self.stem = PlainBlock(3, 8)
        self.first = SharedActBlock(8, act)
        self.second = SharedActBlock(8, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(self.stem(x)))


def rank_input(rank: int, size: int) -> torch.Tensor:
    """The batch rank ``rank`` trains on in the distributed tests."""
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(100 + rank))


def distributed_worker(rank: int, world_size: int, workdir: str) -> None:
    """One rank (gloo, CPU) of the distributed survival test, in one process group:

    * DDP: the pickled injected ``ddp.pt``, one training step; saves the (averaged) gradients;
    * FSDP2: ``fully_shard`` every block and the root of the pickled injected ``fsdp.pt`` (a
      ResNet-18), one training step; saves the full (averaged) gradients.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{workdir}/store", rank=rank, world_size=world_size)
    try:
        model = torch.load(f"{workdir}/ddp.pt", weights_only=False)
        ddp = DistributedDataParallel(model, find_unused_parameters=True)  # TinyResNet.unused
        ddp(rank_input(rank, 16)).square().mean().backward()
        ddp_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

        model = torch.load(f"{workdir}/fsdp.pt", weights_only=False)
        mesh = init_device_mesh("cpu", (world_size,))
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            for block in getattr(model, stage):
                fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model(rank_input(rank, 32)).square().mean().backward()
        fsdp_grads = {name: p.grad.full_tensor() for name, p in model.named_parameters() if p.grad is not None}
        torch.save({"ddp": ddp_grads, "fsdp": fsdp_grads}, f"{workdir}/grads{rank}.pt")
    finally:
        dist.destroy_process_group()
