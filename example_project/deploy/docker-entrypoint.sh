#!/bin/sh
# Migrate, then start the server given as the command (the Dockerfile's CMD).
# A failed run (exit code 1 to 4) stops the container before it serves.
set -e
python manage.py automigrate
exec "$@"
