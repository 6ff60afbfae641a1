"""`--workspace DIR`: the folder runs.db, the checkpoints and the caches resolve from (engine.workspace)."""

from __future__ import annotations

import os

from kirec_tui.options import option

WorkspaceOption = option("workspace")


def workspace_of(workspace: str | None, db: str | None = None):
    """The workspace by the one precedence order (flags > KIREC_WORKSPACE / KIREC_DB and the other path variables
    > defaults), reading and checking only the path settings: a bad value elsewhere in the environment must not
    break a read-only command."""
    from engine.config import load_config
    from engine.workspace import WORKSPACE_KEYS, Workspace

    return Workspace.of(load_config(env=os.environ, flags={"workspace": workspace, "db": db}, keys=WORKSPACE_KEYS))
