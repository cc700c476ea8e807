"""Tests for the optional `images_sha256` source field of the manifest."""

from __future__ import annotations

import json

from binconv.manifest import Manifest, ShardInfo, SourceInfo, manifest_from_json, manifest_to_json


def make_manifest(source: SourceInfo) -> Manifest:
    shard = ShardInfo(
        url="faces-000000.tar", nsamples=2, first_pair=0, size=10240, sha256="ab" * 32
    )
    return Manifest(
        name="faces",
        num_pairs=2,
        num_positive=1,
        num_negative=1,
        pairs_per_shard=500,
        shards=(shard,),
        source=source,
    )


def test_images_sha256_survives_round_trip() -> None:
    source = SourceInfo("pairs.txt", 120, "cd" * 32, kind="pairs", images_sha256="ef" * 32)
    text = manifest_to_json(make_manifest(source))

    assert json.loads(text)["source"]["images_sha256"] == "ef" * 32
    assert manifest_from_json(text, "faces.json").source == source


def test_bin_source_has_no_images_sha256_key() -> None:
    source = SourceInfo("lfw.bin", 120, "cd" * 32, pickle_protocol=3, image_container="bytes")
    data = json.loads(manifest_to_json(make_manifest(source)))

    assert "images_sha256" not in data["source"]
    assert data["source"]["image_container"] == "bytes"


def test_manifest_without_images_sha256_still_parses() -> None:
    source = SourceInfo("lfw.bin", 120, "cd" * 32)
    data = json.loads(manifest_to_json(make_manifest(source)))
    data["source"].pop("images_sha256", None)

    parsed = manifest_from_json(json.dumps(data), "faces.json")

    assert parsed.source.images_sha256 is None
    assert parsed.source == source
