"""Finding converted datasets from command-line paths: manifests, dataset folders or roots."""

from __future__ import annotations

import posixpath

from binconv.errors import ManifestError
from binconv.format import manifest_name
from binconv.storage import join_url, url_to_fs

__all__ = ["find_datasets"]


def find_datasets(path: str) -> list[str]:
    """Return the datasets at `path`, each as a manifest path or URL.

    Args:
        path: A manifest (`ROOT/lfw/lfw.json`), a dataset folder (`ROOT/lfw`)
            or a root folder whose subfolders are datasets (`ROOT`), as a
            local path or fsspec URL. A folder is a dataset if it contains a
            manifest named after itself.

    Raises:
        ManifestError: `path` is not a manifest, a dataset folder or a root of datasets.
    """
    stripped = path.rstrip("/") or path
    if stripped.endswith(".json"):
        return [stripped]
    fs, folder = url_to_fs(stripped)
    own_manifest = join_url(stripped, manifest_name(posixpath.basename(folder.rstrip("/"))))
    if fs.isfile(url_to_fs(own_manifest)[1]):
        return [own_manifest]
    if not fs.isdir(folder):
        raise ManifestError(
            f"{path}: not found; pass a dataset manifest, a dataset folder written by "
            "'binconv convert', or a folder of such datasets"
        )
    found = []
    for child in sorted(fs.ls(folder, detail=False)):
        name = posixpath.basename(child.rstrip("/"))
        manifest = join_url(join_url(stripped, name), manifest_name(name))
        if fs.isfile(url_to_fs(manifest)[1]):
            found.append(manifest)
    if not found:
        raise ManifestError(
            f"{path}: no converted datasets found (looked for NAME/NAME.json in each subfolder); "
            "convert .bin files first with 'binconv convert'"
        )
    return found
