"""A strict local fake of the Microsoft identity platform (device code + refresh
tokens) and of the Microsoft Graph drive API (OneDrive / SharePoint), served over
HTTPS by werkzeug in a thread of the test process.  See README.md for the rules
it enforces and their sources."""

from .drive import GraphError
from .identity import FAKE_CLIENT_ID, FAKE_TENANT_ID, FAKE_USER_OID, FAKE_USERNAME
from .server import Backdoor, GraphServer, start_graph
from .counters import Counters

__all__ = ["Backdoor", "Counters", "FAKE_CLIENT_ID", "FAKE_TENANT_ID", "FAKE_USERNAME", "FAKE_USER_OID",
           "GraphError", "GraphServer", "start_graph"]
