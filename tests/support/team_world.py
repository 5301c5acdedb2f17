"""A team on a real server process, for the sharing tests: one user per role towards alice's
Folder ``/alice/team-proj`` and a Folder of hers shared with nobody.

| role | user | how |
|---|---|---|
| owner | alice | the Folders are in her tree |
| editor | bob | shared with him as editor |
| viewer | vic | shared with him as viewer |
| member | gina | in group ``team``, which the Folder is shared with as editor |
| stranger | sam | nothing shared |
| admin | root | ``add-user --admin`` |

Each Folder holds a Run (metadata, hparams, a ``train`` metric file, stdout) and an Artifact,
with lineage edges Artifact → Run → ``asset-9``; the shared one also a sub-Folder.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.em_server_process import ServerProcess
from support.server_api import Api
from support.ui_seed import Seeder, metric_text

ROLES = ("owner", "editor", "viewer", "member", "stranger", "admin")
USERS = {"owner": "alice", "editor": "bob", "viewer": "vic", "member": "gina",
         "stranger": "sam", "admin": "root"}
GROUP = "team"
T0 = 1_764_000_000.0


@dataclass(frozen=True)
class Tree:
    """One seeded Folder: its path and id, and those of its Run and Artifact."""

    folder: str
    folder_id: str
    run: str
    run_id: str
    artifact: str
    artifact_id: str


@dataclass
class World:
    server: ServerProcess
    apis: dict[str, Api]     #: by role
    shared: Tree             #: /alice/team-proj, shared with bob, vic and the group
    private: Tree            #: /alice/private, shared with nobody

    def api(self, role: str) -> Api:
        return self.apis[role]


def seed_tree(seeder: Seeder, folder: str) -> Tree:
    """A Folder with a Run, an Artifact and lineage edges (see the module doc)."""
    folder_id = seeder.folder(folder)
    artifact_id, artifact = seeder.artifact(folder, "ds", files={"data/w.bin": b"weights"})
    points = [(i, i // 10, {"loss": 1.0 / (i + 1)}, T0 + i) for i in range(30)]
    run_id, run = seeder.run(folder, "mnist", hparams={"lr": 0.01}, start=T0, end=T0 + 60,
                             metrics={"train": metric_text(points)}, stdout="epoch 1\n",
                             inputs=[artifact_id], outputs=["asset-9"])
    return Tree(folder, folder_id, run, run_id, artifact, artifact_id)


@contextlib.contextmanager
def team_world(data_dir: Path, db: str | None = None) -> Iterator[World]:
    """Start a server on ``data_dir`` (and ``db``), create the team, seed and share; yields the
    World and stops the server afterwards."""
    server = ServerProcess(data_dir, db=db)
    keys = {role: server.add_user(name, admin=role == "admin")[1] for role, name in USERS.items()}
    server.add_group(GROUP, [USERS["member"]])
    server.start()
    try:
        apis = {role: Api(server.base_url, keys[role], USERS[role]) for role in ROLES}
        seeder = Seeder(server.base_url, keys["owner"])
        shared = seed_tree(seeder, "/alice/team-proj")
        seeder.folder("/alice/team-proj/sub")
        private = seed_tree(seeder, "/alice/private")
        owner = apis["owner"]
        for grantee, role in (({"user": "bob"}, "editor"), ({"user": "vic"}, "viewer"),
                              ({"group": GROUP}, "editor")):
            reply = owner.request("POST", "/apis/v1/shares",
                                  json={"folder": shared.folder, "role": role, **grantee})
            assert reply.status_code == 200, reply.text
        yield World(server, apis, shared, private)
    finally:
        server.stop()
