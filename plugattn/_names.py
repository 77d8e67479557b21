"""The public names of :mod:`plugattn.attention`, in a module that imports nothing, so that
``plugattn/__init__.py`` can offer them lazily without importing torch (and both share one list)."""

ATTENTION_NAMES = (
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
    "CoordinateAttention",
    "simam_module",
)
