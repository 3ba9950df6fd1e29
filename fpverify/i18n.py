"""Message catalogs for every screen (the station's kiosk page now, the registry's dashboard later).

One mechanism: gettext catalogs kept as `.po` files in the repository, one domain per part
(`<locale_dir>/<lang>/LC_MESSAGES/<domain>.po`), compiled by Babel when first used. Compiling at load
means there is no build step to forget: an editable install and a wheel (which ships the `.po` as
package data) behave the same. A leaf module (Babel and the standard library only), so each part can
use it without depending on another part.

Message ids are the English text; a language without a catalog (English) shows the ids.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DEFAULT_LANGUAGE = "zh_CN"  # every screen is Chinese first
LANGUAGES = {"zh_CN": "中文", "en": "English"}


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


def normalise_language(value: str | None) -> str:
    """'zh-CN', 'zh_cn', 'zh' -> 'zh_CN'; 'en-US' -> 'en'; anything else -> the default."""
    v = (value or "").replace("-", "_").strip().lower()
    if v.startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


class CatalogError(RuntimeError):
    """A catalog file is missing its header or cannot be parsed."""


class Catalogs:
    """The translations of one domain, loaded once per language."""

    def __init__(self, domain: str, locale_dir: str | Path) -> None:
        self.domain = domain
        self.locale_dir = Path(locale_dir)
        self._loaded: dict[str, NullTranslations] = {}
        self._lock = threading.Lock()

    def po_path(self, language: str) -> Path:
        return self.locale_dir / language / "LC_MESSAGES" / f"{self.domain}.po"

    def get(self, language: str | None) -> NullTranslations:
        language = normalise_language(language)
        with self._lock:
            if language not in self._loaded:
                self._loaded[language] = self._load(language)
            return self._loaded[language]

    def gettext(self, language: str | None, message: str, **values) -> str:
        text = self.get(language).gettext(message)
        return text.format(**values) if values else text

    def _load(self, language: str) -> NullTranslations:
        path = self.po_path(language)
        if not path.is_file():
            return NullTranslations()  # English: the message ids are the English text
        try:
            with path.open("rb") as f:
                catalog = read_po(f, locale=language, domain=self.domain)
        except Exception as exc:  # Babel raises various errors on a damaged file
            raise CatalogError(f"cannot read message catalog {path}: {exc}") from exc
        buf = io.BytesIO()
        write_mo(buf, catalog, use_fuzzy=False)  # a fuzzy (unchecked) translation is never shown
        buf.seek(0)
        return Translations(buf, domain=self.domain)
