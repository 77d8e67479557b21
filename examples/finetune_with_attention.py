"""Fine-tune a trained model with attention added, starting from exactly the trained model.

1. Train a small torchvision ResNet (one BasicBlock per stage) briefly on a generated, seeded dataset (a bright bar whose
   orientation is the class, on noise), and save its checkpoint.
2. Load the checkpoint into a fresh copy of that ResNet, inject SE on every residual branch with
   ``init="identity"``: loss and accuracy at step 0 equal the checkpoint's (asserted), while
   ``init="default"`` would start from a damaged model (printed for comparison).
3. Fine-tune a few steps, the added parameters at a 10x higher learning rate, and print the curve.

Runs on CPU in about 30 s (2 cores) with the defaults; ``--help`` lists the size flags.

    python examples/finetune_with_attention.py
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from plugattn.inject import added_parameters, host_parameters, inject_attention

CLASSES = 4  # bar orientations: 0, 45, 90, 135 degrees


def make_bars(count: int, size: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``count`` images (count, 3, size, size) of a noisy bar at a random offset; label = its orientation."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    coords = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (size, size) each
    angle = labels.float() * math.pi / CLASSES  # (count,)
    offset = (torch.rand(count, generator=generator) - 0.5) * 0.8
    # distance of every pixel to the bar's centre line, (count, size, size)
    distance = (xx * torch.sin(angle)[:, None, None] - yy * torch.cos(angle)[:, None, None]) - offset[:, None, None]
    bar = torch.exp(-(distance / 0.15) ** 2)
    color = torch.rand(count, 3, 1, 1, generator=generator) * 0.5 + 0.5
    noise = torch.randn(count, 3, size, size, generator=generator) * 0.9
    return bar[:, None] * color + noise, labels


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 64) -> Tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode, over fixed batches."""
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(images), batch):
        logits = model(images[start:start + batch])
        loss += F.cross_entropy(logits, labels[start:start + batch], reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels[start:start + batch]).sum().item()
    return loss / len(images), correct / len(images)


def train(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
          steps: int, batch: int, seed: int) -> List[float]:
    """``steps`` SGD steps on seeded random batches; the training loss of each step."""
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(steps):
        index = torch.randint(0, len(images), (batch,), generator=generator)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images[index]), labels[index])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def small_resnet() -> nn.Module:
    """torchvision's ResNet with one BasicBlock per stage (a ResNet-10), so the example stays fast."""
    return torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=CLASSES)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--test-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=120, help="steps of the first training")
    parser.add_argument("--finetune-steps", type=int, default=30)
    parser.add_argument("--attention", default="se")
    parser.add_argument("--checkpoint", type=Path, help="where to save the trained model (default: a temporary file)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    train_images, train_labels = make_bars(args.train_size, args.image_size, seed=args.seed)
    test_images, test_labels = make_bars(args.test_size, args.image_size, seed=args.seed + 1)

    # 1. the "pretrained" model
    model = small_resnet()
    train(model, torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9), train_images, train_labels,
          args.train_steps, args.batch_size, seed=args.seed)
    trained = evaluate(model, test_images, test_labels)
    print(f"trained ResNet-10 ({args.train_steps} steps): test loss {trained[0]:.4f}, accuracy {trained[1]:.3f}")
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint or Path(folder) / "resnet10_bars.pt"
        torch.save(model.state_dict(), checkpoint)
        host = small_resnet()
        host.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    example = test_images[:1]

    # 2. inject; init="identity" starts from the checkpoint exactly
    damaged = evaluate(inject_attention(host, args.attention, branch="basicblock", example_input=example),
                       test_images, test_labels)
    print(f"inject {args.attention}, init='default':  step 0 test loss {damaged[0]:.4f}, accuracy {damaged[1]:.3f}")
    model = inject_attention(host, args.attention, branch="basicblock", example_input=example, init="identity")
    start = evaluate(model, test_images, test_labels)
    print(f"inject {args.attention}, init='identity': step 0 test loss {start[0]:.4f}, accuracy {start[1]:.3f}")
    assert start == trained, f"init='identity' changed the model: {start} != {trained}"
    report = model.injection_report
    gates = sum(s.gate_params for s in report.sites)
    print(f"  {len(report.sites)} sites, {report.params_added:,} parameters added ({gates:,} of them gates)")

    # 3. fine-tune, the added parameters at 10x the host's learning rate
    optimizer = torch.optim.SGD([
        {"params": host_parameters(model), "lr": 0.005},
        {"params": added_parameters(model), "lr": 0.05},
    ], momentum=0.9)
    curve = []
    print("fine-tuning: step, train loss (mean of the steps since the last line), test loss, test accuracy")
    every = max(1, args.finetune_steps // 6)
    for done in range(0, args.finetune_steps, every):
        steps = min(every, args.finetune_steps - done)
        losses = train(model, optimizer, train_images, train_labels, steps, args.batch_size, seed=args.seed + 2 + done)
        test = evaluate(model, test_images, test_labels)
        curve.append((done + steps, sum(losses) / len(losses), *test))
        print(f"  {done + steps:4d}  {curve[-1][1]:.4f}  {test[0]:.4f}  {test[1]:.3f}")
    return {"trained": trained, "default_start": damaged, "identity_start": start, "curve": curve,
            "params_added": report.params_added, "gate_params": gates}


if __name__ == "__main__":
    main()
