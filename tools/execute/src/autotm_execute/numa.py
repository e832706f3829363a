"""Binding memory to a NUMA node with the mbind/get_mempolicy system calls, without libnuma.

CXL memory expanders and the other socket's DRAM appear to Linux as NUMA nodes; a slow tier
there is anonymous memory whose pages the kernel must place on that node. libnuma is often
absent from containers, and numactl would bind the whole process (kernels and fast tier too),
so the pool alone is bound here through the raw system calls via ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from pathlib import Path

from autotm_schemas import BadInputError

NODE_ROOT = Path("/sys/devices/system/node")

_MPOL_BIND = 2
_MPOL_MF_STRICT = 1 << 0
_MPOL_MF_MOVE = 1 << 1
_MPOL_F_NODE = 1 << 0
_MPOL_F_ADDR = 1 << 1

# (mbind, get_mempolicy) system call numbers per architecture.
_SYSCALLS = {
    "x86_64": (237, 239),
    "aarch64": (235, 236),
    "ppc64le": (259, 260),
    "s390x": (268, 269),
    "riscv64": (235, 236),
}


def available_nodes(root: Path = NODE_ROOT) -> list[int]:
    """NUMA nodes the kernel exposes (node0, node1, ...); empty where sysfs has none."""
    if not root.is_dir():
        return []
    nodes = []
    for entry in root.iterdir():
        if entry.name.startswith("node") and entry.name[4:].isdigit():
            nodes.append(int(entry.name[4:]))
    return sorted(nodes)


def node_meminfo(node: int, root: Path = NODE_ROOT) -> dict[str, int]:
    """``MemTotal``/``MemFree``/... of one node, in bytes."""
    info: dict[str, int] = {}
    path = root / f"node{node}" / "meminfo"
    for line in path.read_text().splitlines():
        # "Node 0 MemFree:         4709368 kB"
        parts = line.split()
        if len(parts) >= 4 and parts[2].endswith(":"):
            scale = 1024 if parts[-1] == "kB" else 1
            info[parts[2][:-1]] = int(parts[3]) * scale
    return info


def check_node(node: int, nbytes: int, root: Path = NODE_ROOT) -> dict[str, int]:
    """Refuse a node that does not exist or has too little free memory; return its meminfo."""
    nodes = available_nodes(root)
    if node not in nodes:
        raise BadInputError(
            f"--slow-numa-node {node}: expected an existing NUMA node; this machine has "
            f"{['node' + str(n) for n in nodes] or 'no NUMA nodes in ' + str(root)}"
        )
    info = node_meminfo(node, root)
    free = info.get("MemFree")
    if free is not None and nbytes > free:
        raise BadInputError(
            f"--slow-numa-node {node}: the slow pool needs {nbytes} bytes, the node has {free} "
            "bytes free"
        )
    return info


def _syscall_numbers() -> tuple[int, int]:
    machine = platform.machine()
    try:
        return _SYSCALLS[machine]
    except KeyError:
        raise BadInputError(
            f"--slow-numa-node: binding memory is not supported on {machine}; known: "
            f"{sorted(_SYSCALLS)}"
        ) from None


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def bind(address: int, nbytes: int, node: int) -> None:
    """Bind [address, address + nbytes) to ``node`` (MPOL_BIND, strict, moving touched pages)."""
    if nbytes == 0:
        return
    mbind_nr, _ = _syscall_numbers()
    words = node // 64 + 1
    mask = (ctypes.c_ulong * words)()
    mask[node // 64] = 1 << (node % 64)
    result = _libc().syscall(
        ctypes.c_long(mbind_nr),
        ctypes.c_void_p(address),
        ctypes.c_ulong(nbytes),
        ctypes.c_int(_MPOL_BIND),
        mask,
        ctypes.c_ulong(words * 64 + 1),
        ctypes.c_uint(_MPOL_MF_STRICT | _MPOL_MF_MOVE),
    )
    if result != 0:
        code = ctypes.get_errno()
        hint = " (the container may lack CAP_SYS_NICE)" if code == errno.EPERM else ""
        raise BadInputError(f"--slow-numa-node {node}: mbind failed: {os.strerror(code)}{hint}")


def node_of(address: int) -> int:
    """The node holding the (touched) page at ``address``; -1 when the kernel cannot say."""
    _, get_nr = _syscall_numbers()
    node = ctypes.c_int(-1)
    result = _libc().syscall(
        ctypes.c_long(get_nr),
        ctypes.byref(node),
        None,
        ctypes.c_ulong(0),
        ctypes.c_void_p(address),
        ctypes.c_ulong(_MPOL_F_NODE | _MPOL_F_ADDR),
    )
    return int(node.value) if result == 0 else -1
