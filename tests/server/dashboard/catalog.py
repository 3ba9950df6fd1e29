"""The dashboard's message ids, found in its templates and code (for the catalog test and for
writing server/locale/zh_CN/LC_MESSAGES/dashboard.po): every `_("...")`, `N_("...")`, column label,
refusal and filter message, and the N_ messages of the modules whose errors it shows (login flow, alerts, suspicion marks)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "server" / "dashboard"
TEMPLATE_CALL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
CALLS = {"_", "N_", "Refused", "_back", "ResultColumn"}  # the string arguments of these are messages


def _python_messages(path: Path) -> set[str]:
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name == "ResultColumn":
                out.update(strings[1:2])  # the label
            elif name in CALLS:
                out.update(s for s in strings if s.strip())
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") in {"REPORT_COLUMNS", "NO_DASHBOARD"}
                                                  for t in node.targets):
            if isinstance(node.value, ast.Constant):
                out.add(node.value.value)
            else:
                out.update(e.elts[1].value for e in node.value.elts
                           if isinstance(e, ast.Tuple) and isinstance(e.elts[1], ast.Constant))
        elif isinstance(node, ast.FunctionDef) and node.name == "impossible":
            out.update(n.elts[0].value for n in ast.walk(node) if isinstance(n, ast.Tuple) and n.elts
                       and isinstance(n.elts[0], ast.Constant) and isinstance(n.elts[0].value, str))
    return out


def message_ids() -> set[str]:
    ids: set[str] = set()
    for t in (DASHBOARD / "templates").glob("*.html"):
        for m in TEMPLATE_CALL.finditer(t.read_text(encoding="utf-8")):
            text = m.group(1) if m.group(1) is not None else m.group(2)
            ids.add(text.replace("\\'", "'").replace('\\"', '"'))
    shown = [ROOT / "server" / "core" / "auth.py", ROOT / "server" / "crud" / "alerts.py",
             ROOT / "server" / "crud" / "suspicion.py"]  # their errors are shown on the dashboard
    for p in [*DASHBOARD.rglob("*.py"), *shown]:
        ids |= _python_messages(p)
    return {i for i in ids if i.strip()}
