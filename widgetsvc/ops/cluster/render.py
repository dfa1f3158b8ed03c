"""The configuration files under ``deploy/``, filled in for one cluster (``string.Template``)."""

from __future__ import annotations

import pwd
from pathlib import Path
from string import Template

from widgetsvc.ops import safefs

DEPLOY_DIR = Path(__file__).resolve().parents[3] / "deploy"


class _Braced(Template):
    """Only ``${lower_case}`` is a placeholder: nginx's own ``$variables`` stay as they are."""

    pattern = (r"\$(?:(?P<escaped>(?!))|\{(?P<braced>[a-z_][a-z0-9_]*)\}"
               r"|(?P<named>(?!))|(?P<invalid>(?!)))")


def render(template: str, **values: object) -> str:
    """``deploy/<template>`` with every ``${name}`` replaced; a missing value is an error."""
    text = (DEPLOY_DIR / template).read_text(encoding="utf-8")
    return _Braced(text).substitute({k: str(v) for k, v in values.items()})


def write(path: Path, text: str, mode: int = 0o600,
          owner: pwd.struct_passwd | None = None) -> bool:
    """Write ``text`` to ``path`` (private; as root, ``owner``'s); True when the content
    changed. The directory may be the unprivileged owner's: never through its links
    (``safefs``)."""
    if safefs.read_text(path) == text:
        return False
    safefs.write_file(path, text, mode, owner)
    return True
