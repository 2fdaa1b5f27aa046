from __future__ import annotations

import pytest

from navarch.config.instance_types import (
    ABSTRACT_INSTANCE_TYPES,
    GpuShape,
    gpu_shape,
    resolve_instance_type,
)


@pytest.mark.parametrize(
    ("abstract", "cloud", "concrete"),
    [
        ("h100-8x", "lambda", "gpu_8x_h100_sxm5"), ("h100-8x", "gcp", "a3-highgpu-8g"),
        ("h100-8x", "aws", "p5.48xlarge"), ("h100-1x", "lambda", "gpu_1x_h100_pcie"),
        ("h100-1x", "gcp", "a3-highgpu-1g"), ("h100-1x", "aws", "p5.4xlarge"),
        ("a100-8x", "lambda", "gpu_8x_a100"), ("a100-8x", "gcp", "a2-highgpu-8g"),
        ("a100-8x", "aws", "p4d.24xlarge"), ("a100-4x", "lambda", "gpu_4x_a100"),
        ("a100-4x", "gcp", "a2-highgpu-4g"), ("a100-4x", "aws", None),
        ("a100-1x", "lambda", "gpu_1x_a100"), ("a100-1x", "gcp", "a2-highgpu-1g"),
        ("a100-1x", "aws", None), ("a10-1x", "lambda", "gpu_1x_a10"),
        ("a10-1x", "gcp", None), ("a10-1x", "aws", "g5.xlarge"),
        ("l4-1x", "lambda", None), ("l4-1x", "gcp", "g2-standard-4"), ("l4-1x", "aws", "g6.xlarge"),
        ("h100-8x", "fake", "h100-8x"), ("gpu_8x_h100_sxm5", "aws", "gpu_8x_h100_sxm5"),
        ("my-custom-type", "gcp", "my-custom-type"),
    ],
)
def test_abstract_types_map_per_cloud_and_unknown_names_pass_through(abstract, cloud, concrete):
    assert resolve_instance_type(abstract, cloud) == concrete


@pytest.mark.parametrize("abstract", sorted(ABSTRACT_INSTANCE_TYPES))
def test_every_abstract_type_maps_to_a_real_type_with_its_gpus(abstract):
    """`h100-8x` means eight H100s on every cloud it maps to: the concrete type is one we
    know, with that count and model (A10G is AWS's A10, A100-80GB an A100)."""
    model, count = abstract.split("-")[0].upper(), int(abstract.split("-")[1].rstrip("x"))
    for cloud, concrete in ABSTRACT_INSTANCE_TYPES[abstract].items():
        shape = gpu_shape(concrete)
        assert shape is not None, f"{abstract} on {cloud}: {concrete} is not a known type"
        assert shape.count == count, f"{abstract} on {cloud}: {concrete} has {shape.count}"
        assert shape.model.split("-")[0] in (model, model + "G"), (
            f"{abstract} on {cloud}: {concrete} carries {shape.model}")


def test_gpu_shapes():
    assert gpu_shape("p5.48xlarge") == GpuShape(8, "H100")
    assert gpu_shape("a2-highgpu-4g").count == 4  # type: ignore[union-attr]
    assert gpu_shape("g2-standard-48").model == "L4"  # type: ignore[union-attr]
    assert gpu_shape("h100-8x").count == 8  # type: ignore[union-attr]
    assert gpu_shape("unknown") is None
