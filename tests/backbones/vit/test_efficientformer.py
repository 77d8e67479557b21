"""EfficientFormer-L1 (Li et al., NeurIPS 2022) against timm's efficientformer_l1."""
import pytest
import timm
import torch

from ..builders import model_fixture
from ..contract import ContractCase, check_bad_load_raises, contract_tests
from plugattn.backbones import load_external_weights
from plugattn.backbones.vit.efficientformer import EfficientFormer, efficientformer_l1, relative_offset_bias
from plugattn.testing import relative_error

# timm.create_model("efficientformer_l1", pretrained=False): 12,289,928 parameters (measured)
TIMM_PARAMS = 12_289_928

CASE = ContractCase(
    efficientformer_l1, "efficientformer_l1", "vit", num_features=448, created_as="efficientformer_l1",
    train_on_fixture=True,
    model_class=EfficientFormer, reference_params=TIMM_PARAMS, heads_with_weights=True,
    feature_shape=(2, 4, 448),  # 64 x 64 -> a 2 x 2 grid of 448-wide tokens after the final LayerNorm
    fx_sizes=(96,),  # a non-default size
    init_factory=efficientformer_l1, init_kwargs=dict(num_classes=10),
    # L1 depths (3, 2, 6, 4) with one Meta3D block: 3 + 2 + 6 + 3 = 14 Meta4D blocks
    inject_sites=(("Meta4D", 14),), token_blocks=("Meta3D",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_attention_bias_reads_the_offset_table():
    # Eq. (5): b[h, i, j] = table[h, |dy| * 7 + |dx|] for tokens i, j of the 7 x 7 grid
    table = torch.randn(2, 49)
    bias = relative_offset_bias(table, 7, 7, 7)
    for i, j in [(0, 48), (10, 3), (24, 24), (6, 42)]:
        dy, dx = abs(i // 7 - j // 7), abs(i % 7 - j % 7)
        assert torch.equal(bias[:, i, j], table[:, dy * 7 + dx])
    # a smaller grid reads the same entries; a larger one is resized and keeps its shape
    assert torch.equal(relative_offset_bias(table, 7, 2, 3)[:, 0, 5], table[:, 1 * 7 + 2])
    assert relative_offset_bias(table, 7, 9, 9).shape == (2, 81, 81)


def test_timm_weights_give_timm_outputs():
    torch.manual_seed(0)
    reference = timm.create_model("efficientformer_l1", pretrained=False).eval()
    with torch.no_grad():  # timm initialises layer scales to 1e-5 and the attention bias to 0: make them matter
        for name, p in reference.named_parameters():
            if name.endswith(("gamma", "attention_biases")):
                p.normal_(0.0, 0.5)
    ours = load_external_weights(efficientformer_l1(), reference.state_dict(), "timm").eval()
    x = torch.randn(1, 3, 224, 224)  # timm's attention bias is fixed to the 224 grid
    with torch.no_grad():
        assert relative_error(ours(x), reference(x)) <= 1e-4


def test_mismatched_weights_are_refused():
    state = timm.create_model("efficientformer_l1", pretrained=False).state_dict()
    check_bad_load_raises(efficientformer_l1(), state, "timm")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        efficientformer_l1(num_classes=-1)
    with pytest.raises(ValueError, match="num_vit"):
        efficientformer_l1(num_vit=5)
