"""slurm.conf and gres.conf of the single-node cluster."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

CLUSTER_NAME = "gxwf"
NODE_NAME = "n1"
PARTITION = "debug"


@dataclass(frozen=True)
class Layout:
    """Where everything of one cluster lives, all below one directory."""

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def munge(self) -> Path:
        return self.root / "munge"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def gpus(self) -> Path:
        return self.root / "gpus"

    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def jwt_key(self) -> Path:
        return self.etc / "jwt.key"

    @property
    def munge_key(self) -> Path:
        return self.munge / "munge.key"

    @property
    def munge_socket(self) -> Path:
        return self.munge / "munge.sock"

    @property
    def token_file(self) -> Path:
        return self.etc / "token"

    def directories(self) -> tuple[Path, ...]:
        return (self.etc, self.state, self.spool, self.log, self.run, self.munge, self.jobs, self.gpus)


@dataclass(frozen=True)
class NodeShape:
    cpus: int
    gpus: int
    memory_mb: int
    default_memory_per_cpu_mb: int


def slurm_conf(layout: Layout, shape: NodeShape, *, controller_port: int, node_port: int) -> str:
    d = layout
    gres = f" Gres=gpu:{shape.gpus}" if shape.gpus else ""
    lines = [
        f"ClusterName={CLUSTER_NAME}",
        "SlurmctldHost=localhost(127.0.0.1)",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={controller_port}",
        f"SlurmdPort={node_port}",
        # Listen on the loopback address only, not on every interface.
        "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={d.munge_socket}",
        # slurmrestd authenticates callers with HS256 tokens signed with this key.
        "AuthAltTypes=auth/jwt",
        f"AuthAltParameters=jwt_key={d.jwt_key}",
        f"StateSaveLocation={d.state}",
        f"SlurmdSpoolDir={d.spool}",
        f"SlurmctldPidFile={d.run / 'slurmctld.pid'}",
        f"SlurmdPidFile={d.run / 'slurmd.pid'}",
        f"SlurmctldLogFile={d.log / 'slurmctld.log'}",
        f"SlurmdLogFile={d.log / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={d.log / 'jobcomp.txt'}",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # Without a default a job takes all of the node's memory, and jobs would run one at a time.
        f"DefMemPerCPU={shape.default_memory_per_cpu_mb}",
        "MpiDefault=none",
        "MailProg=/bin/true",
        # The node may declare more CPUs (and memory) than the machine has: jobs then run side by side.
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        "KillWait=2",
        # Finished jobs stay visible (there is no accounting database) for ten minutes.
        "MinJobAge=600",
        "MaxJobCount=100000",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        *(["GresTypes=gpu"] if shape.gpus else []),
        f"NodeName={NODE_NAME} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} CPUs={shape.cpus} "
        f"RealMemory={shape.memory_mb}{gres} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE_NAME} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
    ]
    return "\n".join(lines) + "\n"


def gres_conf(layout: Layout, shape: NodeShape) -> str:
    if not shape.gpus:
        return ""
    # Slurm 22.05's GPU plugin drops GPUs that name no device file, so each GPU names one: a link to
    # /dev/null (see fake_gpu_devices). With task/none no device is bound or constrained; the GPUs are
    # numbers Slurm places and limits jobs by, and a job sees CUDA_VISIBLE_DEVICES as on a GPU node.
    last = shape.gpus - 1
    files = f"{layout.gpus}/gpu{last}" if last == 0 else f"{layout.gpus}/gpu[0-{last}]"
    return f"NodeName={NODE_NAME} Name=gpu Count={shape.gpus} File={files}\n"


def fake_gpu_devices(layout: Layout, shape: NodeShape) -> None:
    for index in range(shape.gpus):
        (layout.gpus / f"gpu{index}").symlink_to("/dev/null")
