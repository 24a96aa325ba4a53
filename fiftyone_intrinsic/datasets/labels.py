"""Class labels of a collection, from a Classification field."""

from __future__ import annotations

__all__ = ["classification_labels"]


def classification_labels(samples, label_field: str) -> list:
    """The label of every sample, in the collection's order.

    Raises:
        ValueError: an empty collection, a missing field or one that is not a
            Classification (the Classification fields are listed), or unlabelled samples.
    """
    import fiftyone as fo

    if len(samples) == 0:
        raise ValueError("The collection has no samples; choose a dataset or view with samples.")
    field = samples.get_field(label_field)
    classification_fields = sorted(
        samples.get_field_schema(embedded_doc_type=fo.Classification).keys()
    )
    if field is None:
        raise ValueError(
            f"Label field {label_field!r} does not exist. Classification fields of this "
            f"collection: {classification_fields}."
        )
    if getattr(field, "document_type", None) is not fo.Classification:
        kind = getattr(field, "document_type", type(field)).__name__
        raise ValueError(
            f"Label field {label_field!r} holds {kind}, not Classification; label sharpness "
            f"needs one class label per sample. Classification fields: {classification_fields}."
        )
    labels = samples.values(f"{label_field}.label")
    missing = sum(label is None for label in labels)
    if missing:
        raise ValueError(
            f"{missing} of {len(labels)} samples have no label in {label_field!r}. Label them "
            f"or restrict the view, e.g. view.exists('{label_field}')."
        )
    return labels
