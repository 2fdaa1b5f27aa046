"""Instance types: abstract names that map onto each cloud, and what each concrete type carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CloudKind = Literal["lambda", "gcp", "aws", "fake"]

# Abstract type -> concrete type per cloud: a type the cloud sells with that GPU model and
# count (checked against GPU_SHAPES by a test). A cloud that has none is left out: the pool
# cannot use that provider with that abstract type, and `config validate` says so. Where the
# Go Navarch's table named a type that does not exist or has other GPUs, it is corrected:
# AWS's one-H100 type is p5.4xlarge, AWS sells no 4x A100 and GCP no A10 (its g2 is an L4).
ABSTRACT_INSTANCE_TYPES: dict[str, dict[str, str]] = {
    "h100-8x": {"lambda": "gpu_8x_h100_sxm5", "gcp": "a3-highgpu-8g", "aws": "p5.48xlarge"},
    "h100-1x": {"lambda": "gpu_1x_h100_pcie", "gcp": "a3-highgpu-1g", "aws": "p5.4xlarge"},
    "a100-8x": {"lambda": "gpu_8x_a100", "gcp": "a2-highgpu-8g", "aws": "p4d.24xlarge"},
    "a100-4x": {"lambda": "gpu_4x_a100", "gcp": "a2-highgpu-4g"},
    "a100-1x": {"lambda": "gpu_1x_a100", "gcp": "a2-highgpu-1g"},
    "a10-1x": {"lambda": "gpu_1x_a10", "aws": "g5.xlarge"},  # AWS's A10 is the A10G
    "l4-1x": {"gcp": "g2-standard-4", "aws": "g6.xlarge"},
}


@dataclass(frozen=True)
class GpuShape:
    """How many GPUs of which model a concrete instance type has."""

    count: int
    model: str


def _range(prefix: str, sizes: dict[str, int], model: str) -> dict[str, GpuShape]:
    return {f"{prefix}{size}": GpuShape(count, model) for size, count in sizes.items()}


GPU_SHAPES: dict[str, GpuShape] = {
    # Lambda Cloud
    "gpu_1x_a10": GpuShape(1, "A10"),
    "gpu_1x_a100": GpuShape(1, "A100"),
    "gpu_1x_a100_sxm4": GpuShape(1, "A100"),
    "gpu_2x_a100": GpuShape(2, "A100"),
    "gpu_4x_a100": GpuShape(4, "A100"),
    "gpu_8x_a100": GpuShape(8, "A100"),
    "gpu_8x_a100_80gb_sxm4": GpuShape(8, "A100-80GB"),
    "gpu_1x_h100_pcie": GpuShape(1, "H100"),
    "gpu_1x_h100_sxm5": GpuShape(1, "H100"),
    "gpu_2x_h100_sxm5": GpuShape(2, "H100"),
    "gpu_4x_h100_sxm5": GpuShape(4, "H100"),
    "gpu_8x_h100_sxm5": GpuShape(8, "H100"),
    "gpu_1x_gh200": GpuShape(1, "GH200"),
    "gpu_8x_b200_sxm6": GpuShape(8, "B200"),
    "gpu_8x_v100": GpuShape(8, "V100"),
    "gpu_1x_a6000": GpuShape(1, "A6000"),
    "gpu_2x_a6000": GpuShape(2, "A6000"),
    "gpu_4x_a6000": GpuShape(4, "A6000"),
    # Google Cloud (accelerators built into the machine type)
    **_range("a3-highgpu-", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}, "H100"),
    "a3-megagpu-8g": GpuShape(8, "H100"),
    "a3-ultragpu-8g": GpuShape(8, "H200"),
    "a4-highgpu-8g": GpuShape(8, "B200"),
    **_range("a2-highgpu-", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}, "A100"),
    "a2-megagpu-16g": GpuShape(16, "A100"),
    **_range("a2-ultragpu-", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}, "A100-80GB"),
    **_range("g2-standard-", {"4": 1, "8": 1, "12": 1, "16": 1, "32": 1}, "L4"),
    "g2-standard-24": GpuShape(2, "L4"),
    "g2-standard-48": GpuShape(4, "L4"),
    "g2-standard-96": GpuShape(8, "L4"),
    # AWS EC2
    "p5.48xlarge": GpuShape(8, "H100"),
    "p5.4xlarge": GpuShape(1, "H100"),
    "p5e.48xlarge": GpuShape(8, "H200"),
    "p5en.48xlarge": GpuShape(8, "H200"),
    "p6-b200.48xlarge": GpuShape(8, "B200"),
    "p4d.24xlarge": GpuShape(8, "A100"),
    "p4de.24xlarge": GpuShape(8, "A100-80GB"),
    **_range("g5.", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}, "A10G"),
    **_range("g5.", {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}, "A10G"),
    **_range("g6.", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}, "L4"),
    **_range("g6.", {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}, "L4"),
    **_range("p3.", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}, "V100"),
    "p3dn.24xlarge": GpuShape(8, "V100"),
    **_range("g4dn.", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}, "T4"),
    "g4dn.12xlarge": GpuShape(4, "T4"),
}


def is_abstract(instance_type: str) -> bool:
    return instance_type in ABSTRACT_INSTANCE_TYPES


def resolve_instance_type(instance_type: str, cloud: str) -> str | None:
    """The concrete type for `cloud`.

    Concrete names pass through unchanged. An abstract name resolves through the table; the
    fake cloud takes any abstract name as it is. None means the cloud has no equivalent.
    """
    mapping = ABSTRACT_INSTANCE_TYPES.get(instance_type)
    if mapping is None or cloud == "fake":
        return instance_type
    return mapping.get(cloud)


def gpu_shape(instance_type: str) -> GpuShape | None:
    """GPU count and model of a concrete type (or of an abstract name), if known."""
    if instance_type in GPU_SHAPES:
        return GPU_SHAPES[instance_type]
    mapping = ABSTRACT_INSTANCE_TYPES.get(instance_type)
    if mapping is None:
        return None
    for concrete in mapping.values():
        if concrete in GPU_SHAPES:
            return GPU_SHAPES[concrete]
    return None


# GCE accelerator type names -> the model as NVML names it (the part a GPU's name contains).
_GCP_ACCELERATORS = {
    "nvidia-tesla-t4": "T4", "nvidia-tesla-v100": "V100", "nvidia-tesla-p100": "P100",
    "nvidia-tesla-p4": "P4", "nvidia-tesla-k80": "K80", "nvidia-tesla-a100": "A100",
    "nvidia-a100-80gb": "A100-80GB", "nvidia-h100-80gb": "H100", "nvidia-h100-mega-80gb": "H100",
    "nvidia-h200-141gb": "H200", "nvidia-b200": "B200", "nvidia-l4": "L4",
}


def gcp_accelerator_model(accelerator_type: str) -> str:
    """`nvidia-tesla-t4` -> `T4`; an unknown name keeps its last word, upper-cased."""
    name = accelerator_type.rsplit("/", 1)[-1]
    return _GCP_ACCELERATORS.get(name) or name.removeprefix("nvidia-").removeprefix(
        "tesla-").split("-")[0].upper()
