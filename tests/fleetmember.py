"""A fleet member for the tests, as a worker joins: ``join_fleet()`` in its start hook.

``python tests/fleetmember.py KIND`` says ``joined`` on stdout once its row is written, then
beats until its stdin closes, and exits normally (its row then says it stopped).
"""

from __future__ import annotations

import sys

import django


def main(kind: str) -> int:
    django.setup()
    from django_automigrate import join_fleet
    from django_automigrate.fleet import heartbeat

    assert join_fleet(kind)
    beat = heartbeat.current()
    assert beat is not None
    if not beat.registered.wait(120):
        print("no beat within 120 s", file=sys.stderr)
        return 1
    print("joined", flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "worker"))
