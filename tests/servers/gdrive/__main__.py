"""``python -m tests.servers.gdrive [--port N] [--secrets FILE]``: run the fake for a human trial.

Prints the URLs, writes a client-secrets file for google-auth-oauthlib's InstalledAppFlow, and
serves until Ctrl-C; consent is given on the HTML page at /auth (the "Allow" button)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .server import start_gdrive


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.servers.gdrive", description=__doc__)
    ap.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--secrets", type=Path, default=None,
                    help="where to write the client-secrets JSON (default: in a temp dir)")
    args = ap.parse_args()
    with start_gdrive(port=args.port) as g:
        secrets = args.secrets or Path(tempfile.mkdtemp(prefix="gdrive-fake-")) / "client_secrets.json"
        g.client_secrets_file(secrets)
        folder = g.backdoor.create_folder("root", "Welcome")
        g.backdoor.create_file(folder["id"], "hello.txt", b"hello from the fake Drive\n", mime="text/plain")
        print(f"api_url (client_options api_endpoint): {g.api_url}", flush=True)
        print(f"upload_url:   {g.upload_url}")
        print(f"token_url:    {g.token_url}")
        print(f"auth_url:     {g.auth_url}   (consent page: press Allow)")
        print(f"client_id:    {g.client_id}")
        print(f"client secrets file: {secrets}")
        print(f"user: {g.user}   My Drive root id: {g.root_id}")
        print("Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
