"""soundsmith.seeding.mix_seed: a pure, collision-free function of its parts."""

import pytest

from soundsmith.seeding import mix_seed


def test_pure_and_in_range():
    assert mix_seed(3, 1) == mix_seed(3, 1)
    assert 0 <= mix_seed(3, 1) < 2**63
    assert 0 <= mix_seed(3, 1, bits=32) < 2**32
    assert mix_seed(3, 1, bits=32) == mix_seed(3, 1) >> 31  # same hash, fewer bits


def test_parts_are_unambiguous():
    # each pair collides under numpy's SeedSequence or under seed * 1_000_003 + epoch
    pairs = [((1,), (1, 0)), ((2**32,), (0, 1)), ((1, 0), (0, 1_000_003)), ((1, 2), (2, 1)), ((12,), (1, 2))]
    for a, b in pairs:
        assert mix_seed(*a) != mix_seed(*b), (a, b)
    assert mix_seed(0, 0, "batches") != mix_seed(0, 0, "workers") != mix_seed(0, 0)
    assert mix_seed(0, "1") != mix_seed(0, 1)
    seeds = {mix_seed(s, e) for s in range(40) for e in range(40)}
    assert len(seeds) == 1600


@pytest.mark.parametrize("parts", [(), (-1,), (1.5,), (True,)])
def test_bad_parts(parts):
    with pytest.raises(ValueError, match="mix_seed"):
        mix_seed(*parts)
