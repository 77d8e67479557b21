"""Vision-transformer backbones; each module registers its variants with ``register_backbone``."""
