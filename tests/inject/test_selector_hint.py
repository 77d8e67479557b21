"""A bare selector that is no class name but a module's name gets the hint to spell it name:..."""
import pytest
import torch.nn as nn

from plugattn import create_backbone
from plugattn.inject.selectors import no_match_error, resolve_selector


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.fc = nn.Linear(8, 2)


@pytest.mark.parametrize("selector,hint", [
    ("fc", "did you mean name:fc? ('fc' is a module name, not a class name)"),
    ("features", "did you mean name:features?"),
])
def test_module_names_get_the_name_hint(selector, hint):
    assert hint in str(no_match_error(Net(), resolve_selector(selector)))


def test_nested_names_get_a_pattern_that_matches_them():
    model = nn.Sequential(Net())
    message = str(no_match_error(model, resolve_selector("fc")))
    assert "did you mean name:*.fc?" in message
    assert [n for n, _ in model.named_modules() if resolve_selector("name:*.fc").matches(n, None)] == ["0.fc"]


def test_no_hint_when_no_module_has_that_name():
    assert "did you mean" not in str(no_match_error(Net(), resolve_selector("bottleneck")))


def test_cli_after_fc(capsys):
    from plugattn.cli import main

    status = main(["inject", "resnet18", "eca", "--after", "fc", "--input-size", "3", "32", "32"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: selector class name 'fc' matches no module of ResNet; "
                                          "did you mean name:fc?")


def test_inject_attention_raises_it():
    from plugattn import inject_attention

    with pytest.raises(ValueError, match=r"did you mean name:fc\?"):
        inject_attention(create_backbone("resnet18"), "eca", after="fc")
