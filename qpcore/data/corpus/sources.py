"""Where the corpus comes from: pinned packages, and the ones it must never use.

Every source is an exact package version with its integrity hash, so a corpus
rebuilt next year from the download cache (or a fresh download) is the same
corpus. The deny-list keeps the sets held back for independent evaluation out of
training data for good: a reserved name is refused when a :class:`Source` is
made, not just left out of today's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from qpcore.errors import QPError

SourceKind = Literal["iconify", "photos"]

# --- reserved for independent evaluation -------------------------------------
# Never train on these. Emoji sets and brand-logo sets are the held-out
# evaluation families: a model must be judged on drawings it has never seen the
# like of. The three dev-icons packages (flag-icons, flat-color-icons,
# vscode-icons) stay a separate development set, and the sample images of
# scikit-image and matplotlib are reserved photo tests. Names are checked with
# the npm scope (``@iconify-json/``) removed; a set that renames itself
# (``noto-v1``, ``fa6-brands``) is caught by the prefixes and substrings.
DENIED_NAMES = frozenset(
    {
        # emoji
        "twemoji",
        "openmoji",
        "fxemoji",
        "streamline-emojis",
        "em",
        # brand logos
        "simple-icons",
        "logos",
        "skill-icons",
        "token-branded",
        "bxl",
        "cib",
        "streamline-logos",
        "entypo-social",
        "mdi-brands",
        "grommet-icons-brands",
        # dev-icons
        "flag-icons",
        "flag",
        "flat-color-icons",
        "vscode-icons",
        # file-type icon themes: mostly product logos, and near-copies of
        # vscode-icons' drawings (a dev-icons source)
        "material-icon-theme",
        "catppuccin",
        # reserved sample images
        "scikit-image",
        "matplotlib",
    }
)
DENIED_PREFIXES = ("noto", "fluent-emoji", "emojione", "devicon", "cryptocurrency", "token")
DENIED_SUBSTRINGS = ("emoji", "moji", "brand", "logo")


def reserved_reason(name: str) -> str | None:
    """Why ``name`` (a package or source name) may not be used, or ``None``."""
    bare = name.strip().lower().removeprefix("@iconify-json/").removeprefix("@iconify/")
    bare = bare.split("/")[-1]
    if bare in DENIED_NAMES:
        return "reserved for independent evaluation (deny-list)"
    for prefix in DENIED_PREFIXES:
        if bare.startswith(prefix):
            return f"reserved for independent evaluation (names starting {prefix!r})"
    for part in DENIED_SUBSTRINGS:
        if part in bare:
            return f"reserved for independent evaluation (names containing {part!r})"
    return None


def check_allowed(*names: str) -> None:
    """Refuse a reserved package or source name.

    Raises:
        QPError: When any of ``names`` is on the deny-list.
    """
    for name in names:
        reason = reserved_reason(name)
        if reason is not None:
            raise QPError(
                f"{name} cannot be a corpus source: {reason}. Emoji sets, brand-logo "
                "sets, the dev-icons packages and the scikit-image/matplotlib sample "
                "images are held out of training data (see qpcore/data/corpus/sources.py)."
            )


@dataclass(frozen=True)
class Source:
    """One pinned package and what it adds to the corpus.

    Attributes:
        name: The ``source`` column and the prefix of image names and groups.
        package: The npm package (``@iconify-json/<set>``) or PyPI project.
        version: Exact version; the cache and the integrity check depend on it.
        integrity: npm's ``dist.integrity`` (``sha512-...``) of the tarball;
            empty for a wheel, whose members are pinned instead (pip checks the
            wheel against PyPI's hash, and a wheel differs per platform).
        licence: The package's declared licence (``npm view <pkg> license``);
            the one written to ``SOURCES.md`` is read from the package itself.
        style: What kind of drawing it adds (for ``--list``).
        kind: ``iconify`` (an icon-set JSON package) or ``photos`` (JPEGs in a wheel).
        members: For ``photos``: ``(path in the wheel, sha256)`` of each photo.
        variants: A regex of the name suffix that marks a variant of another
            icon (``-filled``, ``-24``): icons with the same name without it are
            one drawing, so at most one of them is used (else near-copies would
            sit in different groups, on both sides of a split).
    """

    name: str
    package: str
    version: str
    integrity: str
    licence: str
    style: str
    kind: SourceKind = "iconify"
    members: tuple[tuple[str, str], ...] = ()
    variants: str = ""

    def __post_init__(self) -> None:
        check_allowed(self.name, self.package)
        if self.kind == "photos" and not self.members:
            raise QPError(f"source {self.name}: a photos source needs pinned members")
        if self.kind == "iconify" and not self.integrity.startswith(("sha512-", "sha1-")):
            raise QPError(f"source {self.name}: pin the tarball's integrity (sha512-...)")

    @property
    def spec(self) -> str:
        """``package@version`` as npm writes it (``package==version`` for PyPI)."""
        sep = "==" if self.kind == "photos" else "@"
        return f"{self.package}{sep}{self.version}"


def _iconify(
    name: str, version: str, integrity: str, licence: str, style: str, variants: str = ""
) -> Source:
    return Source(
        name, f"@iconify-json/{name}", version, integrity, licence, style, variants=variants
    )


#: The corpus's sources, in output order. Versions and integrities from
#: ``npm view @iconify-json/<set> version dist.integrity`` (checked 2026-12).
#: Excluded on purpose, and refused by ``check_allowed`` if added: emoji sets and
#: brand-logo sets (held out for independent evaluation), the dev-icons packages
#: (flag-icons, flat-color-icons, vscode-icons: a separate dev set) and
#: file-type icon themes like material-icon-theme (mostly product logos, close
#: to vscode-icons), and the scikit-image / matplotlib sample images. Icons named
#: like brands (``brand-*``, ``*-logo``) inside the sets below are skipped too.
SOURCES: tuple[Source, ...] = (
    # outline / stroke, monochrome
    _iconify(
        "tabler",
        "1.2.41",
        "sha512-GHg+H/cnr0anaCoV383JONiOMxZQOdojWYNLgL3x0fRE07YW7c+AHiYmIhXet//oq26T830qitdP7l43ojiCXw==",
        "MIT",
        "outline, 2 px strokes, monochrome",
        variants=r"-filled$",
    ),
    _iconify(
        "lucide",
        "1.2.137",
        "sha512-uKz1+tFbv1RFX/mJQNksdnyKJijNfRGSNnxfiyKtr+dLNfA3ERph+IgpXClKGOlV/5GsZwLv2jgJXQ/bjF/JAg==",
        "ISC",
        "outline, rounded strokes, monochrome",
    ),
    # solid glyphs / silhouettes, monochrome
    _iconify(
        "mdi",
        "1.2.3",
        "sha512-O3cLwbDOK7NNDf2ihaQOH5F9JglnulNDFV7WprU2dSoZu3h3cWH//h74uQAB87brHmvFVxIOkuBX2sZSzYhScg==",
        "Apache-2.0",
        "solid glyphs, monochrome",
        variants=r"-outline$",
    ),
    _iconify(
        "game-icons",
        "1.2.4",
        "sha512-/HDDZxowXgDJcOEwPspUCq5RuDdl25OyZKdtxqqiPJQNTrWIym7r4StLzIVs77DyNzOWWhH5wDqwYR3WHeDfkg==",
        "CC-BY-3.0",
        "detailed silhouettes, monochrome",
    ),
    # two-tone
    _iconify(
        "icon-park-twotone",
        "1.2.4",
        "sha512-AhnGngG6DxuIZMsz4FMrv0QWTRM/CZ3NnEeaceV6psKSgt/axW+hft7oQ6pIAFN9KB95Kp3hbJuhlhG3ao60eQ==",
        "Apache-2.0",
        "two-tone: thick strokes over a light fill",
    ),
    _iconify(
        "duo-icons",
        "1.2.2",
        "sha512-XA2HWgiQE7s5CPpn6P9VFeRx3Y99hnscQsqPiZKdocdTGmYViKoQLhQEQfPgoU2trI1twdwiT/xkq7N9OY1rbg==",
        "MIT",
        "two-tone: solid shapes, one part translucent",
    ),
    # colour flat / gradients
    _iconify(
        "fluent-color",
        "1.2.21",
        "sha512-VETjGx7BMpVsCR3HV5g5t6oBGZ92XKzIRClS5xUvDn1YHAkQTF9OyF/aFdtxYOC8JROoI1SNO/Ql6jZeK7mroA==",
        "MIT",
        "colour, soft gradients",
        variants=r"-(?:16|20|24|28|32|48)$",
    ),
    _iconify(
        "streamline-kameleon-color",
        "1.2.2",
        "sha512-6vFS3ILSmy3w6R1v2nVolNFf9pLuUihOUqyUNVXp0HliWIR6RpJIsWue0Fc6MVri7wde+SWzMJeLAXWU3zE43g==",
        "CC-BY-4.0",
        "colour flat illustrations on discs",
        variants=r"-duo$",
    ),
    _iconify(
        "circle-flags",
        "1.2.11",
        "sha512-vrx2btOkTQ4/P75ElEDnjXShmNTwInXuhhpIQQ6U6YUTdxfWyvm/4ijNG8FX8iWFr+sqqQRCvXpm2RfRtjVXfg==",
        "MIT",
        "colour flat, round flags and emblems",
    ),
    # illustrations: outlines, shading
    _iconify(
        "streamline-freehand-color",
        "1.2.2",
        "sha512-ql3aN0gPHIClR74SkG89oykRB1LxmwhIWYDM425bVsoZRNhl2uHtNMmIs6CADrCcyhdNQwtieaj49BIT0Idu5A==",
        "CC-BY-4.0",
        "hand-drawn strokes, two colours",
    ),
    _iconify(
        "streamline-ultimate-color",
        "1.2.2",
        "sha512-NAbD3xLtg3069865B5CLUulp/eowPNCiDfJBxVAmA+LKLPpxU7EIEJ2+mSfWriPd+ahORWyqjRnoPVkTJopEgg==",
        "CC-BY-4.0",
        "colour illustrations, outlines and flat shading",
    ),
    _iconify(
        "meteocons",
        "1.2.4",
        "sha512-E7YV02ql5WmJgAOpXU/hoF9Mdshq73KjwR6fBxZ5SrqMJghMa3CIcRG6NQGwP4I1uBOhIjOFlAikYoPAKuT56A==",
        "MIT",
        "weather illustrations, gradients, pale fills",
        variants=r"-fill$",
    ),
    _iconify(
        "healthicons",
        "1.2.13",
        "sha512-1c6nzjXoYBHwFqckX4Jb0PIReOzm3FZ4hWHNz/YYw1yL7QRBTeolh+S4kWpjWVa8hn9oJjgdFv0fyd8ERcRiEA==",
        "MIT",
        "pictograms, filled and outlined, monochrome",
        variants=r"(?:-outline)?(?:-24px)?$",
    ),
    # photos
    Source(
        "photos",
        "scikit-learn",
        "1.9.1",
        "",
        "BSD-3-Clause (photos CC-BY-2.0)",
        "photo crops (2 photos, many crops)",
        kind="photos",
        members=(
            (
                "sklearn/datasets/images/china.jpg",
                "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
            ),
            (
                "sklearn/datasets/images/flower.jpg",
                "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
            ),
        ),
    ),
)


def select(names: str | None, table: tuple[Source, ...] | None = None) -> tuple[Source, ...]:
    """The sources named in a comma-separated list (all when ``names`` is empty),
    in the table's order so the output does not depend on how they were typed.

    Raises:
        QPError: For a reserved name or one not in the table.
    """
    table = SOURCES if table is None else table
    if not names:
        return table
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    check_allowed(*wanted)
    known = {s.name: s for s in table}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise QPError(f"unknown corpus source {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(s for s in table if s.name in wanted)


#: Icons named like a product's logo inside an otherwise allowed set (tabler's
#: ``brand-*``, streamline's ``*-logo``, icon-park's ``adobe-indesign``): skipped
#: for the same reason as the sets. A name matches when one of its hyphen-separated
#: words is one of these; words that are also common nouns (apple, line, word,
#: office, edge) are left out on purpose, so a few logos still pass.
_BRAND_WORDS = """
    brand brands logo logos adobe android google facebook twitter github gitlab
    wechat weibo alipay taobao tiktok douyin youtube instagram linkedin slack
    dropbox microsoft windows amazon paypal mastercard visa chrome firefox safari
    spotify discord telegram whatsapp skype figma docker ubuntu reddit pinterest
    snapchat tumblr vimeo twitch xbox playstation nintendo qq baidu bilibili zhihu
    dingtalk netflix uber airbnb stripe shopify wordpress behance dribbble codepen
    stackoverflow mastodon excel powerpoint onedrive evernote notion trello jira
    atlassian bing yahoo angular bluetooth
"""
BRAND_WORDS = frozenset(_BRAND_WORDS.split())


def brand_icon(name: str) -> bool:
    """Whether an icon's name says it is a product's logo."""
    return any(word in BRAND_WORDS for word in name.lower().split("-"))
