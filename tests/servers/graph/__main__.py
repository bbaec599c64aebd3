"""``python -m tests.servers.graph [--port N] [--state-dir D] [--personal]``: run the fake for a human trial."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .server import start_graph


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.servers.graph", description=__doc__)
    ap.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--state-dir", type=Path, default=None,
                    help="where to write the test CA and server certificate (default: a temp dir)")
    ap.add_argument("--personal", action="store_true", help="a personal OneDrive instead of business")
    args = ap.parse_args()
    with start_graph(port=args.port, state_dir=args.state_dir,
                     drive_type="personal" if args.personal else "business") as g:
        print(f"authority_url: {g.authority_url}   (msal authority: {g.authority})", flush=True)
        print(f"graph_url:     {g.graph_url}")
        print(f"ca_file:       {g.ca_file}")
        print(f"client_id:     {g.client_id}")
        print(f"drive_id:      {g.drive_id}")
        print(f"site:          {g.site_host}:{g.site_path}  libraries {g.library_drive_ids}")
        print(f"approve device codes at {g.devicelogin_url}  (Ctrl-C to stop)", flush=True)
        seen: set[str] = set()
        try:
            while True:
                for code in g.pending_user_codes():
                    if code not in seen:
                        seen.add(code)
                        print(f"pending user code: {code}", flush=True)
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
