"""A strict local fake of Google's OAuth 2.0 endpoints and of the Google Drive API v3, served
over plain HTTP by werkzeug in a thread of the test process.  See README.md for the rules it
enforces and their sources."""

from .counters import Counters
from .errors import DriveError
from .server import Backdoor, GDriveServer, start_gdrive

__all__ = ["Backdoor", "Counters", "DriveError", "GDriveServer", "start_gdrive"]
