"""A DICOM client that knows every node of a cluster and fails over by itself."""

from hounsfield.client.client import Client
from hounsfield.client.files import Part10
from hounsfield.client.nodes import NodeRing, parse_nodes
from hounsfield.client.query import parse_keys
from hounsfield.client.reports import RetrieveReport, SendReport

__all__ = [
    "Client",
    "NodeRing",
    "Part10",
    "RetrieveReport",
    "SendReport",
    "parse_keys",
    "parse_nodes",
]
