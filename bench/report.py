"""The bench's report: each figure beside the baseline measured in the same run, printed as it is measured and
again as a table at the end."""

from __future__ import annotations


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []

    def add(self, name: str, value: str, baseline: str = "", ratio: str = "") -> None:
        self.rows.append((name, value, baseline, ratio))
        print(f"  {name}: {value}" + (f"   (baseline {baseline}; {ratio})" if baseline else ""), flush=True)

    def print(self) -> None:
        widths = [max(len(row[i]) for row in [("figure", "value", "baseline", "ratio"), *self.rows]) for i in range(4)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        print()
        print(line.format("figure", "value", "baseline (same run)", "ratio"))
        print(line.format(*("-" * w for w in widths)))
        for row in self.rows:
            print(line.format(*row))
        for note in self.notes:
            print(f"- {note}")


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"
