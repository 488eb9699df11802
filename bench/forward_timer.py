"""Time one forward through a node's admin API: declare the device, queue, wait until sent.

    python -m bench.forward_timer BASE_URL DEVICE_JSON REQUEST_JSON [TIMEOUT]

Runs where the node's HTTP port is reachable (inside its network namespace when it has one).
PUTs the device (untimed), then starts the clock, POSTs the forward request to
/admin/forwards and polls GET /admin/forwards every POLL seconds until every forward it
queued is "sent" or "committed". Prints one JSON line: seconds, when the first forward left
"pending", and the final rows; exits 1 (with "error") when one failed or time ran out.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx

POLL = 0.25  # each GET costs the node ~7 ms of CPU (GIL shared with the forward): poll gently
DONE = ("sent", "committed")


def _states(client: httpx.Client, destination: str, studies: set[str]) -> list[dict[str, Any]]:
    answer = client.get("/admin/forwards", params={"destination": destination, "limit": 10_000})
    answer.raise_for_status()
    return [r for r in answer.json() if r["study"] in studies]


def time_forward(
    base: str, device: dict[str, Any], request: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Declare the device, queue the forward, wait for it; what happened, as a dict."""
    destination = str(request["destination"])
    with httpx.Client(base_url=base, timeout=30) as client:
        client.put(f"/admin/devices/{destination}", json=device).raise_for_status()
        started = time.perf_counter()
        queued = client.post("/admin/forwards", json=request)
        queued.raise_for_status()
        studies = set(queued.json()["queued"])
        first_sending: float | None = None
        while True:
            rows = _states(client, destination, studies)
            elapsed = time.perf_counter() - started
            if first_sending is None and any(r["state"] != "pending" for r in rows):
                first_sending = elapsed
            failed = [r for r in rows if r["state"] == "failed"]
            if failed or elapsed > timeout:
                why = failed[0]["last_error"] if failed else f"not sent after {timeout:.0f}s"
                return {"error": why, "seconds": elapsed, "rows": rows}
            if len(rows) == len(studies) and all(r["state"] in DONE for r in rows):
                return {"seconds": elapsed, "first_sending": first_sending, "rows": rows}
            time.sleep(POLL)


def main() -> None:
    """Run once with the command line's arguments."""
    base, device, request = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
    result = time_forward(base, device, request, timeout)
    print(json.dumps(result))
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
