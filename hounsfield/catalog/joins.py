"""The join the archive's object lookups share: an instance, its series, study and files."""

from __future__ import annotations

from hounsfield.db.tables import file, filesystem, instance, series, study

INSTANCE_FILES = (
    instance.join(series, series.c.pk == instance.c.series_pk)
    .join(study, study.c.pk == series.c.study_pk)
    .join(file, file.c.instance_pk == instance.c.pk)
    .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
)
