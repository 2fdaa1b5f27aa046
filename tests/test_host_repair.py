"""A real host's repairs, as tables: when a GPU reset may run and what it runs (a fabric
machine resets every GPU together), how a reset command's failure is reported, the boot id,
and the agent's reset and reboot activities over the fake world's GPUs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from navarch.agent import host_repair
from navarch.agent.activities import AgentActivities
from navarch.agent.fake_backend import FakeGpuBackend
from navarch.contracts.agent import RebootHostInput, ResetGpuInput
from navarch.sim.fakeworld import FakeWorld

# (name, wanted, busy, fabric, vgpu, tool, root, gpus planned, refusal contains)
PLANS = [
    ("one idle GPU", [2], {}, False, [], "nvidia-smi", True, [2], ""),
    ("the GPU's neighbours may stay busy", [2], {0: [11]}, False, [], "nvidia-smi", True, [2],
     ""),
    ("a fabric machine resets all together", [2], {}, True, [], "nvidia-smi", True,
     list(range(8)), ""),
    ("on a fabric, a busy neighbour refuses", [2], {5: [11]}, True, [], "nvidia-smi", True, [],
     "GPU 5: pid 11"),
    ("work on the GPU refuses", [2], {2: [11, 12]}, False, [], "nvidia-smi", True, [],
     "GPU 2: pid 11, 12"),
    ("no nvidia-smi", [2], {}, False, [], None, True, [], "not installed"),
    ("not root", [2], {}, False, [], "nvidia-smi", False, [], "needs root"),
    ("a vGPU", [2], {}, False, [2], "nvidia-smi", True, [], "vGPU"),
    ("no such GPU", [9], {}, False, [], "nvidia-smi", True, [], "no GPU 9"),
    ("every GPU", [], {}, False, [], "nvidia-smi", True, list(range(8)), ""),
]


@pytest.mark.parametrize(("wanted", "busy", "fabric", "vgpu", "tool", "root", "gpus", "refusal"),
                         [p[1:] for p in PLANS], ids=[p[0] for p in PLANS])
def test_a_reset_runs_only_when_it_can_work(wanted, busy, fabric, vgpu, tool, root, gpus,
                                            refusal):
    plan = host_repair.plan_reset(wanted, 8, busy, fabric=fabric, vgpu=vgpu, tool=tool,
                                  root=root)
    assert plan.gpus == gpus
    assert (refusal in plan.refusal) if refusal else plan.refusal == ""


def test_the_reset_commands_and_their_failure():
    single = host_repair.ResetPlan([1, 3], together=False)
    assert host_repair.reset_argv(single) == [["nvidia-smi", "--gpu-reset", "-i", "1"],
                                              ["nvidia-smi", "--gpu-reset", "-i", "3"]]
    assert host_repair.reset_argv(host_repair.ResetPlan([0, 1], together=True)) == [
        ["nvidia-smi", "--gpu-reset"]]
    ran: list[list[str]] = []

    def fails_second(argv, **_):
        ran.append(argv)
        code = 0 if len(ran) == 1 else 255
        return subprocess.CompletedProcess(argv, code, "GPU 00000000:18:00.0 was reset.\n",
                                           "" if code == 0 else "In use by another client\n")

    done, said = host_repair.run_reset(single, run=fails_second)
    assert not done and "exited 255: " in said and "In use by another client" in said
    assert len(ran) == 2


def test_the_boot_id(tmp_path: Path):
    path = tmp_path / "boot_id"
    path.write_text("3f6c1b0e-7d8a-4c5e-9a1b-2c3d4e5f6a7b\n")
    assert host_repair.boot_id(path) == "3f6c1b0e-7d8a-4c5e-9a1b-2c3d4e5f6a7b"
    assert host_repair.boot_id(tmp_path / "absent") == ""


async def test_the_agents_reset_heals_what_a_reset_heals_and_never_touches_busy_gpus(tmp_path):
    world = FakeWorld(tmp_path / "world.db")
    world.provision(node_id="n", pool="p", provider="sim", instance_type="h100-8x",
                    region="local", zone="", gpu_count=8, gpu_model="H100")
    world.boot_due()
    agent = AgentActivities(FakeGpuBackend(world, "n", 8, "H100"))
    world.inject("n", "xid", gpu_index=2, value=119)  # RESET_GPU: a reset heals it
    world.inject("n", "xid", gpu_index=2, value=151)  # RESTART_VM: needs the machine restarted
    world.inject("n", "xid", gpu_index=3, value=119)  # another GPU: not reset, kept
    world.add_process("n", 5, gpu_index=2)
    env = ActivityEnvironment()
    busy = await env.run(agent.reset_gpu, ResetGpuInput(node_id="n", gpus=[2]))
    assert (busy.outcome, busy.detail) == ("refused", "processes still hold the GPU: GPU 2: pid 5")
    assert len(world.faults("n")) == 3  # nothing touched
    world.remove_process("n")
    done = await env.run(agent.reset_gpu, ResetGpuInput(node_id="n", gpus=[2]))
    assert (done.outcome, done.gpus) == ("reset", [2])
    assert sorted((f.gpu_index, f.value) for f in world.faults("n")) == [(2, 151.0), (3, 119.0)]
    assert world.counter("gpu_resets") == 1
    rebooted = await env.run(agent.reboot_host, RebootHostInput(node_id="n", delay_seconds=0))
    assert rebooted == "simulated systemctl reboot"
    inst = world.get_by_node("n")
    assert inst is not None and inst.state == "pending"
    assert sorted((f.gpu_index, f.value) for f in world.faults("n")) == []  # both healed

