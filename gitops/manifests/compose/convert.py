"""`gitops convert`: the gitops/v1 manifests a repository's compose stacks become, as YAML, for users who want to
move off compose. The output plans exactly as the compose files do (tests/test_compose_convert.py)."""

from __future__ import annotations

import io
import posixpath
from collections.abc import Sequence

from ruamel.yaml import YAML

from gitops.manifests.compose.document import ComposeDocument
from gitops.manifests.parse import Document

_KIND_ORDER = {"Project": 0, "Host": 1, "Network": 2, "Volume": 3, "Service": 4}


def manifests_yaml(documents: Sequence[Document]) -> str:
    """The documents made from compose files, one YAML document each; paths in them are relative to the folder
    of the compose file they came from, which the header names."""
    made = sorted((d for d in documents if isinstance(d, ComposeDocument)),
                  key=lambda d: (_KIND_ORDER.get(d.kind, 9), d.name))
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    folders = sorted({posixpath.dirname(d.file) or "the repository's top folder" for d in made})
    out = io.StringIO()
    out.write("# gitops/v1 manifests converted from compose files by `gitops convert`.\n")
    out.write(f"# Paths are relative to {', '.join(folders)}: save this file there, then remove the compose files.\n")
    for doc in made:
        out.write("---\n")
        yaml.dump(doc.data, out)
    return out.getvalue()
