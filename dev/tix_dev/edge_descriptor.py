"""The step of ``make proto`` that writes the edge's copy of the descriptor set for Kubernetes.

kustomize reads only inside ``k8s/``, so the edge's ConfigMap takes a copy of ``gen/tix.pb``. Envoy's transcoder
needs the types and the HTTP rules, not the comments and source positions that buf reads from ``gen/tix.pb``
(about two thirds of its size), and a ConfigMap past 256 KiB cannot be applied client side (kubectl's
last-applied annotation). So the copy is the same set without ``source_code_info``; deterministic, so the drift
checks hold.

    python -m tix_dev.edge_descriptor gen/tix.pb k8s/base/edge/tix.pb
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import descriptor_pb2


def edge_descriptor(full: bytes) -> bytes:
    """``full`` (a serialized FileDescriptorSet) without source code info."""
    files = descriptor_pb2.FileDescriptorSet.FromString(full)
    for file in files.file:
        file.ClearField("source_code_info")
    return files.SerializeToString(deterministic=True)


def main(argv: list[str] | None = None) -> None:
    source, target = (argv if argv is not None else sys.argv[1:])
    Path(target).write_bytes(edge_descriptor(Path(source).read_bytes()))


if __name__ == "__main__":
    main()
