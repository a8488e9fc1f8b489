"""URL slugs from arbitrary titles."""

import re
import unicodedata

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slugify(text, separator="-", max_length=None):
    """Turn ``text`` into a lower-case ASCII slug.

    Accents are dropped (``é`` becomes ``e``), every run of other characters becomes one
    ``separator``, and the slug never starts or ends with it. With ``max_length`` the slug is cut
    at a separator when possible, so no word is split.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_WORD.sub(separator, ascii_text.lower()).strip(separator)
    if max_length is None or len(slug) <= max_length:
        return slug
    cut = slug[:max_length]
    if slug[max_length] != separator and separator in cut:
        cut = cut.rsplit(separator, 1)[0]
    return cut.strip(separator)
