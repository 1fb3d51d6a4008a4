"""The collectives of compiled XLA HLO text, each with the mesh axes its device groups span.

`collectives(compiled.as_text(), mesh)` lists every all-reduce, all-gather,
reduce-scatter, all-to-all, collective-permute and collective-broadcast of a
program, with its result type and `op_name` (the JAX source names that made
it). Written from the HLO text format, independently of alexnet_jax, so tests
and benchmarks can check which layers talk over which mesh axis.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

_OPCODES = (
    "ragged-all-to-all",
    "all-to-all",
    "all-gather",
    "all-reduce",
    "reduce-scatter",
    "collective-permute",
    "collective-broadcast",
)
# The opcode right before its operand list; `(?<![\w-])` keeps "all-to-all" from matching inside
# "ragged-all-to-all".
_COLLECTIVE = re.compile(r"(?<![\w-])(" + "|".join(_OPCODES) + r")(?:-start)?\(")
_IOTA = re.compile(r"\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?")
# device_ids of the mesh form: [dims]T(perm)
_IOTA_IDS = re.compile(r"\[([\d,]+)\](?:T\(([\d,]+)\))?")
_MESH_FORM = re.compile(r"mesh\[([^\]]*)\](?:, device_ids=\(([^)]*\)?)\))? \{([^}]*)\}")


@dataclasses.dataclass(frozen=True)
class Collective:
    """One collective instruction of the HLO."""

    opcode: str
    axes: frozenset  # mesh axis names along which its groups vary
    op_name: str
    result_type: str  # e.g. "f32[2,10]{1,0}" or a tuple "(f32[], f32[])"

    @property
    def tokens(self) -> set[str]:
        """Every name in op_name; combined ops list several, separated by ':'."""
        return {t for t in re.split(r"[/:()]", self.op_name) if t}

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The shape of each array of the result, () for a scalar."""
        dims = re.findall(r"\w+\[([\d,]*)\]", self.result_type)
        return [tuple(int(d) for d in shape.split(",") if d) for shape in dims]


def _iota(dims: list[int], perm: list[int] | None) -> np.ndarray:
    ids = np.arange(int(np.prod(dims))).reshape(dims)
    return (ids.transpose(perm) if perm else ids).reshape(-1)


def _ints(text: str | None) -> list[int]:
    return [int(n) for n in text.split(",")] if text else []


def _balanced_braces(text: str) -> str:
    depth = 0
    for end, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return text[: end + 1]
    raise ValueError(f"unbalanced braces in {text[:80]!r}")


def parse_groups(line: str, num_devices: int) -> list[list[int]]:
    """The device groups of one collective, as partition ids (positions in mesh.devices.flat).

    Three spellings of replica_groups: explicit `{{0,1},{2,3}}` (`{}` = all
    devices), iota `[G,S]<=[dims]T(perm)`, and the mesh form
    `mesh['a'=4,'b'=2] {'b'}` (optionally `, device_ids=([dims]T(perm))`
    before the braces): the listed axes vary within a group. A
    collective-permute's source-target pairs count as groups.
    """
    match = re.search(r"(replica_groups|source_target_pairs)=", line)
    if match is None:
        raise ValueError(f"no replica_groups in: {line[:200]}")
    text = line[match.end() :]
    if text.startswith("{"):
        groups = [_ints(g) for g in re.findall(r"\{([\d,]+)\}", _balanced_braces(text))]
        return groups or [list(range(num_devices))]
    if text.startswith("["):
        iota = _IOTA.match(text)
        num_groups, size = _ints(iota.group(1))
        ids = _iota(_ints(iota.group(2)), _ints(iota.group(3)))
        return ids.reshape(num_groups, size).tolist()
    mesh = _MESH_FORM.match(text)
    if mesh is None:
        raise ValueError(f"unknown replica_groups spelling: {text[:200]}")
    names, sizes = zip(*((n, int(s)) for n, s in re.findall(r"'(\w+)'=(\d+)", mesh.group(1))))
    if mesh.group(2):
        device_ids = _IOTA_IDS.fullmatch(mesh.group(2))
        if device_ids is None:
            raise ValueError(f"unknown device_ids spelling: {mesh.group(2)}")
        ids = _iota(_ints(device_ids.group(1)), _ints(device_ids.group(2)))
    else:
        ids = np.arange(int(np.prod(sizes)))
    grouped = [names.index(n) for n in re.findall(r"'(\w+)'", mesh.group(3))]
    kept = [i for i in range(len(names)) if i not in grouped]
    ids = ids.reshape(sizes).transpose(kept + grouped)
    return ids.reshape(-1, int(np.prod([sizes[i] for i in grouped], dtype=int))).tolist()


def collectives(hlo: str, mesh) -> list[Collective]:
    """Every collective in `hlo`, with the axes of `mesh` (a jax.sharding.Mesh) its groups span.

    Raises ValueError where the groups of a collective other than a
    collective-permute do not partition the mesh's devices.
    """
    found = []
    for line in hlo.splitlines():
        match = _COLLECTIVE.search(line)
        if match is None:
            continue
        groups = parse_groups(line, mesh.devices.size)
        members = sorted(i for g in groups for i in g)
        if match.group(1) != "collective-permute" and members != list(range(mesh.devices.size)):
            raise ValueError(f"groups {groups} do not partition the mesh: {line[:200]}")
        axes = set()
        for group in groups:
            # (mesh axes, group members)
            coords = np.array(np.unravel_index(group, mesh.devices.shape))
            axes.update(name for name, c in zip(mesh.axis_names, coords) if len(set(c)) > 1)
        op_name = re.search(r'op_name="([^"]*)"', line)
        rhs = line.split(" = ", 1)[1]
        result_type = rhs[: _COLLECTIVE.search(rhs).start()].strip()
        found.append(
            Collective(
                match.group(1), frozenset(axes), op_name.group(1) if op_name else "", result_type
            )
        )
    return found
