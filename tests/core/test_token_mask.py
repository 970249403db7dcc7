"""Real tokens only: a token layer's units read the tokens the attention mask marks, never padding.

Each expected value is computed per sample from the definition, one token at a time in NumPy,
over the sample's own real tokens (its first L tokens of a right-padded batch, or its last L of
a left-padded one), so that a rule that counted padding, or read the wrong token, disagrees.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from selectivity import Probe, SelectivityRegularizer
from selectivity.core.probe import unit_activations


def rule_loop(real: np.ndarray, tokens: str, positive_part: bool, prefix: int = 1) -> np.ndarray:
    """(L, U) real tokens of one sample -> (U,) from the definition."""
    chosen = {"mean": range(len(real)), "cls": range(1), "patches": range(prefix, len(real)),
              "last": range(len(real) - 1, len(real))}[tokens]
    out = np.zeros(real.shape[1])
    for u in range(real.shape[1]):
        values = [max(real[t, u], 0.0) if positive_part else real[t, u] for t in chosen]
        out[u] = sum(values) / len(values)
    return out


def padded(lengths, units=5, left=False, seed=0):
    """Random (N, T, U) outputs with garbage (large values) in the padding, and the mask."""
    g = torch.Generator().manual_seed(seed)
    n, t = len(lengths), max(lengths)
    x = torch.randn(n, t, units, generator=g, dtype=torch.float64)
    mask = torch.zeros(n, t, dtype=torch.int64)
    for i, length in enumerate(lengths):
        span = slice(t - length, t) if left else slice(0, length)
        mask[i, span] = 1
    x = torch.where(mask.bool().unsqueeze(-1), x, torch.full_like(x, 50.0))  # padding that would show
    return x, mask


@pytest.mark.parametrize("tokens", ["mean", "cls", "patches", "last"])
@pytest.mark.parametrize("positive_part", [True, False])
@pytest.mark.parametrize("left", [False, True])
def test_each_rule_reads_the_real_tokens_only(tokens, positive_part, left):
    lengths = [4, 7, 2, 7, 3]
    x, mask = padded(lengths, left=left)
    got = unit_activations(x, layout="tokens", tokens=tokens, positive_part=positive_part, prefix_tokens=1, mask=mask)
    for i, length in enumerate(lengths):
        real = x[i][mask[i].bool()].numpy()
        assert len(real) == length
        np.testing.assert_allclose(got[i].numpy(), rule_loop(real, tokens, positive_part), rtol=1e-12, atol=1e-12)


def test_a_sample_alone_equals_the_same_sample_in_a_padded_batch():
    x, mask = padded([6, 3, 5])
    batch = unit_activations(x, layout="tokens", mask=mask)
    for i in range(3):
        length = int(mask[i].sum())
        alone = unit_activations(x[i : i + 1, :length], layout="tokens")  # no padding, no mask
        np.testing.assert_allclose(batch[i].numpy(), alone[0].numpy(), rtol=1e-12)


def test_without_the_mask_the_padding_would_count():
    x, mask = padded([6, 3, 5])
    assert not torch.allclose(unit_activations(x, layout="tokens"), unit_activations(x, layout="tokens", mask=mask))


def test_a_mask_of_another_shape_and_a_sample_without_tokens_are_errors():
    x, mask = padded([3, 2])
    with pytest.raises(ValueError, match=r"attention mask is \(2, 2\)"):
        unit_activations(x, "blk", layout="tokens", mask=mask[:, :2])
    with pytest.raises(ValueError, match="sample 1 has no real token"):
        unit_activations(x, "blk", layout="tokens", mask=torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="no real token after the 1 prefix tokens"):
        unit_activations(x, "blk", layout="tokens", tokens="patches", prefix_tokens=1, mask=torch.tensor([[1, 1, 0], [1, 0, 0]]))


class TokenNet(nn.Module):
    """Embeds token ids, one attention block with an MLP: its act is a token layer (N, T, U)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.block = nn.Module()
        self.block.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.block.fc = nn.Linear(8, 6)
        self.block.act = nn.GELU()
        self.head = nn.Linear(6, 3)
        self.num_prefix_tokens = 1

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)
        pad = None if attention_mask is None else ~attention_mask.bool()
        h = h + self.block.attention(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        a = self.block.act(self.block.fc(h))
        return self.head(a[:, 0])


def test_the_probe_takes_the_mask_from_the_call_or_from_set_token_mask():
    torch.manual_seed(0)
    net = TokenNet().eval()
    ids = torch.randint(0, 20, (3, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    raw = []  # the act's own outputs, pass by pass, by a hook that is not the probe's
    net.block.act.register_forward_hook(lambda m, a, o: raw.append(o.detach().double()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Probe(net, "block.act") as probe, torch.no_grad():
            net(ids, attention_mask=mask)  # as a Hugging Face model is called
            by_keyword = probe.activations["block.act"].clone()
            assert probe.token_mask is mask
            probe.set_token_mask(mask)  # told before a call that does not carry it
            net(ids)
            told = probe.activations["block.act"].clone()
            net(ids)  # the told mask held for one pass only
            assert probe.token_mask is None
    for i in range(3):
        np.testing.assert_allclose(by_keyword[i].numpy(), rule_loop(raw[0][i][mask[i].bool()].numpy(), "mean", True),
                                   rtol=1e-6)
        # the second pass ran without the mask inside the model (other raw outputs) but the probe used it
        np.testing.assert_allclose(told[i].numpy(), rule_loop(raw[1][i][mask[i].bool()].numpy(), "mean", True),
                                   rtol=1e-6)


def test_the_regularizer_differentiates_through_the_masked_rule():
    torch.manual_seed(0)
    net = TokenNet()
    ids, y = torch.randint(0, 20, (6, 5)), torch.tensor([0, 1, 2, 0, 1, 2])
    mask = torch.ones(6, 5, dtype=torch.int64)
    mask[::2, 3:] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = SelectivityRegularizer(net, alpha=-1.0, num_classes=3, layers="block.act", schedule=None)
    net(ids, attention_mask=mask)
    loss = reg.loss(y)
    loss.backward()
    assert net.block.fc.weight.grad is not None and net.block.fc.weight.grad.abs().sum() > 0
    reg.close()
