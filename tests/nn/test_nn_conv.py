"""soundsmith.nn.conv: the log-mel CNN shared by the tagger and CLAP (no family imports another)."""

import subprocess
import sys

import torch

from soundsmith.nn.conv import ConvAudioEncoder


def test_state_dict_keys_are_those_of_the_shipped_models():
    enc = ConvAudioEncoder(n_mels=8, channels=[4, 8], embed_dim=16, dropout=0.0)
    block = ["conv1.weight"] + [f"bn1.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
    block += ["bn1.num_batches_tracked", "conv2.weight"]
    block += [f"bn2.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    bn0 = [f"bn0.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    want = bn0 + [f"blocks.{i}.{k}" for i in range(2) for k in block] + ["fc.weight", "fc.bias"]
    assert list(enc.state_dict()) == want
    out = enc.eval()(torch.randn(3, 8, 21))  # [B, n_mels, frames] -> [B, embed_dim]
    assert out.shape == (3, 16)


def test_clap_does_not_import_the_tagger():
    code = (
        "import sys, soundsmith.models.clap\n"
        "assert 'soundsmith.models.tagger' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
