"""Charts as server-rendered SVG: nothing to download, nothing to wait for.

Each chart is drawn from numbers the page already shows in a table, carries a
`<title>` and an `aria-label`, and scales with its container (viewBox), so it
reads the same on a laptop and a phone. Colours are the Okabe-Ito palette, told
apart by people with colour-vision deficiencies, with a text legend beside them.
"""
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#555555")
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


_UNITS = ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k"))


def _compact(value: Decimal) -> str:
    magnitude = abs(value)
    for limit, suffix in _UNITS:
        if magnitude >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.2f}" if magnitude < 10 else f"{value:.0f}"


def _nice_max(value: Decimal, *, counts: bool = False) -> Decimal:
    """The axis top: a round number at or above `value`, cut into four ticks. Counts
    whose four steps would not be whole take whole steps of 1, 2 or 5 times a power of
    ten instead (3 events: 0 1 2 3 4, not 0 1.25 2.50 ...)."""
    if value <= 0:
        return Decimal(4) if counts else Decimal(1)
    exponent = value.adjusted()
    step = Decimal(10) ** exponent
    top = step * 10
    for factor in (1, 2, 2.5, 5, 10):
        candidate = step * Decimal(str(factor))
        if candidate >= value:
            top = candidate
            break
    if not counts or top / 4 == (top / 4).to_integral_value():
        return top
    step = Decimal(1)
    while True:
        for factor in (1, 2, 5):
            if 4 * step * factor >= value:
                return 4 * step * factor
        step *= 10


def _all_counts(values) -> bool:
    return all(value == value.to_integral_value() for value in values if value is not None)


def _frame(title: str, body: list[str]) -> SafeString:
    label = escape(title)
    return mark_safe(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>'
        + "".join(body) + "</svg>")


def _axis(low: Decimal, high: Decimal, labels: list[str]) -> tuple[list[str], callable, float]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = high - low or Decimal(1)

    def y(value: Decimal) -> float:
        return TOP + float((high - value) / span) * plot_h

    parts = []
    largest = max(abs(high), abs(low))
    step = span / 4
    # One format for every tick of an axis, in thousands, millions or billions from a
    # thousand up, with as many places as the step needs to be exact (a 0.05 axis reads
    # -0.0125, -0.0250, ..., not -0.01, -0.03).
    unit, suffix = next(((limit, suffix) for limit, suffix in _UNITS if largest >= limit), (Decimal(1), ""))
    places = min(max(0, -(step / unit).normalize().as_tuple().exponent), 4)
    for number in range(5):
        value = low + step * number
        position = y(value)
        tick = f"{value / unit:.{places}f}{suffix}"
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{position:.1f}" y2="{position:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{position + 4:.1f}" text-anchor="end">'
                     f'{escape(tick)}</text>')
    slot = plot_w / max(len(labels), 1)
    every = max(1, len(labels) // 8)
    for index, text in enumerate(labels):
        if index % every == 0:
            x = LEFT + slot * (index + 0.5)
            parts.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(text)}</text>')
    return parts, y, slot


def stacked_bars(*, title: str, labels: list[str], series: list[tuple[str, list[Decimal]]]) -> SafeString:
    """One bar per label, one stacked segment per series (negative values are drawn as 0)."""
    totals = [sum((max(values[i] or Decimal(0), Decimal(0)) for _, values in series), Decimal(0))
              for i in range(len(labels))]
    high = _nice_max(max(totals, default=Decimal(0)), counts=_all_counts(totals))
    parts, y, slot = _axis(Decimal(0), high, labels)
    width = max(slot * 0.7, 1)
    for index in range(len(labels)):
        base = Decimal(0)
        x = LEFT + slot * index + (slot - width) / 2
        for number, (name, values) in enumerate(series):
            value = max(values[index] or Decimal(0), Decimal(0))
            if not value:
                continue
            top, bottom = y(base + value), y(base)
            parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{max(bottom - top, 0.5):.1f}" '
                         f'fill="{colour(number)}"><title>{escape(labels[index])} {escape(name)}: '
                         f'{escape(_compact(value))}</title></rect>')
            base += value
    return _frame(title, parts)


def line(*, title: str, labels: list[str], values: list[Decimal | None]) -> SafeString:
    """A line over the labels with a zero line; gaps where a value is unknown."""
    known = [value for value in values if value is not None] + [Decimal(0)]
    top, bottom = max(known), min(known)
    # The axis spans zero and the data, each side rounded out to a readable step.
    high = _nice_max(top) if top > 0 else Decimal(0)
    low = -_nice_max(-bottom) if bottom < 0 else Decimal(0)
    if high == low:
        high = Decimal(1)
    parts, y, slot = _axis(low, high, labels)
    zero = y(Decimal(0))
    parts.append(f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}"/>')
    segment: list[str] = []
    segments = [segment]
    for index, value in enumerate(values):
        if value is None:
            segment = []
            segments.append(segment)
            continue
        x = LEFT + slot * (index + 0.5)
        segment.append(f"{x:.1f},{y(value):.1f}")
        parts.append(f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="2.5" fill="{colour(0)}">'
                     f'<title>{escape(labels[index])}: {escape(_compact(value))}</title></circle>')
    for points in segments:
        if len(points) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour(0)}" stroke-width="2" points="{" ".join(points)}"/>')
    return _frame(title, parts)


def sparkline(*, title: str, values: list[Decimal]) -> SafeString:
    """A small trend line, 120 x 28, without axes."""
    width, height = 120, 28
    if not values:
        return mark_safe("")
    high, low = max(values), min(values)
    span = (high - low) or Decimal(1)
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{index * step:.1f},{2 + float((high - value) / span) * (height - 4):.1f}"
                      for index, value in enumerate(values))
    label = escape(title)
    return mark_safe(f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                     f'role="img" aria-label="{label}"><title>{label}</title>'
                     f'<polyline fill="none" stroke="{colour(0)}" stroke-width="1.5" points="{points}"/></svg>')


def lines(*, title: str, labels: list[str], series: list[tuple[str, list[Decimal]]]) -> SafeString:
    """Several lines over the same labels (colours in the order of `series`, as the legend)."""
    every = [value for _, values in series for value in values if value is not None] + [Decimal(0)]
    high = _nice_max(max(every), counts=_all_counts(every))
    parts, y, slot = _axis(Decimal(0), high, labels)
    for number, (name, values) in enumerate(series):
        points = []
        for index, value in enumerate(values):
            if value is None:
                continue
            x = LEFT + slot * (index + 0.5)
            points.append(f"{x:.1f},{y(value):.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="2" fill="{colour(number)}">'
                         f'<title>{escape(labels[index])} {escape(name)}: {escape(_compact(value))}</title></circle>')
        if len(points) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour(number)}" stroke-width="2" '
                         f'points="{" ".join(points)}"/>')
    return _frame(title, parts)
