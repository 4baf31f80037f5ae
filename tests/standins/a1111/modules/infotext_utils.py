"""Mirrors modules/infotext_utils.py (1.10.1): PasteField, quote/unquote and the parser of the
parameters line (same regex, same "NxM" splitting, values come back as strings)."""

from __future__ import annotations

import json
import re

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")


class PasteField(tuple):
    def __new__(cls, component, target, *, api=None):
        return super().__new__(cls, (component, target))

    def __init__(self, component, target, *, api=None):
        super().__init__()
        self.api = api
        self.component = component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


def quote(text):
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None):
    res = {}
    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    res["Prompt"] = "\n".join(lines).strip()
    for k, v in re_param.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = unquote(v)
            m = re_imagesize.match(v)
            if m is not None:
                res[f"{k}-1"] = m.group(1)
                res[f"{k}-2"] = m.group(2)
            else:
                res[k] = v
        except Exception:
            print(f'Error parsing "{k}: {v}"')
    return res


def apply_paste(fields, params):
    """What ``connect_paste`` does with each (component, key) pair: returns {component: new value}."""
    updates = {}
    for output, key in fields:
        v = key(params) if callable(key) else params.get(key, None)
        if v is None:
            continue
        if isinstance(v, dict) and v.get("__type__") == "update":
            updates[output] = v.get("value", output.value)
            continue
        valtype = type(output.value)
        if valtype is bool and v == "False":
            val = False
        elif valtype is int:
            val = float(v)
        else:
            val = valtype(v) if output.value is not None else v
        updates[output] = val
    return updates
