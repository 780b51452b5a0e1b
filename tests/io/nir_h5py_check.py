#!/usr/bin/env python3
"""Checks with h5py that .nir files have the layout NIR documents (neuromorphs/NIR,
nir/serialization.py): a string /version, a group /node of type "NIRGraph", and in every graph a
group `nodes` of node groups, each with a string `type`, and `edges` as an N x 2 string dataset
naming nodes of that graph. Fields must be numeric arrays, strings or groups (dicts).

It also reads each graph the way the reference reader does (bytes decoded as UTF-8, edges
iterated as pairs), so a file that passes here opens with nir.read().

Usage: nir_h5py_check.py FILE.nir...   Prints "OK <file>" per file; exit 0 if all pass, 1 on the
first failure, 77 (ctest's "skipped") if h5py is not installed.
"""
import sys

try:
    import h5py
    import numpy as np
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"SKIP: h5py is not installed ({error}); Debian: apt-get install python3-h5py")
    sys.exit(77)


class LayoutError(Exception):
    pass


def text(dataset, where):
    """The value of a string scalar dataset, decoded as UTF-8."""
    if not isinstance(dataset, h5py.Dataset) or dataset.shape != ():
        raise LayoutError(f"{where}: expected a string scalar dataset")
    if h5py.check_string_dtype(dataset.dtype) is None:
        raise LayoutError(f"{where}: dtype {dataset.dtype} is not a string type")
    value = dataset[()]
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def check_field(item, where):
    if isinstance(item, h5py.Group):
        for key, member in item.items():
            check_field(member, f"{where}/{key}")
        return
    if h5py.check_string_dtype(item.dtype) is not None:
        value = item[()]
        if isinstance(value, bytes):
            value.decode("utf8")
        elif isinstance(value, np.ndarray):
            for element in value.ravel():
                element.decode("utf8") if isinstance(element, bytes) else str(element)
        return
    if item.dtype.kind not in "fiu":
        raise LayoutError(f"{where}: dtype {item.dtype} is neither numeric nor a string")
    np.asarray(item[()], dtype=np.float64)  # reads (and decompresses) the whole array


def resolves(names, groups, name):
    """Edge names: a node, or <subgraph>.<node> inside a NIRGraph node."""
    if name in names:
        return True
    for i, c in enumerate(name):
        if c == "." and name[:i] in groups:
            sub = groups[name[:i]]
            if resolves(set(sub["nodes"].keys()), subgraphs(sub), name[i + 1:]):
                return True
    return False


def subgraphs(graph):
    return {k: g for k, g in graph["nodes"].items() if text(g["type"], k) == "NIRGraph"}


def check_graph(group, where):
    if text(group["type"], f"{where}/type") != "NIRGraph":
        raise LayoutError(f"{where}/type: expected NIRGraph")
    nodes = group["nodes"]
    if not isinstance(nodes, h5py.Group):
        raise LayoutError(f"{where}/nodes: expected a group")
    for name, node in nodes.items():
        node_where = f"{where}/nodes/{name}"
        if not isinstance(node, h5py.Group):
            raise LayoutError(f"{node_where}: expected a node group")
        node_type = text(node["type"], f"{node_where}/type")
        for key, member in node.items():
            if key == "type" or (node_type == "NIRGraph" and key in ("nodes", "edges")):
                continue
            check_field(member, f"{node_where}/{key}")
        if node_type == "NIRGraph":
            check_graph(node, node_where)
    edges = group["edges"]
    if edges.ndim != 2 or edges.shape[1] != 2 or h5py.check_string_dtype(edges.dtype) is None:
        raise LayoutError(f"{where}/edges: shape {edges.shape} dtype {edges.dtype}, "
                          "expected N x 2 strings")
    names = set(nodes.keys())
    groups = subgraphs(group)
    # as the reference reader iterates them
    for a, b in edges[()]:
        for end in (a, b):
            end = end.decode("utf8") if isinstance(end, bytes) else end
            if not resolves(names, groups, end):
                raise LayoutError(f"{where}/edges: '{end}' names no node")
    for key, member in group.items():
        if key not in ("type", "nodes", "edges"):
            check_field(member, f"{where}/{key}")
    return len(names), edges.shape[0]


def check(path):
    with h5py.File(path, "r") as f:
        version = text(f["version"], "/version")
        if not version:
            raise LayoutError("/version: empty")
        node_count, edge_count = check_graph(f["node"], "/node")
    return version, node_count, edge_count


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        try:
            version, nodes, edges = check(path)
        except (LayoutError, KeyError, OSError, UnicodeDecodeError) as error:
            print(f"FAIL {path}: {error}")
            return 1
        print(f"OK {path}: NIR {version}, {nodes} nodes, {edges} edges")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
