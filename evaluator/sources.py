"""Finding converted datasets from command-line paths: manifests, dataset folders or roots."""

from __future__ import annotations

from binconv.dataset_reader import locate_datasets

__all__ = ["find_datasets"]


def find_datasets(path: str) -> list[str]:
    """Return the datasets at `path`, each as a manifest path or URL.

    Args:
        path: A manifest (`ROOT/lfw/lfw.json`), a dataset folder (`ROOT/lfw`)
            or a root folder whose subfolders are datasets (`ROOT`), as a
            local path or fsspec URL. A folder is a dataset if it contains a
            manifest named after itself.

    Raises:
        ManifestError: `path` is not a manifest, a dataset folder or a root of
            datasets, or a manifest found there is invalid.
        StorageError: `path` could not be listed or read after all retries.
    """
    return [location.manifest_url for location in locate_datasets(path)]
