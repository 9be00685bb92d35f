#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    from project.devservers import embedded

    # Development without DATABASE_URL / REDIS_URL: the embedded servers, for this command.
    embedded.hold()

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
