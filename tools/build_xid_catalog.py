"""Build navarch/data/xid_catalog.csv from the shared Xid catalog (facts only).

Usage: python tools/build_xid_catalog.py ../shared/data/xid-catalog.csv

Takes from the catalog the facts (code, mnemonic, category, NVIDIA's immediate action,
fatal yes/no/conditional) and writes Navarch's own short summary and verdict for each code.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "navarch" / "data" / "xid_catalog.csv"

# Our own words for the codes operators meet most often.
SUMMARIES = {
    8: "A GPU channel stopped making progress and timed out; usually the application.",
    11: "The GPU was handed an invalid command stream; restart the application.",
    13: "A kernel faulted in the graphics/compute engine (bad address, illegal instruction); "
    "almost always the application, occasionally hardware if it repeats on one GPU.",
    14: "An error injected on purpose from user space (testing); nothing to do.",
    25: "The GPU was sent an illegal command stream; restart the application.",
    31: "A GPU memory page fault: a kernel touched an address it does not own. "
    "Normally an application bug; repeated on one GPU, check the hardware.",
    32: "The GPU's DMA engine received a corrupted command stream, most often because of "
    "PCIe signal quality.",
    43: "The driver stopped a channel after an application fault; the GPU itself is fine.",
    44: "The graphics engine faulted while switching contexts; recorded only.",
    45: "The driver tore down a channel, normally after another error. On its own it points at "
    "Fabric Manager; next to another Xid, that other Xid decides.",
    46: "The GPU stopped processing and did not recover: reset the GPU.",
    48: "An uncorrectable (double-bit) ECC error in GPU memory. The GPU must be reset so the "
    "bad row can be remapped; if it recurs, replace the GPU.",
    54: "The board runs without its auxiliary power connected, with clocks held down; "
    "a cabling problem for the provider.",
    61: "An internal micro-controller reported a breakpoint or warning.",
    62: "An internal micro-controller (PMU) halted; the GPU needs a reset.",
    63: "A memory row was remapped or a page retired after ECC errors; recorded, "
    "the GPU keeps working.",
    64: "Remapping a failing memory row did not succeed; the GPU needs a reset and, "
    "if it repeats, replacement.",
    69: "The graphics engine rejected a command class; application-level.",
    74: "An NVLink connection between GPUs or to an NVSwitch failed; may be caused by the "
    "other end of the link. Reset the GPU or reboot the node.",
    78: "A vGPU failed to start; update the driver or firmware.",
    79: "The GPU dropped off the PCIe bus and no longer answers. The node must be rebooted, "
    "and replaced if it happens again.",
    80: "Data sent to the GPU arrived corrupted (push-buffer CRC mismatch).",
    92: "The rate of corrected (single-bit) ECC errors is high; recorded.",
    93: "The InfoROM's provisioned wear limit was exceeded; recorded.",
    94: "An uncorrectable memory error was contained to the application that hit it; "
    "restart that application, the GPU keeps running.",
    95: "An uncorrectable memory error could not be contained and may affect every process "
    "on the GPU; reset the GPU.",
    109: "A context switch timed out; the GPU needs a reset.",
    110: "The GPU raised a security fault, which is rare without a hardware failure.",
    119: "The GPU System Processor (GSP) stopped answering the driver's calls; "
    "reset the GPU.",
    120: "The GPU System Processor (GSP) reported an error; reset the GPU.",
    121: "Corrected errors on the chip-to-chip link to the Grace CPU; no impact.",
    136: "An NVLink failed to train; reset the GPU.",
    137: "An illegal peer-to-peer access over NVLink, usually an application bug.",
    140: "An uncorrectable ECC error escaped: the pages could not be retired or remapped. "
    "Reset the GPU.",
    143: "The GPU failed to initialise; reset it.",
    151: "Key rotation failed in confidential-computing mode; restart the VM.",
    154: "The driver changed the GPU's required recovery action (none, drain peer-to-peer, "
    "drain and reset, GPU reset, node reboot); the message says which.",
    155: "An NVLink was taken down on purpose by software (including sleep); reset the GPU.",
    156: "A GPU resource was retired; reset the GPU.",
    157: "No more repairs are possible for a resource; the Xid may recur.",
    158: "The GPU hit a fatal timeout; reset it.",
    167: "A fatal PCIe timeout; reboot the node, replace it if it recurs.",
    169: "The SEC2 micro-controller halted; reset the GPU or reboot.",
    171: "An uncorrectable error in GPU DRAM (accompanies Xid 48); handle as Xid 48.",
    172: "An uncorrectable error in on-chip SRAM (accompanies Xid 48); handle as Xid 48.",
}

CATEGORY_SUMMARIES = {
    "unused_on_ampere_plus": "Legacy code that Ampere and newer GPUs do not raise; "
    "on one of them it is unexpected and worth investigating.",
    "engine_exception": "The {engine} engine raised an exception; the application using it "
    "should restart, the GPU stays in service.",
    "driver_firmware": "A driver or firmware condition ({name}); recorded.",
    "nvlink_c2c_interconnect": "An NVLink / chip-to-chip interconnect error ({name}).",
    "power": "A power-delivery condition ({name}).",
    "confidential_computing": "A confidential-computing condition ({name}); only in CC mode.",
    "memory_ecc": "A GPU memory condition ({name}).",
    "informational": "Informational ({name}); recorded.",
    "gpu_hardware_or_firmware": "A GPU hardware or firmware failure ({name}); reset the GPU.",
    "pcie_bus": "A PCIe bus condition ({name}).",
    "application": "An application-level fault ({name}).",
    "inforom_firmware": "An InfoROM condition ({name}).",
}


def engine_of(mnemonic: str) -> str:
    m = re.search(r"ROBUST_CHANNEL_([A-Z]+\d*)_ERROR", mnemonic)
    return m.group(1) if m else mnemonic.split("/")[0].strip()


def verdict_of(fatal: str) -> str:
    if fatal == "yes":
        return "unhealthy"
    if fatal == "conditional":
        return "conditional"
    return "degraded"


def main(src: str) -> None:
    with open(src, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "category", "nvidia_action", "fatal", "verdict", "summary"])
        for r in rows:
            code = int(r["code"])
            name = r["mnemonic"].split("/")[0].strip()
            summary = SUMMARIES.get(code) or CATEGORY_SUMMARIES[r["category"]].format(
                engine=engine_of(r["mnemonic"]), name=name.lower().replace("_", " ")
            )
            w.writerow([
                code, name, r["category"], r["nvidia_immediate_action"] or "NONE_GIVEN",
                r["fatal"], verdict_of(r["fatal"]), summary,
            ])
    print(f"wrote {len(rows)} codes to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/xid-catalog.csv")
