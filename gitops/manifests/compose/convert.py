"""`gitops convert`: the gitops/v1 manifests a repository's compose stacks become, as YAML, for users who want to
move off compose. The output plans exactly as the compose files do (tests/test_compose_convert.py)."""

from __future__ import annotations

import io
import posixpath
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML

from gitops.manifests.compose.document import ComposeDocument
from gitops.manifests.parse import Document

_KIND_ORDER = {"Project": 0, "Host": 1, "Network": 2, "Volume": 3, "Service": 4}


def manifests_yaml(documents: Sequence[Document]) -> str:
    """The documents made from compose files, one YAML document each, with repository paths made relative to
    the repository's top folder (stacks may live in several folders), where the header says to save them."""
    made = sorted((d for d in documents if isinstance(d, ComposeDocument)),
                  key=lambda d: (_KIND_ORDER.get(d.kind, 9), d.name))
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    out.write("# gitops/v1 manifests converted from compose files by `gitops convert`.\n")
    out.write("# Save this file in the repository's top folder (paths below are relative to it), remove the compose\n"
              "# files, and remove spec.compose from the Project manifest if it lists them.\n")
    for doc in made:
        out.write("---\n")
        yaml.dump(_from_top(doc), out)
    return out.getvalue()


def _from_top(doc: ComposeDocument) -> dict[str, Any]:
    """The document with the repository files it names relative to the top folder, not its compose file's."""
    folder = posixpath.dirname(doc.file)
    spec = doc.data.get("spec") or {}
    if not folder or doc.kind != "Service" or not spec.get("files"):
        return doc.data
    files = [{**item, "source": posixpath.normpath(posixpath.join(folder, item["source"]))} for item in spec["files"]]
    return {**doc.data, "spec": {**spec, "files": files}}
