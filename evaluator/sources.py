"""Finding converted datasets from command-line paths: manifests, dataset folders or roots."""

from __future__ import annotations

import posixpath

from binconv.errors import ManifestError
from binconv.format import manifest_name
from binconv.storage import file_size, join_url, list_folder, url_to_fs

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
        StorageError: `path` could not be listed or read after all retries.
    """
    stripped = path.rstrip("/") or path
    if stripped.endswith(".json"):
        return [stripped]
    folder = url_to_fs(stripped)[1]
    own_manifest = join_url(stripped, manifest_name(posixpath.basename(folder.rstrip("/"))))
    if file_size(own_manifest) is not None:
        return [own_manifest]
    try:
        # list_folder and file_size retry network errors and raise StorageError
        # when they persist, so an unreachable server is one error line.
        entries = list_folder(stripped)
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: not found; pass a dataset manifest, a dataset folder written by "
            "'binconv convert', or a folder of such datasets"
        ) from None
    found = []
    for name, _ in entries:
        manifest = join_url(join_url(stripped, name), manifest_name(name))
        if file_size(manifest) is not None:
            found.append(manifest)
    if not found:
        raise ManifestError(
            f"{path}: no converted datasets found (looked for NAME/NAME.json in each subfolder); "
            "convert .bin files first with 'binconv convert'"
        )
    return found
