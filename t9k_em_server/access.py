"""Who may do what: the one permission check of every endpoint.

Every node belongs to the user whose tree it is in (``/<owner>/…``). An owner shares a Folder,
and everything below it, with a user or a group as ``viewer`` or ``editor`` (``metadata_store``
``shares``). A user's role on a node is the highest of:

- ``ADMIN``: the user is an admin (``em server add-user --admin``): everything, everywhere;
- ``OWNER``: the node is in the user's tree;
- ``EDITOR``/``VIEWER``: a share of the node or of a Folder above it, with the user or with a
  group the user is in;
- ``NONE`` otherwise.

What each role may do (docs/server.md, "Sharing"): a viewer reads (listings, nodes, objects,
series, lineage, search); an editor also creates nodes in the shared Folders, uploads, edits
labels and descriptions, and deletes or renames what lies *below* the shared Folder (renaming,
moving or deleting a node needs ``EDITOR`` on its parent Folder, so a shared Folder itself stays
put); only the owner (or an admin) shares, revokes and reads the audit.

A node the user has no role on answers exactly like a node that does not exist: ``404 node not
found [<ref>]``, by path and by id, so nobody learns what exists outside what they can see.
A visible node with too low a role answers ``403 permission denied`` (spec server-api §2).
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from .errors import ApiError, node_not_found, permission_denied
from .metadata_store import MetadataStore, NodeView, UserView
from .paths import join_path, normalise_key, object_path_candidates, parse_node_path

#: node types that hold objects (a Folder holds nodes)
STORABLE = ("Run", "Artifact", "Model", "Dataset")


class Role(IntEnum):
    """A user's role on a node; each role may do everything the ones below it may."""

    NONE = 0
    VIEWER = 1
    EDITOR = 2
    OWNER = 3
    ADMIN = 4


#: the roles a share grants
SHARE_ROLES = {"viewer": Role.VIEWER, "editor": Role.EDITOR}


def ancestors(path: str) -> list[str]:
    """``path`` and the paths of every node above it (``/a/b/c`` → ``/a``, ``/a/b``, ``/a/b/c``)."""
    names = path.split("/")[1:]
    return ["/" + "/".join(names[:i]) for i in range(1, len(names) + 1)]


def roles_of(meta: MetadataStore, user: UserView, nodes: Iterable[NodeView | None]
             ) -> dict[str, Role]:
    """{node id: the user's role} of several nodes, with at most one query for their shares."""
    nodes = [n for n in nodes if n is not None]
    if user.is_admin:
        return {n.id: Role.ADMIN for n in nodes}
    roles = {n.id: Role.OWNER for n in nodes if n.owner_id == user.id}
    others = [n for n in nodes if n.id not in roles]
    if others:
        paths = sorted({p for n in others for p in ancestors(n.path)})
        shared: dict[str, Role] = {}
        for path, role in meta.share_roles(user.id, paths):
            shared[path] = max(shared.get(path, Role.NONE), SHARE_ROLES.get(role, Role.NONE))
        for n in others:
            roles[n.id] = max((shared.get(p, Role.NONE) for p in ancestors(n.path)), default=Role.NONE)
    return roles


def role_of(meta: MetadataStore, user: UserView, node: NodeView | None) -> Role:
    """The user's role on one node (``NONE`` for None)."""
    return roles_of(meta, user, [node]).get(node.id, Role.NONE) if node is not None else Role.NONE


def require(meta: MetadataStore, user: UserView, node: NodeView | None, ref: str,
            need: Role) -> NodeView:
    """``node`` if the user has at least ``need`` on it; 404 (``ref`` not found) when it is
    missing or the user has no role on it, 403 when the role is too low."""
    role = role_of(meta, user, node)
    if node is None or role == Role.NONE:
        raise node_not_found(ref)
    if role < need:
        raise permission_denied()
    return node


def canonical_ref(ref: str) -> str:
    """A node path normalised (``/a/b/`` → ``/a/b``; 400 for a bad path), or an id as given."""
    return join_path(parse_node_path(ref)) if ref.startswith("/") else ref


def node_for(meta: MetadataStore, user: UserView, ref: str, need: Role = Role.VIEWER,
             type_: str | None = None) -> NodeView:
    """The node at a path (``/…``) or id on which the user has at least ``need`` (see
    ``require``); 404 also when it is not of ``type_``."""
    ref = canonical_ref(ref)
    node = require(meta, user, meta.get_node(ref), ref, need)
    if type_ and node.type != type_:
        raise ApiError(404, f"{ref} is a {node.type}, not a {type_}")
    return node


def parent_for(meta: MetadataStore, user: UserView, node: NodeView, need: Role) -> NodeView:
    """The Folder holding ``node``, with ``need`` checked on it (renames, moves and deletes
    change the parent's contents). A root Folder has none: 400."""
    parent = meta.get_node(node.parent_id) if node.parent_id else None
    if parent is None:
        raise ApiError(400, f"{node.path} is a user's root folder")
    if role_of(meta, user, parent) < need:
        raise permission_denied()
    return parent


def object_for(meta: MetadataStore, user: UserView, path: str, need: Role) -> tuple[NodeView, str]:
    """(owning node, normalised key) of an object path (spec §3: the longest prefix that is a
    node). Nodes the user cannot see count as missing, so the 404's text depends only on what
    the user can see."""
    candidates = object_path_candidates(path)
    found = meta.nodes_at([p for p, _ in candidates])
    roles = roles_of(meta, user, found.values())
    for node_path, raw_key in candidates:
        node = found.get(node_path)
        if node is None or roles[node.id] == Role.NONE:
            continue
        if node.type not in STORABLE:  # a Folder: the Run/Artifact below it does not exist
            raise node_not_found(f"{node.path}/{raw_key.split('/', 1)[0]}")
        if roles[node.id] < need:
            raise permission_denied()
        return node, normalise_key(raw_key)
    raise node_not_found(path.rsplit("/", 1)[0] or path)


def visible_nodes(meta: MetadataStore, user: UserView, ids: Iterable[str]) -> dict[str, NodeView]:
    """{id: node} of the given ids that name nodes the user can see (others are left out)."""
    known = meta.get_nodes(list(dict.fromkeys(ids)))
    roles = roles_of(meta, user, known.values())
    return {i: n for i, n in known.items() if roles[i] > Role.NONE}


def visible_edges(meta: MetadataStore, user: UserView, node_ids: list[str]) -> list[tuple[str, str]]:
    """Lineage edges touching ``node_ids`` that the user sees: the user's own, and, at a node
    the user can see, those drawn by someone who could edit that node (so a stranger cannot
    draw into another's lineage, and a viewer sees what the team drew)."""
    edges = meta.edges_touching(node_ids)
    foreign = [e for e in edges if e[0] != user.id]
    if not foreign:
        return [(src, dst) for _, src, dst in edges]
    wanted = set(node_ids)
    visible = visible_nodes(meta, user, [end for _, src, dst in foreign for end in (src, dst)
                                         if end in wanted])
    drawers = meta.get_users({owner for owner, _, _ in foreign})
    allowed: set[tuple[int, str]] = set()
    for owner_id, drawer in drawers.items():
        roles = roles_of(meta, drawer, visible.values())
        allowed.update((owner_id, i) for i, role in roles.items() if role >= Role.EDITOR)
    return [(src, dst) for owner, src, dst in edges
            if owner == user.id or (owner, src) in allowed or (owner, dst) in allowed]
