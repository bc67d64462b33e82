"""Reading pages the way a person does: the text of tiles and table cells (stdlib parser)."""
from html.parser import HTMLParser


class _Tables(HTMLParser):
    """Rows of every table, by the table's id (None when it has none); cells as stripped text."""

    def __init__(self):
        super().__init__()
        self.tables: dict = {}
        self._table = None
        self._row = None
        self._cell = None
        self._section = None
        self.tiles: dict = {}
        self._tile = None
        self._in_value = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables.setdefault(self._table, {"head": [], "body": [], "foot": []})
        elif tag in ("thead", "tbody", "tfoot"):
            self._section = {"thead": "head", "tbody": "body", "tfoot": "foot"}[tag]
        elif tag == "tr" and self._section:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "div" and "data-metric" in attrs:
            self._tile = attrs["data-metric"]
        elif tag == "p" and self._tile and attrs.get("class") == "value":
            self._in_value = True
            self.tiles[self._tile] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table][self._section].append(self._row)
            self._row = None
        elif tag == "p" and self._in_value:
            self._in_value = False
            self._tile = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_value:
            self.tiles[self._tile] += data.strip()


def parse(content: bytes) -> _Tables:
    parser = _Tables()
    parser.feed(content.decode())
    return parser


def table(content: bytes, table_id: str) -> dict:
    """`{"head": [[...]], "body": [[...], ...], "foot": [[...]]}` of the table with this id."""
    return parse(content).tables[table_id]


def tiles(content: bytes) -> dict:
    """The overview's tiles: `{"cost": "14.59 USD", ...}`."""
    return parse(content).tiles
