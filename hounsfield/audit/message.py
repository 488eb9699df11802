"""An audit event in the DICOM audit message format (PS3.15 A.5), as syslog carries it."""

from __future__ import annotations

import base64
from xml.etree import ElementTree as ET

from hounsfield.audit.events import CODING, OUTCOMES, AuditEvent, Code

# PS3.15 A.5.1: the requestor is the source, the node the destination, of what travels in;
# the other way round for what travels out.
SOURCE = Code("110153", "DCM", "Source Role ID")
DESTINATION = Code("110152", "DCM", "Destination Role ID")
APPLICATION = Code("110150", "DCM", "Application")
OUTWARD = {"retrieve", "export", "audit-read"}


def _coded(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(
        parent,
        tag,
        {"csd-code": code.code, "codeSystemName": code.scheme, "originalText": code.name},
    )


def _participant(
    root: ET.Element, user: str, ae: str, host: str, requestor: bool, role: Code
) -> None:
    attrs = {"UserID": user or ae or "unknown", "UserIsRequestor": str(requestor).lower()}
    if ae:
        attrs["AlternativeUserID"] = f"AETITLES={ae}"
    if host:
        attrs["NetworkAccessPointID"] = host
        attrs["NetworkAccessPointTypeCode"] = "2" if host[:1].isdigit() or ":" in host else "1"
    _coded(ET.SubElement(root, "ActiveParticipant", attrs), "RoleIDCode", role)


def audit_message(event: AuditEvent, source_id: str, node_host: str = "") -> bytes:
    """The XML AuditMessage of `event`, sent by the audit source `source_id`."""
    coding = CODING[event.kind]
    when = event.created_at.isoformat() if event.created_at else ""
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": coding.action,
            "EventDateTime": when,
            "EventOutcomeIndicator": str(event.outcome),
        },
    )
    _coded(ident, "EventID", coding.event_id)
    if coding.event_type is not None:
        _coded(ident, "EventTypeCode", coding.event_type)
    if event.outcome:
        description = event.detail or OUTCOMES.get(event.outcome, "failure")
        ET.SubElement(ident, "EventOutcomeDescription").text = description
    a = event.actor
    outward = event.kind in OUTWARD
    _participant(root, a.user, a.ae_title, a.host, True, DESTINATION if outward else SOURCE)
    node_role = SOURCE if outward else DESTINATION
    if event.kind in ("login", "logout", "login-failed", "config", "security-alert"):
        node_role = APPLICATION
    _participant(root, source_id, a.called or event.partition, node_host, False, node_role)
    source = ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": source_id})
    _coded(source, "AuditSourceTypeCode", Code("4", "DCM", "Application Server Process"))
    if event.study_uid:
        study = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": event.study_uid,
                "ParticipantObjectTypeCode": "2",
                "ParticipantObjectTypeCodeRole": "3",
            },
        )
        _coded(study, "ParticipantObjectIDTypeCode", Code("110180", "DCM", "Study Instance UID"))
        if event.count:
            counted = ET.SubElement(study, "ParticipantObjectDescription")
            counted.text = f"{event.count} instances"
    if event.kind == "query" and event.detail:
        query = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": event.partition or source_id,
                "ParticipantObjectTypeCode": "2",
                "ParticipantObjectTypeCodeRole": "3",
            },
        )
        _coded(query, "ParticipantObjectIDTypeCode", Code("110181", "DCM", "SOP Class UID"))
        encoded = base64.b64encode(event.detail.encode()).decode()
        ET.SubElement(query, "ParticipantObjectQuery").text = encoded
    if event.patient_id:
        person = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": event.patient_id,
                "ParticipantObjectTypeCode": "1",
                "ParticipantObjectTypeCodeRole": "1",
            },
        )
        _coded(person, "ParticipantObjectIDTypeCode", Code("2", "RFC-3881", "Patient Number"))
        if event.patient_name:
            ET.SubElement(person, "ParticipantObjectName").text = event.patient_name
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
