"""Tests of the checks that reject damaged or hostile dataset manifests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from binconv.errors import ManifestError
from binconv.manifest import Manifest, ShardInfo, SourceInfo, manifest_from_json, manifest_to_json


def manifest_data() -> dict[str, Any]:
    shards = tuple(
        ShardInfo(f"faces-00000{i}.tar", nsamples=2, first_pair=2 * i, size=10240, sha256="ab" * 32)
        for i in range(2)
    )
    manifest = Manifest(
        name="faces",
        num_pairs=4,
        num_positive=2,
        num_negative=2,
        pairs_per_shard=2,
        shards=shards,
        source=SourceInfo("faces.bin", 120, "cd" * 32),
    )
    data: dict[str, Any] = json.loads(manifest_to_json(manifest))
    return data


def test_manifest_accepts_plain_shard_names() -> None:
    manifest = manifest_from_json(json.dumps(manifest_data()), "faces.json")

    assert [shard.url for shard in manifest.shards] == ["faces-000000.tar", "faces-000001.tar"]


@pytest.mark.parametrize(
    "url",
    [
        "/etc/passwd",
        "../other/faces-000000.tar",
        "sub/faces-000000.tar",
        "..\\x.tar",
        "http://127.0.0.1:9/faces-000000.tar",
        "",
        "..",
    ],
    ids=["absolute", "parent", "subfolder", "backslash", "url", "empty", "dotdot"],
)
def test_manifest_rejects_shard_outside_folder(url: str) -> None:
    data = manifest_data()
    data["shardlist"][1]["url"] = url

    with pytest.raises(ManifestError, match=r"faces\.json: shard url .* is not a file name"):
        manifest_from_json(json.dumps(data), "faces.json")


def test_manifest_rejects_empty_shard_list() -> None:
    data = manifest_data()
    data.update(shardlist=[], num_pairs=0, num_positive=0, num_negative=0)

    with pytest.raises(ManifestError, match=r"faces\.json: the manifest lists no shards"):
        manifest_from_json(json.dumps(data), "faces.json")


@pytest.mark.parametrize("value", ["4", 4.0, True, None])
def test_manifest_rejects_non_integer_count(value: object) -> None:
    data = manifest_data()
    data["num_pairs"] = value

    with pytest.raises(ManifestError, match=r"num_pairs is .*expected an integer"):
        manifest_from_json(json.dumps(data), "faces.json")


@pytest.mark.parametrize(("key", "value"), [("nsamples", "2"), ("size", 10240.0), ("url", 7)])
def test_manifest_rejects_mistyped_shard_field(key: str, value: object) -> None:
    data = manifest_data()
    data["shardlist"][1][key] = value

    with pytest.raises(ManifestError, match=rf"{key} is"):
        manifest_from_json(json.dumps(data), "faces.json")
