#!/usr/bin/env python3
"""scripts/layers.py - `make lint`: the top-level modules of src/ must form no cycle.

Reads every `crate::<module>` path in src/ (use lines and inline paths, test modules excluded)
and builds the graph of top-level modules; prints each cycle found (as a path of modules with,
for each arrow, one file that makes it) and exits 1, or prints the order from the leaves up and
exits 0.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUP_START = re.compile(r"\bcrate::\{")


def groups(text):
    """The first segment of each top-level item of every `crate::{a, b::{c, d}}` group."""
    for m in GROUP_START.finditer(text):
        depth, i, item, names = 1, m.end(), "", []
        while i < len(text) and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if depth == 1 and c == ",":
                names.append(item)
                item = ""
            elif depth >= 1:
                item += c
            i += 1
        names.append(item)
        for name in names:
            first = re.match(r"\s*([a-z_][a-z0-9_]*)", name)
            if first:
                yield first.group(1)


def top_of(rel):
    parts = rel.split(os.sep)
    name = parts[0]
    return name[:-3] if name.endswith(".rs") else name


def strip_tests(text):
    """Drops `#[cfg(test)] mod … { … }` blocks (by brace counting) and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    marker = re.compile(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{")
    while True:
        m = marker.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    return "".join(out)


def edges():
    found = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, SRC)
            if rel.endswith(os.sep + "tests.rs") or rel == "main.rs" or rel == "lib.rs":
                continue
            src = top_of(rel)
            text = strip_tests(open(path, encoding="utf-8").read())
            targets = set(PATH.findall(text)) | set(groups(text))
            for dst in targets:
                if dst != src:
                    found.setdefault((src, dst), rel)
    return found


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    found = edges()
    graph = {}
    for (a, b) in found:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    bad = cycles(graph)
    if bad:
        for comp in bad:
            print("layers: a cycle between " + ", ".join(comp) + ":")
            for (a, b), rel in sorted(found.items()):
                if a in comp and b in comp:
                    print(f"  {a} -> {b}  (src/{rel})")
        return 1
    order, done = [], set()
    while len(done) < len(graph):
        ready = sorted(v for v in graph if v not in done and graph[v] <= done)
        order.extend(ready)
        done.update(ready)
    print("layers: no cycle; from the leaves up: " + " < ".join(order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
