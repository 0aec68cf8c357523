"""Unit tests of the search-space core: Choice, Condition, Architecture and the generic operators of
SearchSpace, on a small conditional toy space defined here."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.space import Architecture, Choice, Condition, SearchSpace, choice


class ToySpace(SearchSpace):
    """1-3 layers; a layer's op exists only when the layer does, a conv's kernel only for convs."""

    name = "toy"

    def _declare(self) -> Sequence[Choice]:
        return [
            choice("num_layers", [1, 2, 3]),
            choice("layer0/op", ["conv", "pool"]),
            choice("layer1/op", ["conv", "pool", "skip"], Condition("num_layers", (2, 3))),
            choice("layer2/op", ["conv", "pool"], Condition("num_layers", (3,))),
            # Nested: depends on a decision that is itself conditional.
            choice("layer2/kernel", [3, 5], Condition("layer2/op", ("conv",))),
            choice("bias", [True, False]),
        ]

    def build(self, arch: Architecture, **kwargs: Any) -> nn.Module:
        layers: list[nn.Module] = []
        for i in range(int(arch["num_layers"])):
            op = arch[f"layer{i}/op"]
            if op == "conv":
                k = int(arch.get(f"layer{i}/kernel", 3))
                layers.append(nn.Conv2d(3, 3, k, padding=k // 2, bias=bool(arch["bias"])))
            elif op == "pool":
                layers.append(nn.AvgPool2d(3, 1, 1))
            else:
                layers.append(nn.Identity())
        return nn.Sequential(*layers)


# Hand count: 1 layer: 2 ops x 2 bias; 2 layers: 2 x 3 x 2; 3 layers: 2 x 3 x (pool + 2 conv
# kernels) x 2.
TOY_SIZE = 2 * 2 + 2 * 3 * 2 + 2 * 3 * 3 * 2


@pytest.fixture(scope="module")
def toy() -> ToySpace:
    return ToySpace()


@pytest.fixture(scope="module")
def all_toys(toy: ToySpace) -> list[Architecture]:
    return list(toy.enumerate())


def common_differences(a: Architecture, b: Architecture) -> list[str]:
    """Decisions present in both architectures whose values differ (type-strict)."""
    return [k for k in a if k in b and (a[k] != b[k] or type(a[k]) is not type(b[k]))]


# ---------------------------------------------------------------------------------- Choice
class TestChoice:
    def test_options_become_a_tuple_and_size_counts_them(self) -> None:
        c = choice("op", ["a", "b", "c"])
        assert c.options == ("a", "b", "c")
        assert c.size == 3

    def test_empty_name_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="non-empty name"):
            Choice("", ("a",))

    def test_no_options_is_refused_naming_the_decision(self) -> None:
        with pytest.raises(ConfigError, match="'width' has no options"):
            choice("width", [])

    def test_repeated_options_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="'k' has repeated options"):
            choice("k", [3, 5, 3])

    @pytest.mark.parametrize("bad", [None, [1], (1, 2), {"a": 1}])
    def test_non_scalar_options_are_refused(self, bad: Any) -> None:
        with pytest.raises(ConfigError, match=r"'op': option .* must be str, int, float or bool"):
            Choice("op", ("ok", bad))

    def test_index_finds_option_and_names_decision_and_value_when_absent(self) -> None:
        c = choice("kernel", [3, 5, 7])
        assert c.index(5) == 1
        with pytest.raises(ConfigError) as info:
            c.index(4)
        msg = str(info.value)
        assert "4" in msg and "'kernel'" in msg and "3, 5, 7" in msg

    def test_index_keeps_bool_and_int_apart(self) -> None:
        assert choice("flag", [True, False]).index(True) == 0
        with pytest.raises(ConfigError, match="not an option of decision 'flag'"):
            choice("flag", [True, False]).index(1)
        with pytest.raises(ConfigError, match="not an option of decision 'n'"):
            choice("n", [1, 2]).index(True)

    def test_index_accepts_int_for_equal_float_option(self) -> None:
        # 2 == 2.0: an int may select a float option (JSON writes 2.0 as 2 in some tools).
        assert choice("ratio", [0.5, 2.0]).index(2) == 1


# ---------------------------------------------------------------------------------- Condition
class TestCondition:
    def test_holds_only_for_listed_values_of_an_assigned_parent(self) -> None:
        cond = Condition("n", (2, 3))
        assert cond.holds({"n": 2})
        assert not cond.holds({"n": 1})
        assert not cond.holds({})

    def test_values_become_a_tuple(self) -> None:
        cond = Condition("n", [2, 3])  # type: ignore[arg-type]
        assert cond.values == (2, 3)
        hash(cond)  # frozen dataclass with a tuple: hashable

    def test_empty_values_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="condition on 'n' has no values"):
            Condition("n", ())

    def test_empty_parent_name_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="parent decision"):
            Condition("", (1,))

    def test_parent_must_be_declared_first(self) -> None:
        class Bad(ToySpace):
            def _declare(self) -> Sequence[Choice]:
                return [choice("op", ["a"], Condition("n", (1,))), choice("n", [1, 2])]

        with pytest.raises(ConfigError, match="'op' depends on 'n', which is not declared before"):
            Bad()

    def test_condition_value_the_parent_cannot_take_is_refused(self) -> None:
        class Typo(ToySpace):
            def _declare(self) -> Sequence[Choice]:
                return [choice("n", [1, 2]), choice("op", ["a", "b"], Condition("n", (2, 4)))]

        with pytest.raises(ConfigError) as info:
            Typo()
        msg = str(info.value)
        assert "'op'" in msg and "4" in msg and "'n'" in msg

    def test_duplicate_decision_names_are_refused(self) -> None:
        class Twice(ToySpace):
            def _declare(self) -> Sequence[Choice]:
                return [choice("n", [1, 2]), choice("n", [3])]

        with pytest.raises(ConfigError, match="declares decision 'n' twice"):
            Twice()


# ---------------------------------------------------------------------------------- Architecture
class TestArchitecture:
    def test_is_immutable(self) -> None:
        arch = Architecture("toy", {"a": 1})
        with pytest.raises(AttributeError, match="immutable"):
            arch.foo = 2
        with pytest.raises(AttributeError, match="immutable"):
            del arch.space
        with pytest.raises(TypeError):
            arch["a"] = 2  # type: ignore[index]

    def test_does_not_alias_the_input_mapping(self) -> None:
        values: dict[str, Any] = {"a": 1}
        arch = Architecture("toy", values)
        values["a"] = 2
        assert arch["a"] == 1

    def test_equality_and_hash_by_value_and_space(self) -> None:
        a = Architecture("toy", {"x": "conv", "y": 3})
        b = Architecture("toy", {"y": 3, "x": "conv"})  # order does not matter
        assert a == b and hash(a) == hash(b)
        assert len({a, b}) == 1
        assert a != Architecture("other", {"x": "conv", "y": 3})
        assert a != Architecture("toy", {"x": "conv", "y": 5})
        assert a != Architecture("toy", {"x": "conv"})

    def test_true_and_one_are_distinct_choices(self) -> None:
        t = Architecture("toy", {"flag": True})
        one = Architecture("toy", {"flag": 1})
        assert t != one
        assert len({t, one}) == 2
        assert Architecture("toy", {"v": 1}) != Architecture("toy", {"v": 1.0})

    def test_non_scalar_values_and_keys_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="'x' has value \\[1\\]"):
            Architecture("toy", {"x": [1]})  # type: ignore[dict-item]
        with pytest.raises(ConfigError, match="decision names must be strings"):
            Architecture("toy", {1: "a"})  # type: ignore[dict-item]

    def test_missing_key_error_names_space_and_decision(self) -> None:
        with pytest.raises(KeyError, match="space 'toy' has no decision 'zz'"):
            Architecture("toy", {"a": 1})["zz"]

    def test_json_round_trip_keeps_types(self) -> None:
        arch = Architecture("toy", {"s": "conv", "i": 3, "f": 0.25, "b": True, "one": 1})
        back = Architecture.from_json(arch.to_json())
        assert back == arch and hash(back) == hash(arch)
        assert type(back["b"]) is bool and type(back["one"]) is int and type(back["f"]) is float
        assert json.loads(arch.to_json()) == {"space": "toy", "choices": dict(arch)}

    def test_json_text_is_stable(self) -> None:
        a = Architecture("toy", {"b": 1, "a": 2})
        b = Architecture("toy", {"a": 2, "b": 1})
        assert a.to_json() == b.to_json()

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("{not json", "not valid architecture JSON"),
            ('{"choices": {}}', "keys 'space' and 'choices'"),
            ('{"space": "toy", "choices": [1]}', "'choices' must be an object"),
            ("[1, 2]", "keys 'space' and 'choices'"),
        ],
    )
    def test_bad_json_gives_clear_errors(self, text: str, match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            Architecture.from_json(text)

    def test_replace_makes_a_changed_copy(self) -> None:
        a = Architecture("toy", {"x": 1, "y": 2})
        b = a.replace(y=3)
        assert a["y"] == 2 and b["y"] == 3 and b.space == "toy"


# ---------------------------------------------------------------------------------- SearchSpace
class TestToySpaceStructure:
    def test_size_matches_hand_count_and_enumeration(self, toy: ToySpace, all_toys: list) -> None:
        assert toy.size() == TOY_SIZE
        assert len(all_toys) == TOY_SIZE
        assert len(set(all_toys)) == TOY_SIZE

    def test_enumeration_only_holds_active_decisions(self, toy: ToySpace, all_toys: list) -> None:
        for arch in all_toys:
            assert set(arch) == {d.name for d in toy.active_decisions(arch)}
        one_layer = [a for a in all_toys if a["num_layers"] == 1]
        assert all(set(a) == {"num_layers", "layer0/op", "bias"} for a in one_layer)

    def test_is_conditional(self, toy: ToySpace) -> None:
        assert toy.is_conditional

    def test_unknown_decision_lookup_lists_names(self, toy: ToySpace) -> None:
        with pytest.raises(ConfigError, match="no decision 'layer9/op'; it has: num_layers, "):
            toy.decision("layer9/op")


class TestValidate:
    def test_accepts_members(self, toy: ToySpace, all_toys: list) -> None:
        for arch in all_toys:
            assert toy.validate(arch) is arch
            assert toy.is_valid(arch)

    def test_bad_value_names_decision_value_and_options(self, toy: ToySpace) -> None:
        bad = Architecture("toy", {"num_layers": 1, "layer0/op": "sepconv", "bias": True})
        with pytest.raises(InvalidArchitectureError) as info:
            toy.validate(bad)
        msg = str(info.value)
        assert "'sepconv'" in msg and "'layer0/op'" in msg and "'conv', 'pool'" in msg
        assert not toy.is_valid(bad)

    def test_missing_active_decision_is_named(self, toy: ToySpace) -> None:
        bad = Architecture("toy", {"num_layers": 2, "layer0/op": "conv", "bias": True})
        with pytest.raises(InvalidArchitectureError, match="lacks decision 'layer1/op'"):
            toy.validate(bad)

    def test_inactive_decision_with_a_value_is_named(self, toy: ToySpace) -> None:
        bad = Architecture(
            "toy", {"num_layers": 1, "layer0/op": "conv", "layer2/op": "pool", "bias": True}
        )
        with pytest.raises(InvalidArchitectureError, match="decision 'layer2/op' does not exist"):
            toy.validate(bad)

    def test_unknown_decision_is_named(self, toy: ToySpace) -> None:
        values: dict[str, Any] = {"num_layers": 1, "layer0/op": "pool", "bias": 1 > 0}
        values["dropout"] = 0.1
        bad = Architecture("toy", values)
        with pytest.raises(InvalidArchitectureError, match="no decision\\(s\\) 'dropout'"):
            toy.validate(bad)

    def test_other_space_and_non_architectures_are_refused(self, toy: ToySpace) -> None:
        with pytest.raises(InvalidArchitectureError, match="belongs to space 'nb201', not 'toy'"):
            toy.validate(Architecture("nb201", {}))
        with pytest.raises(InvalidArchitectureError, match="got dict"):
            toy.validate({"num_layers": 1})  # type: ignore[arg-type]

    def test_bool_for_int_option_is_refused(self, toy: ToySpace) -> None:
        bad = Architecture("toy", {"num_layers": True, "layer0/op": "conv", "bias": True})
        with pytest.raises(InvalidArchitectureError, match="'num_layers'"):
            toy.validate(bad)

    def test_make_validates(self, toy: ToySpace) -> None:
        arch = toy.make({"num_layers": 1, "layer0/op": "pool", "bias": False})
        assert arch.space == "toy"
        with pytest.raises(InvalidArchitectureError):
            toy.make({"num_layers": 4, "layer0/op": "pool", "bias": False})


class TestOperators:
    SEEDS = range(40)

    def test_sample_is_valid_and_seeded(self, toy: ToySpace) -> None:
        for seed in self.SEEDS:
            a = toy.sample(seed)
            toy.validate(a)
            assert a == toy.sample(seed)
            assert a == toy.sample(np.random.default_rng(seed))

    def test_sample_reaches_every_architecture(self, toy: ToySpace) -> None:
        rng = np.random.default_rng(0)
        seen = {toy.sample(rng) for _ in range(2000)}
        assert len(seen) == TOY_SIZE

    def test_bad_rng_is_refused(self, toy: ToySpace) -> None:
        with pytest.raises(ConfigError, match="rng must be"):
            toy.sample("seed")  # type: ignore[arg-type]

    def test_mutate_changes_exactly_one_common_decision(
        self, toy: ToySpace, all_toys: list
    ) -> None:
        rng = np.random.default_rng(1)
        for arch in all_toys:
            child = toy.mutate(arch, rng)
            toy.validate(child)
            assert child != arch
            assert len(common_differences(arch, child)) == 1

    def test_mutate_is_seeded(self, toy: ToySpace) -> None:
        arch = toy.sample(3)
        assert toy.mutate(arch, 7) == toy.mutate(arch, 7)

    def test_neighbors_are_valid_distinct_and_one_step_away(
        self, toy: ToySpace, all_toys: list
    ) -> None:
        for arch in all_toys:
            nbrs = toy.neighbors(arch)
            assert arch not in nbrs
            assert len(set(nbrs)) == len(nbrs)
            for n in nbrs:
                toy.validate(n)
                assert len(common_differences(arch, n)) == 1
            # Every other option of every active decision is reached exactly once.
            expected = sum(d.size - 1 for d in toy.active_decisions(arch))
            assert len(nbrs) == expected

    def test_neighbors_match_brute_force(self, toy: ToySpace, all_toys: list) -> None:
        # Brute force: members one decision away whose newly active decisions take option 0.
        arch = toy.make({"num_layers": 2, "layer0/op": "conv", "layer1/op": "skip", "bias": True})
        brute = set()
        for other in all_toys:
            if len(common_differences(arch, other)) != 1:
                continue
            new = [k for k in other if k not in arch]
            if all(other[k] == toy.decision(k).options[0] for k in new):
                brute.add(other)
        assert set(toy.neighbors(arch)) == brute

    def test_crossover_is_valid_and_inherits(self, toy: ToySpace, all_toys: list) -> None:
        rng = np.random.default_rng(2)
        for a, b in itertools.islice(itertools.product(all_toys, repeat=2), 0, None, 7):
            child = toy.crossover(a, b, rng)
            toy.validate(child)
            for k in child:
                if k in a and k in b:
                    assert child[k] in (a[k], b[k])

    def test_crossover_of_identical_parents_is_the_parent(self, toy: ToySpace) -> None:
        a = toy.sample(5)
        assert toy.crossover(a, a, 0) == a

    def test_crossover_refuses_foreign_parents(self, toy: ToySpace) -> None:
        with pytest.raises(InvalidArchitectureError):
            toy.crossover(toy.sample(0), Architecture("toy", {"num_layers": 9}), 0)


class TestEncode:
    def test_length_is_constant_and_one_hot(self, toy: ToySpace, all_toys: list) -> None:
        assert toy.encoding_size == sum(d.size for d in toy.decisions)
        for arch in all_toys:
            vec = toy.encode(arch)
            assert vec.shape == (toy.encoding_size,)
            assert vec.dtype == np.float32
            assert set(np.unique(vec)) <= {0.0, 1.0}
            assert vec.sum() == len(arch)  # one 1 per active decision, zeros for inactive ones

    def test_is_injective(self, toy: ToySpace, all_toys: list) -> None:
        codes = {toy.encode(a).tobytes() for a in all_toys}
        assert len(codes) == TOY_SIZE


class TestTextForms:
    def test_string_round_trip(self, toy: ToySpace, all_toys: list) -> None:
        for arch in all_toys:
            assert toy.from_string(toy.to_string(arch)) == arch

    def test_bad_strings_are_named(self, toy: ToySpace) -> None:
        with pytest.raises(InvalidArchitectureError, match="cannot parse"):
            toy.from_string("{oops")
        with pytest.raises(InvalidArchitectureError, match="expected a JSON object"):
            toy.from_string("[1]")
        with pytest.raises(InvalidArchitectureError, match="'layer0/op'"):
            toy.from_string('{"num_layers": 1, "layer0/op": "zap", "bias": true}')

    def test_describe_and_default_hooks(self, toy: ToySpace) -> None:
        assert toy.describe() == {"name": "toy", "decisions": 6, "size": TOY_SIZE}
        assert toy.small_build_kwargs == {}
        x = toy.example_input(batch=3)
        assert x.shape == (3, 3, 32, 32)
        assert torch.equal(x, toy.example_input(batch=3))  # seeded
        with pytest.raises(ConfigError, match="no weight-sharing supernet"):
            toy.supernet()
        model = toy.build(toy.sample(0))
        assert model(x).shape == x.shape
