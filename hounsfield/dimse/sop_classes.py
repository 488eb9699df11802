"""Every storage SOP class the archive accepts, retired ones included (old modalities live on)."""

from __future__ import annotations

from functools import cache

from pydicom._uid_dict import UID_dictionary
from pynetdicom import AllStoragePresentationContexts, register_uid
from pynetdicom.service_class import StorageServiceClass

_IMAGE_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."


@cache
def storage_sop_classes() -> list[str]:
    """pynetdicom's storage classes plus the retired and newer ones pydicom knows."""
    known = [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts]
    extra = []
    for uid, (name, kind, _info, _retired, keyword) in UID_dictionary.items():
        if (
            uid not in known
            and kind == "SOP Class"
            and uid.startswith(_IMAGE_STORAGE_ROOT)
            and "Storage" in name
            and keyword.isidentifier()
        ):
            register_uid(uid, keyword, StorageServiceClass)
            extra.append(uid)
    return known + extra
