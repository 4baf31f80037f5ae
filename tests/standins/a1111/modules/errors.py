"""Mirrors modules/errors.py (1.10.1): ``report`` prints ``*** message`` lines and the traceback to
stderr and records the exception; the caller carries on (that is the point)."""

from __future__ import annotations

import sys
import textwrap
import traceback

exception_records: list = []


def record_exception():
    _, e, tb = sys.exc_info()
    if e is None:
        return
    if exception_records and exception_records[-1][0] is e:
        return
    exception_records.append((e, traceback.extract_tb(tb)))
    if len(exception_records) > 5:
        exception_records.pop(0)


def report(message: str, *, exc_info: bool = False) -> None:
    record_exception()
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        print(textwrap.indent(traceback.format_exc(), "    "), file=sys.stderr)
        print("---", file=sys.stderr)
