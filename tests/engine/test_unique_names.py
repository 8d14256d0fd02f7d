"""Unique names keep a counter per base name (issue #15), and give exactly the names they always gave.

The names below were recorded from the suffix-probing code the counters replaced; the fuzz
tests compare every name against that code, kept here as the reference."""
import random
import re

from engine.blocks import REGISTRY
from engine.graph import MAX_NAME, Graph, clean_name
from engine.naming import RESERVED, Namespace, to_identifier


def reference_unique_name(taken: set[str], base: str) -> str:
    """Graph.unique_name as it was: probe base_1, base_2, ... one by one."""
    base = clean_name(base) or "node"
    if base not in taken:
        return base
    stem = re.sub(r"_\d+$", "", base) or base
    i = 1
    while f"{stem[:MAX_NAME - len(str(i)) - 1]}_{i}" in taken:
        i += 1
    return f"{stem[:MAX_NAME - len(str(i)) - 1]}_{i}"


def reference_create(taken: set[str], name: str, fallback: str = "layer") -> str:
    """Namespace.create as it was."""
    base = to_identifier(name, fallback)
    candidate, i = base, 1
    while candidate in taken:
        i += 1
        candidate = f"{base.rstrip('_')}_{i}"
        if candidate in RESERVED:
            candidate += "_"
    taken.add(candidate)
    return candidate


def test_names_are_unchanged_for_a_scripted_sequence_of_adds_removes_and_renames():
    g = Graph()
    a, b, c = (g.add_node("Linear") for _ in range(3))
    names = [g.node(n).name for n in (a, b, c)]
    g.remove_node(b)
    d = g.add_node("Linear")
    names.append(g.node(d).name)              # the freed dense_2 is given again
    names.append(g.rename(a, "dense_3"))      # taken: a keeps its own dense_1
    names.append(g.rename(a, "dense"))
    e = g.add_node("Linear")
    names.append(g.node(e).name)              # dense_1, freed by the rename
    names.append(g.rename(c, "dense_9"))
    names.append(g.node(g.add_node("Linear")).name)  # dense_3, freed by the rename
    names.append(g.node(g.add_node("Linear", "dense_1_2")).name)
    names.append(g.node(g.add_node("Linear", "dense_1_2")).name)
    g.remove_node(d)
    names.append(g.node(g.add_node("Linear", "dense_5")).name)
    names.append(g.node(g.add_node("Dropout")).name)
    assert names == ["dense_1", "dense_2", "dense_3", "dense_2", "dense_1", "dense", "dense_1", "dense_9",
                     "dense_3", "dense_1_2", "dense_1_1", "dense_5", "dropout_1"]


def test_repeated_names_from_a_file_then_edits_give_the_same_names_as_before():
    data = {"format_version": 1, "edges": [],
            "nodes": [{"id": f"n{i}", "name": name, "type": "Linear"}
                      for i, name in enumerate(["x", "x", "x_1", "x", "x_2", "", "x"])]}
    g = Graph.from_dict(data)
    assert [n.name for n in g.nodes()] == ["x", "x_1", "x_2", "x_3", "x_4", "linear", "x_5"]
    g.remove_node("n1")
    assert g.node(g.add_node("Linear", "x")).name == "x_1"
    assert g.node(g.add_node("Linear", "x")).name == "x_6"


def test_long_and_odd_names_keep_their_suffixes():
    g = Graph()
    long = [g.node(g.add_node("Linear", "a" * 70)).name for _ in range(12)]
    assert long[0] == "a" * 64 and long[1] == "a" * 62 + "_1" and long[9] == "a" * 62 + "_9"
    assert long[10] == "a" * 61 + "_10" and long[11] == "a" * 61 + "_11"
    assert all(len(name) <= MAX_NAME for name in long)
    g.remove_node(g.find("a" * 62 + "_3").id)
    g.remove_node(g.find("a" * 61 + "_10").id)
    assert g.node(g.add_node("Linear", "a" * 64)).name == "a" * 62 + "_3"
    assert g.node(g.add_node("Linear", "a" * 64)).name == "a" * 61 + "_10"
    assert g.node(g.add_node("Linear", "a" * 64)).name == "a" * 61 + "_12"
    g = Graph()
    assert [g.node(g.add_node("Linear", "_1")).name for _ in range(3)] == ["_1", "_1_1", "_1_2"]
    assert [g.node(g.add_node("Linear", "  ")).name for _ in range(3)] == ["node", "node_1", "node_2"]
    g.clear()
    assert g.node(g.add_node("Linear")).name == "dense_1"


POOL = ["dense", "dense_1", "dense_2", "dense_07", "dense_1_2", "x", "x_1", "_1", "", "Dense 1", "dense_١",
        "b" * 64, "b" * 62 + "_1", "b" * 61 + "_10", "b" * 63, "b" * 60 + "_1"]


def test_names_match_the_probing_code_through_random_adds_removes_renames_and_reloads():
    rng = random.Random(15)
    for _ in range(20):
        g = Graph()
        for _ in range(300):
            op = rng.random()
            ids = g.node_ids()
            if op < 0.35 or not ids:
                if rng.random() < 0.5:
                    type_name = rng.choice(["Linear", "Dropout", "Conv2d"])
                    want = reference_unique_name(g.names(), f"{g_default(type_name)}_1")
                    node_id = g.add_node(type_name)
                else:
                    name = rng.choice(POOL)
                    want = reference_unique_name(g.names(), name)
                    node_id = g.add_node("Linear", name)
                assert g.node(node_id).name == want
            elif op < 0.6:
                g.remove_node(rng.choice(ids))
            elif op < 0.85:
                node_id, name = rng.choice(ids), rng.choice(POOL)
                if not clean_name(name):
                    continue
                want = reference_unique_name(g.names() - {g.node(node_id).name}, name)
                assert g.rename(node_id, name) == want
            elif op < 0.9:
                g = Graph.from_dict(g.to_dict())
            else:  # asking for a name (and not taking it) changes nothing
                name = rng.choice(POOL)
                assert g.unique_name(name) == reference_unique_name(g.names(), name)
                assert g.unique_name(name) == reference_unique_name(g.names(), name)
            assert len(g.names()) == len(g)


def g_default(type_name: str) -> str:
    return REGISTRY[type_name].default_name or type_name.lower()


def test_namespace_gives_the_names_it_always_gave():
    rng = random.Random(7)
    pool = ["dense", "Dense", "dense_2", "dense 2", "class", "input", "x", "", "9 lives", "layer", "layer_2"]
    for _ in range(20):
        taken = {rng.choice(["dense_3", "x_2", "layer", "class_"]) for _ in range(3)}
        ns, ref = Namespace(taken), set(taken)
        for _ in range(200):
            name = rng.choice(pool)
            assert ns.create(name) == reference_create(ref, name)
    ns = Namespace()
    assert [ns.create("dense") for _ in range(3)] == ["dense", "dense_2", "dense_3"]
    assert [ns.create("input") for _ in range(2)] == ["input_", "input_2"]
