"""KFP artifact schema titles (``system.Dataset``…) and the stored ArtifactType they map to."""

from __future__ import annotations

from kfpd.domain.enums import ArtifactType

# The key under which an artifact keeps a schema title its ArtifactType cannot express.
SCHEMA_TITLE_KEY = "_kfp_schema_title"

_BY_TITLE = {
    "system.Artifact": ArtifactType.Artifact,
    "system.Dataset": ArtifactType.Dataset,
    "system.Model": ArtifactType.Model,
    "system.HTML": ArtifactType.HTML,
    "system.Markdown": ArtifactType.Markdown,
    "system.Metrics": ArtifactType.Metric,
    "system.ClassificationMetrics": ArtifactType.ClassificationMetric,
    "system.SlicedClassificationMetrics": ArtifactType.SlicedClassificationMetric,
}
_BY_TYPE = {atype: title for title, atype in _BY_TITLE.items()}

METRICS = "system.Metrics"
CLASSIFICATION_METRICS = "system.ClassificationMetrics"
SLICED_CLASSIFICATION_METRICS = "system.SlicedClassificationMetrics"
# Outputs whose content lives only in metadata: nothing is written or uploaded for them.
METADATA_ONLY_TITLES = frozenset({METRICS, CLASSIFICATION_METRICS, SLICED_CLASSIFICATION_METRICS})


def artifact_type_for(schema_title: str) -> ArtifactType:
    """The stored type of a schema title; unknown titles (google.VertexModel…) are Artifacts."""
    return _BY_TITLE.get(schema_title, ArtifactType.Artifact)


def is_known_title(schema_title: str) -> bool:
    return schema_title in _BY_TITLE


def schema_title_for(atype: ArtifactType) -> str:
    return _BY_TYPE.get(atype, "system.Artifact")
