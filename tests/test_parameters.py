"""plugattn.parameters: the one parameter counter, used by the CLI and the injection report."""
import torch
import torch.nn as nn

from plugattn.cli import measure
from plugattn.inject import inject_attention
from plugattn.parameters import count_parameters


def test_a_shared_parameter_counts_once():
    shared = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(shared, nn.ReLU(), shared)) == 4 * 4 + 4


def test_the_cli_and_the_report_count_with_it():
    assert measure.count_parameters is count_parameters
    host = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
    injected = inject_attention(host, "se", after="0", reduction=4, example_input=torch.randn(1, 3, 8, 8))
    site = injected.injection_report.sites[0]
    assert site.params == count_parameters(injected.get_submodule(site.attention)) == 16 * 4 + 4 + 4 * 16 + 16
    assert count_parameters(injected) - count_parameters(host) == site.params
