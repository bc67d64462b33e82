"""The server-rendered charts' axes read as people expect."""
import re
from decimal import Decimal

from queries.views.charts import line, lines, stacked_bars


def tick_texts(svg: str) -> list[str]:
    return re.findall(r'<text class="tick" x="58" [^>]*>([^<]*)</text>', svg)


def test_a_small_negative_axis_has_evenly_spaced_exact_ticks():
    svg = line(title="Margin", labels=["11-01", "11-02"], values=[Decimal("-0.05"), Decimal("-0.04")])

    assert tick_texts(svg) == ["-0.0500", "-0.0375", "-0.0250", "-0.0125", "0.0000"]


def test_whole_steps_show_no_decimals_and_thousands_are_compact():
    assert tick_texts(stacked_bars(title="Cost", labels=["a"], series=[("x", [Decimal("19")])])) == [
        "0", "5", "10", "15", "20"]
    assert tick_texts(stacked_bars(title="Cost", labels=["a"], series=[("x", [Decimal("4200")])])) == [
        "0.00k", "1.25k", "2.50k", "3.75k", "5.00k"]


def test_counts_get_whole_ticks():
    svg = lines(title="Problems per day", labels=["11-01", "11-02"], series=[("flagged", [Decimal(3), Decimal(1)])])
    assert tick_texts(svg) == ["0", "1", "2", "3", "4"]
    assert tick_texts(stacked_bars(title="Events", labels=["a"], series=[("x", [Decimal(23)])])) == [
        "0", "10", "20", "30", "40"]
    # Amounts keep the finer axis.
    assert tick_texts(lines(title="Cost", labels=["a"], series=[("x", [Decimal("3.5")])])) == [
        "0.00", "1.25", "2.50", "3.75", "5.00"]
