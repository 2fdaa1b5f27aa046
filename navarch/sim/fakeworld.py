"""The fake cloud's world: instances, injected GPU faults and GPU processes, in SQLite.

Shared by the fake cloud provider (control-plane activities), the simulated GPU hosts
(agent side) and the operator's fault-injection commands, possibly in different processes.
Kept in a file so a worker restart forgets nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from navarch.health.xid import lookup

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    provider TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    zone TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    boot_at REAL NOT NULL,
    gpu_count INTEGER NOT NULL,
    gpu_model TEXT NOT NULL,
    agent_enabled INTEGER NOT NULL DEFAULT 1,
    never_boot INTEGER NOT NULL DEFAULT 0,
    terminated_at REAL,
    cluster TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS instances_pool ON instances(pool, state);
CREATE TABLE IF NOT EXISTS gpu_faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    gpu_index INTEGER NOT NULL DEFAULT 0,
    value REAL,
    message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS gpu_faults_node ON gpu_faults(node_id);
CREATE TABLE IF NOT EXISTS gpu_processes (
    node_id TEXT NOT NULL,
    gpu_index INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (node_id, pid)
);
CREATE TABLE IF NOT EXISTS cloud_faults (
    kind TEXT PRIMARY KEY,
    remaining INTEGER NOT NULL,
    params TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cold_starts (node_id TEXT PRIMARY KEY, seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prices (provider TEXT PRIMARY KEY, per_hour REAL NOT NULL);
"""

GPU_FAULT_KINDS = (
    "xid", "temperature", "ecc_dbe", "ecc_sbe", "nvlink", "nvml_failure", "pcie", "power",
)
CLOUD_FAULT_KINDS = ("capacity", "throttle", "unavailable", "invalid", "slow_boot",
                     "never_boot", "no_reboot", "reboot_hang")
# Reboots: `no_reboot` — the cloud has no reboot call for this machine (the agent reboots
# it instead); `reboot_hang` — the machine never comes back from its reboot.
DEFAULT_REBOOT_SECONDS = 1.0


@dataclass(frozen=True)
class FakeInstance:
    instance_id: str
    node_id: str
    pool: str
    provider: str
    instance_type: str
    region: str
    zone: str
    state: str
    created_at: float
    boot_at: float
    gpu_count: int
    gpu_model: str
    agent_enabled: bool
    never_boot: bool
    cluster: str = ""  # the installation tag


@dataclass(frozen=True)
class GpuFault:
    id: int
    node_id: str
    kind: str
    gpu_index: int
    value: float | None
    message: str
    created_at: float = 0.0  # when it was injected (epoch seconds): the event's time


@dataclass(frozen=True)
class GpuProcess:
    node_id: str
    gpu_index: int
    pid: int
    name: str


@dataclass(frozen=True)
class WorldSnapshot:
    """The live machines with their faults and processes, read in one transaction."""

    instances: list[FakeInstance]
    faults: dict[str, list[GpuFault]]
    processes: dict[str, list[GpuProcess]]


class CloudFault(Exception):
    """An injected cloud failure; `kind` is one of CLOUD_FAULT_KINDS."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Deferred(Exception):
    """A cloud fault decided inside a transaction, raised as CloudFault once it commits."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class FakeWorld:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(instances)")}
            if "cluster" not in columns:  # a world file from before installation tags
                db.execute("ALTER TABLE instances ADD COLUMN cluster TEXT NOT NULL DEFAULT ''")
        finally:
            db.close()

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                db.execute("PRAGMA busy_timeout=30000")
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except _Deferred as refusal:
                db.execute("COMMIT")
                raise CloudFault(refusal.kind, str(refusal)) from None
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                db.close()

    # ------------------------------------------------------------------ instances

    def provision(
        self, *, node_id: str, pool: str, provider: str, instance_type: str, region: str,
        zone: str, gpu_count: int, gpu_model: str, boot_seconds: float = 0.0,
        cluster: str = "",
    ) -> FakeInstance:
        """Create the machine for `node_id`, or return the one already made for it."""
        with self._conn() as db:
            existing = db.execute("SELECT * FROM instances WHERE node_id=?", (node_id,)).fetchone()
            if existing is not None:
                return _instance(existing)
            where = {"provider": provider, "region": region, "zone": zone}
            refused = next((k for k in ("invalid", "capacity", "throttle", "unavailable")
                            if self._take_cloud_fault(db, k, where) is not None), None)
            if refused is not None:  # raised after the commit, so the fault is used up
                return self._refuse(refused, provider, region)
            slow = self._take_cloud_fault(db, "slow_boot", where)
            never = self._take_cloud_fault(db, "never_boot", where) is not None
            cold = db.execute("SELECT seconds FROM cold_starts WHERE node_id=?",
                              (node_id,)).fetchone()
            if cold is not None:
                boot_seconds = float(cold[0])
            else:
                setting = self._setting(db, "boot_seconds")
                boot_seconds = float(setting) if setting is not None else boot_seconds
            now = time.time()
            boot_at = now + boot_seconds + (float(slow.get("seconds", 30)) if slow else 0.0)
            instance_id = f"fake-{node_id}"
            db.execute(
                "INSERT INTO instances (instance_id, node_id, pool, provider, instance_type, "
                "region, zone, state, created_at, boot_at, gpu_count, gpu_model, never_boot, "
                "cluster) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (instance_id, node_id, pool, provider, instance_type, region, zone, "pending",
                 now, boot_at, gpu_count, gpu_model, int(never), cluster),
            )
            db.execute("INSERT INTO counters VALUES ('provisioned', 1) "
                       "ON CONFLICT(name) DO UPDATE SET value = value + 1")
            row = db.execute("SELECT * FROM instances WHERE node_id=?", (node_id,)).fetchone()
            return _instance(row)

    @staticmethod
    def _refuse(kind: str, provider: str, region: str) -> FakeInstance:
        raise _Deferred(kind, f"injected {kind} fault ({provider}/{region})")

    def terminate(self, instance_id: str) -> bool:
        """Terminate; False if there was no such live instance (which callers treat as done)."""
        with self._conn() as db:
            cur = db.execute(
                "UPDATE instances SET state='terminated', terminated_at=? "
                "WHERE instance_id=? AND state != 'terminated'", (time.time(), instance_id),
            )
            return cur.rowcount > 0

    def reboot(self, instance_id: str, seconds: float | None = None, *,
               through_cloud: bool = True) -> bool:
        """Restart a live machine: it is pending again and boots in `seconds` (None: the
        world's reboot time), its GPU processes are gone, and so are its GPU faults but those
        a reboot does not heal (hardware). False when there is no such live machine. A
        `no_reboot` cloud fault refuses a reboot through the cloud; `reboot_hang` keeps the
        machine from coming back."""
        with self._conn() as db:
            row = db.execute("SELECT node_id, provider, region, zone FROM instances WHERE "
                             "instance_id=? AND state != 'terminated'", (instance_id,)).fetchone()
            if row is None:
                return False
            node_id, where = row[0], {"provider": row[1], "region": row[2], "zone": row[3]}
            if through_cloud and self._take_cloud_fault(db, "no_reboot", where) is not None:
                raise _Deferred("invalid", f"{instance_id}: this cloud has no reboot call")
            hang = self._take_cloud_fault(db, "reboot_hang", where) is not None
            if seconds is None:
                setting = self._setting(db, "reboot_seconds")
                seconds = float(setting) if setting is not None else DEFAULT_REBOOT_SECONDS
            db.execute("UPDATE instances SET state='pending', boot_at=?, never_boot=? "
                       "WHERE instance_id=?", (time.time() + seconds, int(hang), instance_id))
            db.execute("DELETE FROM gpu_processes WHERE node_id=?", (node_id,))
            self._heal(db, node_id, [], survives_reboot)
            db.execute("INSERT INTO counters VALUES ('reboots', 1) "
                       "ON CONFLICT(name) DO UPDATE SET value = value + 1")
        return True

    def reset_gpus(self, node_id: str, gpus: list[int]) -> str:
        """Reset GPUs of a live machine (empty: all): the faults a reset heals on them are
        gone. Refused ("" when done) while a process holds one of them."""
        with self._conn() as db:
            held = db.execute("SELECT gpu_index, pid FROM gpu_processes WHERE node_id=?",
                              (node_id,)).fetchall()
            busy = sorted({(g, p) for g, p in held if not gpus or g in gpus})
            if busy:
                return "processes still hold the GPU: " + "; ".join(
                    f"GPU {g}: pid {p}" for g, p in busy)
            self._heal(db, node_id, gpus, survives_reset)
            db.execute("INSERT INTO counters VALUES ('gpu_resets', 1) "
                       "ON CONFLICT(name) DO UPDATE SET value = value + 1")
        return ""

    def set_reboot_seconds(self, seconds: float) -> None:
        """How long a machine of this world takes to come back from a reboot."""
        self._set("reboot_seconds", str(max(0.0, seconds)))

    def set_boot_seconds(self, seconds: float) -> None:
        """How long every machine made from now on takes to boot (a cold start), whatever
        its provider's usual time; a node's own cold start still wins."""
        self._set("boot_seconds", str(max(0.0, seconds)))

    def set_diagnostic_seconds(self, seconds: float) -> None:
        """How long a simulated diagnostic runs before it answers."""
        self._set("diagnostic_seconds", str(max(0.0, seconds)))

    def diagnostic_seconds(self) -> float:
        with self._conn() as db:
            value = self._setting(db, "diagnostic_seconds")
        return float(value) if value is not None else 0.0

    def _set(self, name: str, value: str) -> None:
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, value))

    @staticmethod
    def _setting(db: sqlite3.Connection, name: str) -> str | None:
        row = db.execute("SELECT value FROM settings WHERE name=?", (name,)).fetchone()
        return str(row[0]) if row else None

    @staticmethod
    def _heal(db: sqlite3.Connection, node_id: str, gpus: list[int],
              survives: Callable[[GpuFault], bool]) -> None:
        faults = db.execute(
            "SELECT id, node_id, kind, gpu_index, value, message, created_at "
            "FROM gpu_faults WHERE node_id=?", (node_id,)).fetchall()
        for fault in (GpuFault(*f) for f in faults):
            if (not gpus or fault.gpu_index in gpus) and not survives(fault):
                db.execute("DELETE FROM gpu_faults WHERE id=?", (fault.id,))

    def get(self, instance_id: str) -> FakeInstance | None:
        with self._conn() as db:
            row = db.execute("SELECT * FROM instances WHERE instance_id=?",
                             (instance_id,)).fetchone()
        return _instance(row) if row else None

    def get_by_node(self, node_id: str) -> FakeInstance | None:
        with self._conn() as db:
            row = db.execute("SELECT * FROM instances WHERE node_id=?", (node_id,)).fetchone()
        return _instance(row) if row else None

    def instances(self, pool: str | None = None, *, live_only: bool = False) -> list[FakeInstance]:
        query = "SELECT * FROM instances WHERE 1=1"
        args: list[Any] = []
        if pool is not None:
            query += " AND pool=?"
            args.append(pool)
        if live_only:
            query += " AND state != 'terminated'"
        with self._conn() as db:
            rows = db.execute(query + " ORDER BY created_at", args).fetchall()
        return [_instance(r) for r in rows]

    def boot_due(self, now: float | None = None) -> list[FakeInstance]:
        """Mark pending instances whose boot time has come as running; return them."""
        now = time.time() if now is None else now
        with self._conn() as db:
            rows = db.execute(
                "SELECT * FROM instances WHERE state='pending' AND never_boot=0 AND boot_at<=?",
                (now,),
            ).fetchall()
            for r in rows:
                db.execute("UPDATE instances SET state='running' WHERE instance_id=?", (r[0],))
        return [_instance(r) for r in rows]

    def set_agent_enabled(self, node_id: str, enabled: bool) -> None:
        with self._conn() as db:
            db.execute("UPDATE instances SET agent_enabled=? WHERE node_id=?",
                       (int(enabled), node_id))

    def simulate_diagnostics(self, on: bool = True) -> None:
        """Hosts of this world answer active diagnostics from their faults instead of
        running dcgmi, gpu_burn and all_reduce_perf (the simulator turns this on)."""
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES ('diagnostics', ?)",
                       ("simulated" if on else "tools",))

    def diagnostics_simulated(self) -> bool:
        with self._conn() as db:
            row = db.execute("SELECT value FROM settings WHERE name='diagnostics'").fetchone()
        return row is not None and row[0] == "simulated"

    def set_price(self, provider: str, per_hour: float) -> None:
        """The hourly price a fake provider quotes (for the `cost` strategy)."""
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO prices VALUES (?,?)", (provider, per_hour))

    def price(self, provider: str) -> float | None:
        with self._conn() as db:
            row = db.execute("SELECT per_hour FROM prices WHERE provider=?",
                             (provider,)).fetchone()
        return float(row[0]) if row else None

    def counter(self, name: str) -> int:
        with self._conn() as db:
            row = db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ cloud faults

    def set_cloud_fault(self, kind: str, count: int = 1, *, rate: float | None = None,
                        **params: Any) -> None:
        """The next `count` provision calls hit this fault (capacity, throttle, unavailable
        — a 5xx —, invalid, slow_boot with seconds=, never_boot); with `rate`, each call
        hits it at that rate, until `count` have (count 0: without end). The rate is kept
        exactly rather than drawn at random (rate 0.2: every fifth matching call, the first
        on the third), so a run is reproducible and a short run still sees every fault.
        `provider=`, `region=`, `zone=` limit it to calls for that provider, region or
        zone."""
        if kind not in CLOUD_FAULT_KINDS:
            raise ValueError(f"unknown cloud fault {kind!r}; one of {CLOUD_FAULT_KINDS}")
        if rate is not None:
            if not 0 <= rate <= 1:
                raise ValueError(f"rate {rate}: a probability between 0 and 1")
            params["rate"] = rate
            count = count if count > 0 else 2**62
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO cloud_faults VALUES (?,?,?)",
                       (kind, count, json.dumps(params)))

    def set_cold_start(self, node_id: str, seconds: float) -> None:
        """The machine made for `node_id` takes `seconds` to boot, instead of the
        provider's usual time (a simulated cold start)."""
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO cold_starts VALUES (?,?)",
                       (node_id, max(0.0, seconds)))

    @staticmethod
    def _take_cloud_fault(db: sqlite3.Connection, kind: str,
                          where: dict[str, str]) -> dict[str, Any] | None:
        row = db.execute("SELECT remaining, params FROM cloud_faults WHERE kind=?",
                         (kind,)).fetchone()
        if row is None or row[0] <= 0:
            return None
        params: dict[str, Any] = json.loads(row[1])
        if any(key in params and params[key] != value for key, value in where.items()):
            return None
        if "rate" in params:  # error diffusion: owe `rate` of a fault per matching call
            credit = float(params.get("credit", 0.5)) + float(params["rate"])
            params["credit"] = credit - 1 if credit >= 1 else credit
            db.execute("UPDATE cloud_faults SET params=? WHERE kind=?",
                       (json.dumps(params), kind))
            if credit < 1:
                return None
        db.execute("UPDATE cloud_faults SET remaining = remaining - 1 WHERE kind=?", (kind,))
        db.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET "
                   "value = value + 1", (f"fault:{kind}",))
        return params

    # ------------------------------------------------------------------ GPU faults

    def inject(self, node_id: str, kind: str, *, gpu_index: int = 0, value: float | None = None,
               message: str = "") -> int:
        if kind not in GPU_FAULT_KINDS:
            raise ValueError(f"unknown GPU fault {kind!r}; one of {', '.join(GPU_FAULT_KINDS)}")
        with self._conn() as db:
            cur = db.execute(
                "INSERT INTO gpu_faults (node_id, kind, gpu_index, value, message, created_at) "
                "VALUES (?,?,?,?,?,?)", (node_id, kind, gpu_index, value, message, time.time()),
            )
            return int(cur.lastrowid or 0)

    def clear(self, node_id: str, kind: str | None = None) -> int:
        with self._conn() as db:
            if kind is None:
                cur = db.execute("DELETE FROM gpu_faults WHERE node_id=?", (node_id,))
            else:
                cur = db.execute("DELETE FROM gpu_faults WHERE node_id=? AND kind=?",
                                 (node_id, kind))
            return cur.rowcount

    def faults(self, node_id: str) -> list[GpuFault]:
        with self._conn() as db:
            rows = db.execute(
                "SELECT id, node_id, kind, gpu_index, value, message, created_at "
                "FROM gpu_faults WHERE node_id=? ORDER BY id", (node_id,),
            ).fetchall()
        return [GpuFault(*r) for r in rows]

    # ------------------------------------------------------------------ GPU processes

    def add_process(self, node_id: str, pid: int, *, gpu_index: int = 0, name: str = "") -> None:
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO gpu_processes VALUES (?,?,?,?)",
                       (node_id, gpu_index, pid, name))

    def remove_process(self, node_id: str, pid: int | None = None) -> None:
        with self._conn() as db:
            if pid is None:
                db.execute("DELETE FROM gpu_processes WHERE node_id=?", (node_id,))
            else:
                db.execute("DELETE FROM gpu_processes WHERE node_id=? AND pid=?", (node_id, pid))

    def processes(self, node_id: str) -> list[GpuProcess]:
        with self._conn() as db:
            rows = db.execute("SELECT node_id, gpu_index, pid, name FROM gpu_processes "
                              "WHERE node_id=? ORDER BY pid", (node_id,)).fetchall()
        return [GpuProcess(*r) for r in rows]


    def snapshot(self, *, machines: bool = True) -> WorldSnapshot:
        """Everything simulated hosts read, for all of them at once: three queries however
        many hosts there are (two without `machines`)."""
        faults: dict[str, list[GpuFault]] = {}
        processes: dict[str, list[GpuProcess]] = {}
        with self._conn() as db:
            rows = db.execute("SELECT * FROM instances WHERE state != 'terminated' "
                              "ORDER BY created_at").fetchall() if machines else []
            for r in db.execute("SELECT id, node_id, kind, gpu_index, value, message, "
                                "created_at FROM gpu_faults ORDER BY id"):
                faults.setdefault(r[1], []).append(GpuFault(*r))
            for r in db.execute("SELECT node_id, gpu_index, pid, name FROM gpu_processes "
                                "ORDER BY pid"):
                processes.setdefault(r[0], []).append(GpuProcess(*r))
        return WorldSnapshot([_instance(r) for r in rows], faults, processes)


def _instance(row: tuple[Any, ...]) -> FakeInstance:
    return FakeInstance(
        instance_id=row[0], node_id=row[1], pool=row[2], provider=row[3], instance_type=row[4],
        region=row[5], zone=row[6], state=row[7], created_at=row[8], boot_at=row[9],
        gpu_count=row[10], gpu_model=row[11], agent_enabled=bool(row[12]),
        never_boot=bool(row[13]), cluster=row[15] if len(row) > 15 else "",
    )


# What a reboot heals: conditions of the moment, and Xids whose catalog action is a reset,
# a reboot, an application restart or nothing. The rest (hardware: uncorrectable ECC, PCIe,
# NVLink, Xids NVIDIA sends to support or to a mechanical check) stay. A reset heals less:
# not what needs the whole machine restarted (a reboot-class Xid, a GPU the driver lost).
_TRANSIENT_KINDS = {"temperature", "power", "nvml_failure", "ecc_sbe"}
_REBOOT_HEALS = {"RESET_GPU", "RESTART_BM", "RESTART_VM", "RESTART_APP", "IGNORE",
                 "WORKFLOW_XID_48", "WORKFLOW_NVLINK_ERR", "WORKFLOW_NVLINK5_ERR"}
_RESET_HEALS = {"RESET_GPU", "RESTART_APP", "IGNORE", "WORKFLOW_XID_48",
                "WORKFLOW_NVLINK_ERR", "WORKFLOW_NVLINK5_ERR"}


def _survives(fault: GpuFault, heals: set[str], transient: set[str]) -> bool:
    if fault.kind in transient:
        return False
    if fault.kind == "xid" and fault.value is not None:
        info = lookup(int(fault.value))
        return info is None or info.nvidia_action not in heals
    return True


def survives_reboot(fault: GpuFault) -> bool:
    return _survives(fault, _REBOOT_HEALS, _TRANSIENT_KINDS)


def survives_reset(fault: GpuFault) -> bool:
    return _survives(fault, _RESET_HEALS, {"ecc_sbe"})
