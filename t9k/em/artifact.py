"""``t9k.em.artifact``: the seed module path of ``Artifact`` (in :mod:`t9k_em_core.artifact`)."""

from t9k_em_core.artifact import Artifact, Reference, create_artifact, load_artifact

__all__ = ['Artifact', 'Reference', 'create_artifact', 'load_artifact']
