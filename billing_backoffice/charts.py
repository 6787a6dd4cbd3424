"""Bar charts drawn on the server as inline SVG, each with its numbers as a table (issue 10:
"charts where people would rather look than read", readable by screen readers).

No JavaScript and no library: a chart is a few ``<rect>`` elements sized in Python, with a
``<title>`` (the accessible name, ``role="img"``), a ``<title>`` per bar (its figure on hover),
and a ``<details>`` table of the same numbers right under it, which is what a screen reader and
a person who wants the exact figure read. Every text is escaped by ``format_html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, AXIS = 640, 160, 18  # the drawing's units (it scales to the page's width)
COLOUR = "#417690"  # the admin's header blue: enough contrast on white (WCAG 1.4.11)


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal | int
    shown: str = ""  # the value as people read it ("1,200.00 USD"); default: the number

    @property
    def text(self) -> str:
        return self.shown or f"{self.value:,}"


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    bars: list[Bar]
    column: str = "Value"
    label_column: str = ""

    def svg(self) -> SafeString:
        top = max((bar.value for bar in self.bars), default=0) or 1
        step = WIDTH / max(len(self.bars), 1)
        width = max(step * 0.8, 1)
        rects = format_html_join("", (
            '<g><title>{}: {}</title><rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
            '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text></g>'
        ), (self._bar(i, bar, step=step, width=width, top=top) for i, bar in enumerate(self.bars)))
        return format_html(
            '<svg role="img" aria-labelledby="chart-{key}-title" viewBox="0 0 {w} {h}" width="100%" '
            'style="max-width: {w}px" preserveAspectRatio="xMinYMin meet"><title id="chart-{key}-title">{title}</title>'
            '{rects}<line x1="0" x2="{w}" y1="{base}" y2="{base}" stroke="#666"/></svg>',
            key=self.key, w=WIDTH, h=HEIGHT, title=self.title, rects=rects, base=HEIGHT - AXIS,
        )

    def _bar(self, i: int, bar: Bar, *, step: float, width: float, top) -> tuple:
        """One bar's figures as text (format_html escapes its arguments before formatting)."""
        height = (HEIGHT - AXIS) * float(bar.value) / float(top)
        label = bar.label if len(self.bars) <= 12 or i % 5 == 0 else ""  # 30 days: every fifth
        return (bar.label, bar.text, f"{i * step + (step - width) / 2:.1f}", f"{HEIGHT - AXIS - height:.1f}",
                f"{width:.1f}", f"{height:.1f}", COLOUR, f"{i * step + step / 2:.1f}", HEIGHT - 4, label)

    def table(self) -> SafeString:
        rows = format_html_join("", "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                                ((bar.label, bar.text) for bar in self.bars))
        return format_html(
            '<details><summary>{} as a table</summary><table><thead><tr><th scope="col">{}</th>'
            '<th scope="col">{}</th></tr></thead><tbody>{}</tbody></table></details>',
            self.title, self.label_column, self.column, rows,
        )
